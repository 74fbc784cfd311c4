/**
 * The behaviour every implementation of the plan database's port (src/store/port.ts) must have,
 * checked through the port only (no SQL): `storeContract(name, target)` registers the tests for
 * one implementation (contract-sqlite.test.ts, contract-postgres.test.ts). What it checks is what
 * store.test.ts and transactions.test.ts check on the SQLite store, said once for all of them.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import type { Clock } from '../../src/clock.js';
import { TransitionError, UsageError } from '../../src/errors.js';
import type { Lease } from '../../src/model/records.js';
import { splitUpdate } from '../../src/rollout/split.js';
import type { NewUpdate, Store, StoreTx } from '../../src/store/port.js';
import { fakeSettings } from '../support/fake-settings.js';

export interface ContractTarget {
  /** Skip every test (a reason), e.g. PostgreSQL not installed. */
  skip?: string | false;
  /** A new, empty store whose times come from `clock`; closed and removed after the test by the target. */
  open(t: TestContext, clock: Pick<Clock, 'now'>): Promise<Store>;
  /** A second store on the same database as `store` (another process would open it so). */
  reopen(t: TestContext, store: Store): Promise<Store>;
}

/** A clock the test moves: each `now()` one millisecond after the one before, from a fixed start. */
export function steppingClock(start = Date.parse('2026-03-01T10:00:00.000Z')): Pick<Clock, 'now'> & { at: number } {
  const c = {
    at: start,
    now: () => new Date(c.at++),
  };
  return c;
}

export function newUpdate(name: string, n: number, extra: Partial<NewUpdate> = {}): NewUpdate {
  return {
    name,
    repo: '/r',
    branch: 'master',
    commit: 'c'.repeat(40),
    configFile: null,
    settings: fakeSettings,
    testStopAfter: 0,
    servers: Array.from({ length: n }, (_, i) => ({ name: `s${i + 1}`, host: `h${i + 1}`, port: 22, user: 'u', type: 'app' })),
    ...extra,
  };
}

function gate(): { opened: Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

const settle = () => new Promise((r) => setTimeout(r, 50));

export function storeContract(impl: string, target: ContractTarget): void {
  const it = (name: string, fn: (t: TestContext) => Promise<void>): void => void test(`${impl}: ${name}`, { skip: target.skip ?? false }, fn);
  const open = (t: TestContext, clock: Pick<Clock, 'now'> = steppingClock()) => target.open(t, clock);

  it('createUpdate: the update planning, its servers pending in plan order, times from the clock; a second of the same name is refused', async (t) => {
    const clock = steppingClock();
    const store = await open(t, clock);
    assert.equal(await store.hasUpdate('a'), false);
    assert.equal(await store.findUpdate('a'), null);
    const jump = [{ host: 'bastion', port: 2222, user: 'ops', identityFiles: ['/keys/b'] }];
    const u = await store.createUpdate(
      newUpdate('a', 3, {
        configFile: '/c.yaml',
        testStopAfter: 2,
        createdBy: 'me@here',
        servers: [
          { name: 's1', host: 'h1', port: 22, user: 'u', type: 'web', types: ['web', 'db'] },
          { name: 's2', host: 'h2', port: 2222, user: 'v', type: 'app', identityFiles: ['/k'], knownHosts: '/kh', jump },
          { name: 's3', host: 'h3', port: 22, user: 'u', type: 'app', path: [{ commit: 'd'.repeat(40), version: '1.2.3' }] },
        ],
      }),
    );
    assert.deepEqual(u, {
      name: 'a', status: 'planning', createdAt: '2026-03-01T10:00:00.000Z', startedAt: null, endedAt: null, repo: '/r', branch: 'master',
      commit: 'c'.repeat(40), batchOf: null, configFile: '/c.yaml', settings: fakeSettings, testStopAfter: 2, stopAtWorked: null,
      stopFromWorked: null, pauseRequestedAt: null, pauseRequestedBy: null, reason: null, lease: null, retryOf: null, undoOf: null,
      createdBy: 'me@here', stepsPromoted: 0, bake: null, guard: null,
    });
    assert.deepEqual(await store.getUpdate('a'), u);
    assert.equal(await store.hasUpdate('a'), true);
    const servers = await store.getServers('a');
    assert.deepEqual(servers.map((s) => [s.name, s.position, s.status, s.type, s.types, s.lockHeld, s.path, s.hop]), [
      ['s1', 0, 'pending', 'web', ['web', 'db'], false, null, null],
      ['s2', 1, 'pending', 'app', ['app'], false, null, null],
      ['s3', 2, 'pending', 'app', ['app'], false, [{ commit: 'd'.repeat(40), version: '1.2.3' }], null],
    ]);
    assert.deepEqual([servers[1]!.identityFiles, servers[1]!.knownHosts, servers[1]!.jump, servers[1]!.port, servers[1]!.user], [['/k'], '/kh', jump, 2222, 'v']);
    assert.equal(servers[0]!.jump, undefined);
    assert.deepEqual(await store.getServer(servers[1]!.id), servers[1]);
    assert.deepEqual((await store.getEvents('a')).map((e) => [e.kind, e.serverName, e.actor]), [['planning', null, null]]);
    await assert.rejects(store.createUpdate(newUpdate('a', 1)), (e: unknown) => e instanceof UsageError && /already exists/.test(e.message));
    await assert.rejects(store.getUpdate('zzz'), (e: unknown) => e instanceof UsageError && /no update named "zzz".*known updates: a/.test(e.message));
    assert.deepEqual((await store.listUpdates()).map((x) => x.name), ['a']);
    assert.deepEqual((await store.updatesOfConfig('/c.yaml')).map((x) => x.name), ['a']);
  });

  it('createUpdate of a large plan (more servers than one statement inserts): every server, in plan order; the probe results read back', async (t) => {
    const store = await open(t);
    await store.createUpdate(newUpdate('big', 1201));
    const servers = await store.getServers('big');
    assert.equal(servers.length, 1201);
    assert.deepEqual(servers.map((s) => s.position), [...Array(1201).keys()]);
    assert.deepEqual([servers[0]!.name, servers[500]!.name, servers[1200]!.name], ['s1', 's501', 's1201']);
    await store.setProbedCommit(servers[700]!.id, 'f'.repeat(40));
    await store.setProbedVersion(servers[700]!.id, '1.2.3', 'recommended');
    const probed = await store.getServer(servers[700]!.id);
    assert.deepEqual([probed.fromCommit, probed.agentVersion, probed.versionClass], ['f'.repeat(40), '1.2.3', 'recommended']);
  });

  it('status changes go through model/lifecycle.ts inside the transaction that writes them, with an event; refused ones change nothing', async (t) => {
    const store = await open(t);
    await store.createUpdate(newUpdate('a', 2));
    await assert.rejects(store.setUpdateStatus('a', 'running'), TransitionError);
    assert.equal((await store.getUpdate('a')).status, 'planning');
    const u = await store.setUpdateStatus('a', 'pending', { reason: 'probed' });
    assert.equal(u.status, 'pending');
    assert.equal(u.reason, 'probed');
    await store.setUpdateStatus('a', 'running', { startedAt: '2026-03-01T11:00:00.000Z', stopAtWorked: 1, stopFromWorked: 0 });
    const running = await store.getUpdate('a');
    assert.deepEqual([running.startedAt, running.stopAtWorked, running.stopFromWorked], ['2026-03-01T11:00:00.000Z', 1, 0]);
    await store.patchUpdate('a', { pauseRequestedAt: '2026-03-01T11:00:01.000Z', pauseRequestedBy: 'me@here' });
    assert.deepEqual([(await store.getUpdate('a')).pauseRequestedAt, (await store.getUpdate('a')).pauseRequestedBy], ['2026-03-01T11:00:01.000Z', 'me@here']);
    const [s1] = await store.getServers('a');
    await assert.rejects(store.setServerStatus(s1!.id, 'success'), TransitionError);
    const r = await store.setServerStatus(s1!.id, 'running', { step: 'update', startedAt: '2026-03-01T11:00:02.000Z', fromCommit: 'a'.repeat(40), lockHeld: true, hop: 0 });
    assert.deepEqual([r.status, r.step, r.fromCommit, r.lockHeld, r.hop], ['running', 'update', 'a'.repeat(40), true, 0]);
    await store.setServerStatus(s1!.id, 'running', { step: 'verify' });
    // the same status and step again: no event (a takeover's re-run, a change of other fields)
    await store.setServerStatus(s1!.id, 'running', {});
    const same = await store.setServerStatus(s1!.id, 'running', { step: 'verify', error: 'timed out' });
    assert.deepEqual([same.step, same.error], ['verify', 'timed out']);
    await store.setServerStatus(s1!.id, 'success', { step: null, toCommit: 'c'.repeat(40), endedAt: '2026-03-01T11:00:03.000Z' });
    await assert.rejects(store.setServerStatus(s1!.id, 'pending'), (e: Error) => e instanceof TransitionError && /server s1 of update a is success; it cannot become pending/.test(e.message));
    assert.equal((await store.getServer(s1!.id)).status, 'success', 'a refused change changes nothing');
    const [, s2] = await store.getServers('a');
    await store.setServerStatus(s2!.id, 'unreachable', { error: 'no route' });
    await store.setServerStatus(s2!.id, 'pending', {});
    const events = (await store.getEvents('a')).map((e) => `${e.kind}|${e.serverName ?? ''}|${e.message}`);
    assert.deepEqual(events, [
      'planning||planning 2 servers to cccccccccccc',
      'update-status||planning → pending: probed',
      'update-status||pending → running',
      'server-status|s1|running (update)',
      'server-status|s1|running (verify)',
      'server-status|s1|success',
      'server-status|s2|unreachable: no route',
      'server-status|s2|pending',
    ]);
    const ids = (await store.getEvents('a')).map((e) => e.id);
    assert.deepEqual(ids, [...ids].sort((x, y) => x - y), 'events in the order written');
    await store.setUpdateStatus('a', 'success', { endedAt: '2026-03-01T11:00:04.000Z' });
    await assert.rejects(store.setUpdateStatus('a', 'running'), TransitionError);
  });

  it('servers: fields without a status change, the probe results, lookups by name and by account', async (t) => {
    const store = await open(t);
    await store.createUpdate(newUpdate('a', 3));
    const [s1, s2] = await store.getServers('a');
    await store.setProbedCommit(s1!.id, 'a'.repeat(40));
    await store.setProbedVersion(s1!.id, '1.2.3', 'required');
    await store.setLockHeld(s2!.id, true);
    await store.patchServer(s2!.id, { error: 'unreachable again', path: [{ commit: 'e'.repeat(40), version: null }] });
    const [r1, r2] = await store.getServers('a');
    assert.deepEqual([r1!.fromCommit, r1!.agentVersion, r1!.versionClass], ['a'.repeat(40), '1.2.3', 'required']);
    assert.deepEqual([r2!.lockHeld, r2!.error, r2!.path], [true, 'unreachable again', [{ commit: 'e'.repeat(40), version: null }]]);
    await store.setLockHeld(s2!.id, false);
    assert.equal((await store.getServer(s2!.id)).lockHeld, false);
    await store.setServerStatus(s1!.id, 'unreachable', { error: 'no route' });
    await store.setProbedCommit(s1!.id, 'b'.repeat(40));
    assert.equal((await store.getServer(s1!.id)).fromCommit, 'a'.repeat(40), 'the probed commit is only set on a pending server');
    assert.equal(await store.hasServer('s2'), true);
    assert.equal(await store.hasServer('u@H2:22'), true, 'the host without case');
    assert.equal(await store.hasServer('nope'), false);
    assert.deepEqual(await store.serverNames(), ['s1', 's2', 's3']);
    await store.createUpdate(newUpdate('b', 2));
    assert.deepEqual((await store.findServers('s2')).map((s) => s.updateName), ['b', 'a'], 'newest update first');
    assert.deepEqual((await store.findServers('u@h1:22')).map((s) => s.updateName), ['b', 'a']);
    assert.deepEqual(await store.findServers('u@h1:23'), []);
  });

  it('an unknown update: the error lists the 10 newest known updates and how many more, with the command that lists them all', async (t) => {
    const clock = steppingClock();
    const store = await open(t, clock);
    for (let i = 1; i <= 13; i++) await store.createUpdate(newUpdate(`upd-${String(i).padStart(2, '0')}`, 1));
    await assert.rejects(store.getUpdate('zzz'), (e: unknown) => {
      assert.ok(e instanceof UsageError);
      assert.match(e.message, /no update named "zzz" in .*; known updates \(the 10 newest\): upd-04, upd-05, .*, upd-13, …and 3 more \(`.*status` lists them all\)$/);
      assert.doesNotMatch(e.message, /upd-03/);
      return true;
    });
  });

  it('leaveOut and discardPlan: servers taken out of a plan with their journal and events; a planning update removed', async (t) => {
    const store = await open(t);
    await store.createUpdate(newUpdate('a', 3));
    const [s1, s2] = await store.getServers('a');
    await store.beginCommand(s2!, 'probe', 'version');
    await store.addEvent('a', 's2', 'note', 'about s2');
    await store.leaveOut('a', [s2!.id], 'not selected');
    assert.deepEqual((await store.getServers('a')).map((s) => [s.name, s.position]), [['s1', 0], ['s3', 1]]);
    assert.deepEqual((await store.getUpdate('a')).settings.versions?.leftOut, ['s2']);
    assert.deepEqual(await store.getJournal('a', 's2'), []);
    assert.ok((await store.getEvents('a')).every((e) => e.serverName !== 's2'));
    assert.ok((await store.getEvents('a')).some((e) => e.kind === 'left-out' && /s2/.test(e.message)));
    await store.beginCommand(s1!, 'probe', 'version');
    await store.discardPlan('a');
    assert.equal(await store.hasUpdate('a'), false);
    assert.deepEqual(await store.getServers('a'), []);
    assert.deepEqual(await store.getEvents('a'), []);
    await store.createUpdate(newUpdate('b', 1));
    await store.setUpdateStatus('b', 'pending');
    await assert.rejects(store.discardPlan('b'), /not planning/);
    assert.equal(await store.hasUpdate('b'), true);
    // `forget`: other statuses when asked for, never an update that was started
    await store.discardPlan('b', ['planning', 'pending', 'cancelled']);
    assert.equal(await store.hasUpdate('b'), false);
    await store.createUpdate(newUpdate('c', 1));
    await store.setUpdateStatus('c', 'pending');
    await store.setUpdateStatus('c', 'running', { startedAt: new Date().toISOString() });
    await store.setUpdateStatus('c', 'paused', { reason: 'test' });
    await store.setUpdateStatus('c', 'cancelled', { endedAt: new Date().toISOString() });
    await assert.rejects(store.discardPlan('c', ['planning', 'pending', 'cancelled']), /was started/);
    assert.equal(await store.hasUpdate('c'), true);
  });

  it('the journal: a command begun before it runs, its result, its output cut short; one server or all in plan order', async (t) => {
    const clock = steppingClock();
    const store = await open(t, clock);
    await store.createUpdate(newUpdate('a', 2));
    const [s1, s2] = await store.getServers('a');
    const j2 = await store.beginCommand(s2!, 'probe', 'version');
    const j1 = await store.beginCommand(s1!, 'probe', 'version');
    const before = (await store.getJournal('a', 's1'))[0]!;
    assert.deepEqual([before.id, before.endedAt, before.exitCode, before.stdout], [j1, null, null, null]);
    await store.endCommand(j1, { code: 0, stdout: 'x'.repeat(1000), stderr: 'err', error: null });
    await store.endCommand(j2, { code: null, stdout: '', stderr: '', error: 'lost connection' });
    await store.summarizeCommand(j1, 10);
    const all = await store.getJournal('a');
    assert.deepEqual(all.map((e) => [e.serverName, e.serverId, e.updateName, e.phase, e.command]), [
      ['s1', s1!.id, 'a', 'probe', 'version'],
      ['s2', s2!.id, 'a', 'probe', 'version'],
    ]);
    const e1 = all[0]!;
    assert.equal(e1.exitCode, 0);
    assert.equal(e1.stdout, `${'x'.repeat(10)}\n[… 980 characters of this attempt's output not kept …]\n${'x'.repeat(10)}`);
    assert.equal(e1.stderr, 'err');
    assert.match(e1.startedAt, /^2026-03-01T10:00:00\.\d{3}Z$/);
    assert.ok(e1.endedAt! > e1.startedAt);
    assert.deepEqual([all[1]!.exitCode, all[1]!.error], [null, 'lost connection']);
  });

  it('a lone write under the lease (TxOptions.loneWriteLeased, as the engine’s guarded writes): made while the lease is ours; taken over, nothing is written and the transaction says whose it is', async (t) => {
    const store = await open(t);
    await store.createUpdate(newUpdate('a', 2));
    const [s1, s2] = await store.getServers('a');
    await store.acquireLease('a', { token: 't1', pid: 1, host: 'h', pidStart: null }, () => false);
    // the engine's guarded(): the write, then the lease read in the same transaction, before its commit
    const guardedWrite = <T>(token: string, write: (x: StoreTx) => Promise<T>) =>
      store.tx(
        async (x) => {
          const check = async () => {
            const now = await x.leaseToken('a');
            if (now !== token) throw new Error(`lease lost to ${now}`);
          };
          let out: T;
          try {
            out = await write(x);
          } catch (e) {
            await check();
            throw e;
          }
          await check();
          return out;
        },
        { leaseOf: 'a', loneWriteLeased: token },
      );
    await guardedWrite('t1', (x) => x.setLockHeld(s1!.id, true));
    const running = await guardedWrite('t1', (x) => x.setServerStatus(s1!.id, 'running', { step: 'update' }));
    assert.deepEqual([running.status, running.step, running.lockHeld], ['running', 'update', true]);
    // a change the table refuses: its error, nothing changed, the store usable after it
    await assert.rejects(guardedWrite('t1', (x) => x.setServerStatus(s2!.id, 'rolled-back')), TransitionError);
    assert.equal((await store.getServer(s2!.id)).status, 'pending');
    await store.acquireLease('a', { token: 't2', pid: 2, host: 'h', pidStart: null }, () => true);
    await assert.rejects(guardedWrite('t1', (x) => x.setLockHeld(s2!.id, true)), /lease lost to t2/);
    await assert.rejects(guardedWrite('t1', (x) => x.setServerStatus(s2!.id, 'running', { step: 'update' })), /lease lost to t2/);
    const after = await store.getServer(s2!.id);
    assert.deepEqual([after.status, after.lockHeld], ['pending', false]);
    await guardedWrite('t2', (x) => x.setLockHeld(s2!.id, true));
    assert.equal((await store.getServer(s2!.id)).lockHeld, true);
  });

  it('the journal under a lease: a row only while the token holds the update’s lease, nothing written otherwise', async (t) => {
    const store = await open(t);
    await store.createUpdate(newUpdate('a', 1));
    await store.createUpdate(newUpdate('b', 1));
    const [s1] = await store.getServers('a');
    assert.equal(await store.beginCommandIfLeased(s1!, 'update', 'x', 't1'), null, 'no lease at all');
    await store.acquireLease('a', { token: 't1', pid: 1, host: 'h', pidStart: null }, () => false);
    await store.acquireLease('b', { token: 't2', pid: 1, host: 'h', pidStart: null }, () => false);
    const id = await store.beginCommandIfLeased(s1!, 'update', 'x', 't1');
    assert.equal(typeof id, 'number');
    assert.equal(await store.beginCommandIfLeased(s1!, 'update', 'y', 't2'), null, 'the lease of another update');
    await store.acquireLease('a', { token: 't3', pid: 2, host: 'h', pidStart: null }, () => true);
    assert.equal(await store.beginCommandIfLeased(s1!, 'update', 'z', 't1'), null, 'taken over');
    assert.deepEqual((await store.getJournal('a')).map((e) => [e.id, e.command]), [[id, 'x']]);
  });

  it('events: an actor when a person did it; the runs of an update by a person', async (t) => {
    const store = await open(t);
    await store.createUpdate(newUpdate('a', 1));
    await store.addEvent('a', null, 'start', 'started', 'me@here');
    await store.addEvent('a', 's1', 'note', 'engine');
    await store.addEvent('a', null, 'resume', 'resumed', 'you@there');
    await store.addEvent('a', null, 'takeover', 'no actor');
    const ev = await store.getEvents('a');
    assert.deepEqual(ev.slice(1).map((e) => [e.kind, e.serverName, e.actor, e.updateName]), [
      ['start', null, 'me@here', 'a'],
      ['note', 's1', null, 'a'],
      ['resume', null, 'you@there', 'a'],
      ['takeover', null, null, 'a'],
    ]);
    const runs = await store.runEvents('a');
    assert.deepEqual(runs.map((r) => [r.kind, r.actor]), [['start', 'me@here'], ['resume', 'you@there']]);
    assert.equal(runs[0]!.at, ev[1]!.at);
  });

  it('progressive delivery: the steps let go, the bake of a step and its time left, the guard’s last round', async (t) => {
    const store = await open(t);
    await store.createUpdate(newUpdate('a', 1));
    await store.patchUpdate('a', { stepsPromoted: 2, bakeStep: 3, bakeLeftMs: 4500, guardCheckedAt: '2026-03-01T11:00:00.000Z', guardSummary: '1 of 1 healthy' });
    const u = await store.getUpdate('a');
    assert.deepEqual([u.stepsPromoted, u.bake, u.guard], [2, { step: 3, leftMs: 4500 }, { checkedAt: '2026-03-01T11:00:00.000Z', summary: '1 of 1 healthy' }]);
    await store.patchUpdate('a', { bakeStep: null, bakeLeftMs: null });
    assert.equal((await store.getUpdate('a')).bake, null);
  });

  it('a rolling restart: its planning event says so, and its commit is set once its servers are probed', async (t) => {
    const store = await open(t);
    await store.createUpdate(newUpdate('r', 2, { commit: '0'.repeat(40), settings: { ...fakeSettings, restartOnly: true } }));
    assert.deepEqual((await store.getEvents('r')).map((e) => e.message), ['planning a rolling restart of 2 servers, each at the commit it runs']);
    await store.patchUpdate('r', { commit: 'a'.repeat(40) });
    const u = await store.getUpdate('r');
    assert.equal(u.commit, 'a'.repeat(40));
    assert.equal(u.settings.restartOnly, true);
  });

  it('the lease: acquired, refused to a second while live, heartbeat, release, a dead holder taken over with an event', async (t) => {
    const store = await open(t);
    await store.createUpdate(newUpdate('a', 1));
    const me = { token: 't1', pid: 100, host: 'here', pidStart: 's' };
    assert.deepEqual(await store.acquireLease('a', me, () => false), { ok: true, previous: null });
    assert.equal(await store.leaseToken('a'), 't1');
    const held = (await store.getUpdate('a')).lease!;
    assert.deepEqual([held.token, held.pid, held.host, held.pidStart, held.since === held.heartbeat], ['t1', 100, 'here', 's', true]);
    assert.deepEqual(await store.acquireLease('a', me, () => false), { ok: true, previous: null }, 'our own again');
    const other = { token: 't2', pid: 200, host: 'there', pidStart: null };
    const judged: Lease[] = [];
    const refused = await store.acquireLease('a', other, (h) => (judged.push(h), false));
    assert.equal(refused.ok, false);
    assert.equal(!refused.ok && refused.holder.token, 't1');
    assert.equal(judged[0]!.token, 't1');
    assert.equal(await store.heartbeat('a', 't1'), true);
    assert.ok((await store.getUpdate('a')).lease!.heartbeat > held.heartbeat);
    assert.equal(await store.heartbeat('a', 't2'), false);
    const taken = await store.acquireLease('a', other, () => true);
    assert.equal(taken.ok, true);
    assert.equal(taken.ok && taken.previous?.token, 't1');
    assert.equal(await store.leaseToken('a'), 't2');
    assert.equal(await store.heartbeat('a', 't1'), false, 'no longer ours');
    assert.ok((await store.getEvents('a')).some((e) => e.kind === 'takeover' && /pid 100 on here/.test(e.message)));
    await store.releaseLease('a', 't1');
    assert.equal(await store.leaseToken('a'), 't2', 'a release by who no longer holds it changes nothing');
    await store.releaseLease('a', 't2');
    assert.equal(await store.leaseToken('a'), null);
    assert.equal((await store.getUpdate('a')).lease, null);
  });

  it('the lease between two stores on one database: one wins, the other sees the holder', async (t) => {
    const store = await open(t);
    await store.createUpdate(newUpdate('a', 1));
    const second = await target.reopen(t, store);
    const results = await Promise.all([
      store.acquireLease('a', { token: 'x', pid: 1, host: 'h', pidStart: null }, () => false),
      second.acquireLease('a', { token: 'y', pid: 2, host: 'h', pidStart: null }, () => false),
    ]);
    assert.equal(results.filter((r) => r.ok).length, 1);
    assert.equal(await second.leaseToken('a'), await store.leaseToken('a'));
  });

  it('tx: what the function wrote through its handle is committed; when it throws, none of it is', async (t) => {
    const store = await open(t);
    await store.createUpdate(newUpdate('a', 1));
    await store.createUpdate(newUpdate('b', 1));
    const out = await store.tx(async (tx) => {
      await tx.setUpdateStatus('a', 'pending');
      await tx.addEvent('a', null, 'note', 'inside');
      return (await tx.getUpdate('a')).status;
    });
    assert.equal(out, 'pending');
    assert.equal((await store.getUpdate('a')).status, 'pending');
    await assert.rejects(
      store.tx(async (tx) => {
        await tx.setUpdateStatus('b', 'pending');
        await tx.addEvent('b', null, 'note', 'inside');
        await tx.createUpdate(newUpdate('c', 1));
        throw new Error('changed my mind');
      }),
      /changed my mind/,
    );
    assert.equal((await store.getUpdate('b')).status, 'planning');
    assert.deepEqual((await store.getEvents('b')).map((e) => e.kind), ['planning']);
    assert.equal(await store.hasUpdate('c'), false);
    await assert.rejects(store.tx(async (tx) => tx.setUpdateStatus('b', 'running')), TransitionError);
    assert.equal((await store.getUpdate('b')).status, 'planning');
  });

  it('a call on the store while a transaction is open waits for its end, and the calls run in the order they were made', async (t) => {
    const store = await open(t);
    await store.createUpdate(newUpdate('a', 1));
    const held = gate();
    const order: string[] = [];
    const inside = store.tx(async (tx) => {
      await tx.setUpdateStatus('a', 'pending');
      await held.opened;
      await tx.addEvent('a', null, 'note', 'last write of the transaction');
      order.push('committed');
    });
    const read = store.getUpdate('a').then((u) => order.push(`read ${u.status}`));
    const write = store.addEvent('a', null, 'note', 'after the transaction').then(() => order.push('wrote after'));
    await settle();
    assert.deepEqual(order, [], 'nothing ran beside the open transaction');
    held.open();
    await Promise.all([inside, read, write]);
    assert.deepEqual(order, ['committed', 'read pending', 'wrote after']);
    assert.deepEqual((await store.getEvents('a')).map((e) => e.message).slice(-2), ['last write of the transaction', 'after the transaction']);
  });

  it('transactions of one store run one after the other, in the order they were asked for', async (t) => {
    const store = await open(t);
    await store.createUpdate(newUpdate('a', 1));
    const held = gate();
    const order: string[] = [];
    const first = store.tx(async (tx) => {
      order.push('first begins');
      await held.opened;
      await tx.addEvent('a', null, 'note', 'first');
      order.push('first ends');
    });
    const second = store.tx(async (tx) => {
      order.push('second begins');
      await tx.addEvent('a', null, 'note', 'second');
      order.push('second ends');
    });
    await settle();
    held.open();
    await Promise.all([first, second]);
    assert.deepEqual(order, ['first begins', 'first ends', 'second begins', 'second ends']);
  });

  it('a tx of the handle is nested: its throw undoes its own writes only; the handle is refused once its transaction ended', async (t) => {
    const store = await open(t);
    await store.createUpdate(newUpdate('a', 1));
    let kept: StoreTx | null = null;
    await store.tx(async (tx) => {
      kept = tx;
      await tx.addEvent('a', null, 'note', 'outer');
      await assert.rejects(
        tx.tx(async (inner) => {
          await inner.addEvent('a', null, 'note', 'inner');
          throw new Error('inner fails');
        }),
        /inner fails/,
      );
      await tx.tx(async (inner) => inner.addEvent('a', null, 'note', 'inner kept'));
      // a write that is a transaction of its own, refused inside: the rest stands
      await assert.rejects(tx.setUpdateStatus('a', 'running'), TransitionError);
      await tx.addEvent('a', null, 'note', 'after a refused change');
    });
    assert.deepEqual((await store.getEvents('a')).map((e) => e.message).slice(1), ['outer', 'inner kept', 'after a refused change']);
    await assert.rejects(kept!.getUpdate('a'), /used after its transaction ended/);
  });

  it('a call that fails inside a transaction, caught there, undoes only itself: the transaction goes on and commits', async (t) => {
    // SQLite undoes the failed statement only; PostgreSQL would refuse every statement after a
    // failed one until the end of the transaction, unless each call is a savepoint of its own.
    const store = await open(t);
    await store.createUpdate(newUpdate('a', 1));
    const [s] = await store.getServers('a');
    await store.tx(async (tx) => {
      await tx.addEvent('a', null, 'note', 'before');
      // refused by the database itself: a journal row for a server that does not exist (its foreign key)
      await assert.rejects(tx.beginCommand({ updateName: 'a', id: s!.id + 1000 }, 'probe', 'true'));
      // refused by the transition table, after its row was read FOR UPDATE
      await assert.rejects(tx.setServerStatus(s!.id, 'success'), TransitionError);
      await tx.addEvent('a', null, 'note', 'after');
      await tx.setUpdateStatus('a', 'pending');
    });
    assert.equal((await store.getUpdate('a')).status, 'pending');
    assert.deepEqual((await store.getEvents('a')).filter((e) => e.kind === 'note').map((e) => e.message), ['before', 'after']);
    assert.deepEqual(await store.getJournal('a'), []);
    assert.equal((await store.getServer(s!.id)).status, 'pending');
  });

  it('a call on the store from inside its own transaction is refused, not left waiting for itself; other callers still wait', async (t) => {
    const store = await open(t);
    await store.createUpdate(newUpdate('a', 1));
    await assert.rejects(
      store.tx(async (tx) => {
        await tx.setUpdateStatus('a', 'pending');
        await store.getUpdate('a');
      }),
      /inside its own transaction/,
    );
    assert.equal((await store.getUpdate('a')).status, 'planning', 'the transaction was rolled back');
    await assert.rejects(store.tx(async () => store.tx(async () => undefined)), /inside its own transaction/);
    const g = gate();
    const txn = store.tx(async (tx) => {
      await g.opened;
      await tx.setUpdateStatus('a', 'pending');
    });
    const outside = store.getUpdate('a');
    g.open();
    await txn;
    assert.equal((await outside).status, 'pending');
    const started: { later?: Promise<string> } = {};
    await store.tx(async () => {
      started.later = new Promise((resolve) => setImmediate(() => void store.getUpdate('a').then((u) => resolve(u.status))));
    });
    assert.equal(await started.later, 'pending');
  });

  it('close waits for the transaction open; what it wrote is there for the next store', async (t) => {
    const store = await open(t);
    const held = gate();
    const inside = store.tx(async (tx) => {
      await held.opened;
      await tx.createUpdate(newUpdate('late', 0));
    });
    const closed = store.close();
    held.open();
    await Promise.all([inside, closed]);
    const again = await target.reopen(t, store);
    assert.equal(await again.hasUpdate('late'), true);
  });

  it('drop: a pending server becomes excluded with who and why; anything else is refused', async (t) => {
    const store = await open(t);
    await store.createUpdate(newUpdate('a', 2));
    const [s1, s2] = await store.getServers('a');
    const d = await store.dropServer(s1!.id, 'dropped by me@here: broken disk', '2026-03-01T12:00:00.000Z', 'me@here');
    assert.deepEqual([d.status, d.step, d.error, d.endedAt], ['excluded', null, 'dropped by me@here: broken disk', '2026-03-01T12:00:00.000Z']);
    const ev = (await store.getEvents('a')).at(-1)!;
    assert.deepEqual([ev.kind, ev.serverName, ev.actor, ev.message], ['server-status', 's1', 'me@here', 'excluded: dropped by me@here: broken disk']);
    await assert.rejects(store.dropServer(s1!.id, 'again', '2026-03-01T12:00:00.000Z', 'me@here'), TransitionError);
    await store.setUpdateStatus('a', 'pending');
    await store.setUpdateStatus('a', 'running');
    await store.setServerStatus(s2!.id, 'running', { step: 'update' });
    await assert.rejects(store.dropServer(s2!.id, 'no', '2026-03-01T12:00:00.000Z', 'me@here'), TransitionError);
    assert.equal((await store.getServer(s2!.id)).status, 'running');
  });

  it('split: batches with their servers, journal and events; test mode on the first only; budget over the group', async (t) => {
    const store = await open(t);
    await store.createUpdate(newUpdate('a', 7, { testStopAfter: 2, retryOf: null, createdBy: 'me@here' }));
    await store.setUpdateStatus('a', 'pending');
    const all = await store.getServers('a');
    await store.endCommand(await store.beginCommand(all[6]!, 'probe', 'x'), { code: 0, stdout: 'o', stderr: '', error: null });
    await store.addEvent('a', 's6', 'note', 'about s6');
    assert.deepEqual(await splitUpdate(store, 'a', 3), ['a', 'a.2', 'a.3']);
    assert.deepEqual((await store.getServers('a.3')).map((s) => [s.name, s.position]), [['s6', 0], ['s7', 1]]);
    assert.equal((await store.getJournal('a.3', 's7')).length, 1);
    assert.deepEqual((await store.getEvents('a.3')).filter((e) => e.serverName === 's6').map((e) => e.message), ['about s6']);
    assert.deepEqual((await store.getEvents('a')).filter((e) => e.serverName === 's6'), []);
    const b2 = await store.getUpdate('a.2');
    assert.deepEqual([b2.status, b2.batchOf, b2.testStopAfter, b2.createdBy, b2.settings], ['pending', 'a', 0, 'me@here', fakeSettings]);
    assert.equal((await store.getUpdate('a')).testStopAfter, 2);
    assert.deepEqual((await store.batchesOf('a')).map((u) => u.name), ['a.2', 'a.3']);
    await assert.rejects(splitUpdate(store, 'a', 2), /a\.2 already exists/);
    // a paused batch, as split from a paused update
    await store.insertBatch(await store.getUpdate('a.3'), 'a.3.2', 0, { status: 'paused', reason: 'split while paused' });
    const p = await store.getUpdate('a.3.2');
    assert.deepEqual([p.status, p.reason, p.batchOf], ['paused', 'split while paused', 'a.3']);
    assert.deepEqual((await store.batchesOf('a')).map((u) => u.name), ['a.2', 'a.3', 'a.3.2']);
    // the failure budget of the group, from any of its batches
    const [x] = await store.getServers('a.2');
    await store.setUpdateStatus('a.2', 'running');
    await store.setServerStatus(x!.id, 'running', { step: 'update' });
    await store.setServerStatus(x!.id, 'failed', { error: 'boom' });
    const use = await store.budgetUse(await store.getUpdate('a.3.2'));
    assert.deepEqual(use, { used: 1, total: 7, updates: ['a', 'a.2', 'a.3'] }, 'the root and the batches split from it');
    assert.deepEqual(await store.budgetUse(await store.getUpdate('a')), use);
    const counts = await store.countsByUpdate();
    assert.deepEqual(counts.get('a'), { total: 3, pending: 3 });
    assert.deepEqual(counts.get('a.2'), { total: 2, failed: 1, pending: 1 });
    assert.equal(counts.has('a.3.2'), false);
  });

  it('busyAccount and overlappingUpdates: another update at work on the same account (host without case)', async (t) => {
    const store = await open(t);
    await store.createUpdate(newUpdate('a', 2));
    await store.createUpdate(newUpdate('b', 2, { servers: [{ name: 'x1', host: 'H1', port: 22, user: 'u', type: 'app' }, { name: 'x9', host: 'h9', port: 22, user: 'u', type: 'app' }] }));
    await store.createUpdate(newUpdate('c', 1, { servers: [{ name: 'y1', host: 'h1', port: 2222, user: 'u', type: 'app' }] }));
    for (const n of ['a', 'b', 'c']) await store.setUpdateStatus(n, 'pending');
    const [a1] = await store.getServers('a');
    const [b1] = await store.getServers('b');
    assert.equal(await store.busyAccount(a1!), null);
    await store.setUpdateStatus('b', 'running');
    await store.acquireLease('b', { token: 'tb', pid: 7, host: 'there', pidStart: null }, () => false);
    await store.setServerStatus(b1!.id, 'running', { step: 'restart' });
    const busy = await store.busyAccount(a1!);
    assert.deepEqual([busy?.update, busy?.server, busy?.step, busy?.lease?.token], ['b', 'x1', 'restart', 'tb']);
    assert.equal(await store.busyAccount(b1!), null, 'its own update is not another');
    const overlaps = await store.overlappingUpdates('a');
    assert.deepEqual(overlaps, [{ update: 'b', status: 'running', servers: ['s1'] }]);
    assert.deepEqual(await store.overlappingUpdates('c'), []);
    await store.setServerStatus(b1!.id, 'success', { step: null });
    assert.equal(await store.busyAccount(a1!), null);
  });

  it('history, later work on an account, retries and undos', async (t) => {
    const store = await open(t);
    await store.createUpdate(newUpdate('a', 2));
    await store.setUpdateStatus('a', 'pending');
    await store.setUpdateStatus('a', 'running');
    const [s1, s2] = await store.getServers('a');
    await store.setServerStatus(s1!.id, 'running', { step: 'update', startedAt: '2026-03-01T10:00:10.000Z' });
    await store.setServerStatus(s1!.id, 'success', { step: null });
    await store.setServerStatus(s2!.id, 'skipped');
    await store.createUpdate(newUpdate('r', 1, { retryOf: 'a' }));
    await store.createUpdate(newUpdate('u', 1, { undoOf: 'a' }));
    const [u1] = await store.getServers('u');
    assert.deepEqual((await store.historyServers()).map((s) => [s.updateName, s.name, s.status]), [['a', 's1', 'success'], ['a', 's2', 'skipped']]);
    assert.deepEqual((await store.historyServers('s1')).map((s) => s.id), [s1!.id]);
    assert.deepEqual((await store.historyServers('u@H2:22')).map((s) => s.id), [s2!.id]);
    assert.deepEqual((await store.laterWorkOn(u1!, '2026-03-01T10:00:00.000Z')).map((s) => s.id), [s1!.id]);
    assert.deepEqual(await store.laterWorkOn(u1!, '2026-03-01T10:00:11.000Z'), []);
    assert.deepEqual((await store.retriesOf('a')).map((x) => x.name), ['r']);
    assert.deepEqual((await store.undosOf('a')).map((x) => [x.name, x.undoOf]), [['u', 'a']]);
  });

  it('auto runs: a claim while open, its heartbeat, the update it made, the audit record once ended', async (t) => {
    const store = await open(t);
    const claim = { configFile: '/c.yaml', actor: 'ci@runner', pid: 42, host: 'runner', pidStart: 'p', commit: 'c'.repeat(40) };
    const id = await store.beginAutoRun(claim);
    const id2 = await store.beginAutoRun({ ...claim, pid: 43, commit: null });
    assert.ok(id2 > id);
    const open1 = await store.openAutoRuns('/c.yaml');
    assert.deepEqual(open1.map((r) => r.id), [id2, id], 'newest first');
    const r = open1[1]!;
    assert.deepEqual([r.configFile, r.actor, r.pid, r.host, r.pidStart, r.commit, r.endedAt, r.outcome, r.updateName, r.startedAt === r.heartbeat], ['/c.yaml', 'ci@runner', 42, 'runner', 'p', 'c'.repeat(40), null, null, null, true]);
    await store.autoHeartbeat(id);
    assert.ok((await store.autoRuns('/c.yaml'))[0]!.heartbeat > r.heartbeat);
    await store.setAutoRunUpdate(id, 'upd');
    await store.endAutoRun(id, 'started', 'started upd');
    await store.endAutoRun(id2, 'nothing-to-do', 'at target', null);
    await store.endAutoRun(id2, 'again', 'ignored once ended');
    assert.deepEqual(await store.openAutoRuns('/c.yaml'), []);
    const done = await store.autoRuns();
    assert.deepEqual(done.map((x) => [x.id, x.outcome, x.message, x.updateName]), [[id, 'started', 'started upd', 'upd'], [id2, 'nothing-to-do', 'at target', null]]);
    assert.ok(done[0]!.endedAt !== null);
    await store.autoHeartbeat(id);
    assert.deepEqual(await store.autoRuns(), done, 'an ended run beats no more');
    assert.deepEqual(await store.autoRuns('/other.yaml'), []);
  });

  it('freezes: one active per repo key (a second freeze returns it unchanged), lifted with who and when, kept as the audit; seen by a second store', async (t) => {
    const clock = steppingClock();
    const store = await open(t, clock);
    assert.equal(await store.activeFreeze('host/org/agent'), null);
    assert.deepEqual(await store.freezes(), []);
    const a = await store.freeze({ repoKey: 'host/org/agent', repo: 'https://host/org/agent.git', configFile: '/c.yaml', reason: 'incident 42', frozenBy: 'alice@laptop' });
    assert.equal(a.created, true);
    assert.deepEqual({ ...a.freeze, id: 0 }, {
      id: 0, repoKey: 'host/org/agent', repo: 'https://host/org/agent.git', configFile: '/c.yaml', reason: 'incident 42',
      frozenBy: 'alice@laptop', frozenAt: '2026-03-01T10:00:00.000Z', unfrozenBy: null, unfrozenAt: null,
    });
    // a second freeze of the same repo: the active one, unchanged, nothing written
    const again = await store.freeze({ repoKey: 'host/org/agent', repo: 'git@host:org/agent', configFile: null, reason: 'other', frozenBy: 'bob@desk' });
    assert.deepEqual(again, { freeze: a.freeze, created: false });
    // another repo is frozen on its own
    const b = await store.freeze({ repoKey: 'host/org/other', repo: 'https://host/org/other', configFile: null, reason: 'x', frozenBy: 'bob@desk' });
    assert.equal(b.created, true);
    const other = await target.reopen(t, store);
    assert.deepEqual(await other.activeFreeze('host/org/agent'), a.freeze, 'the freeze is in the database, for every store on it');
    // lifted: recorded on its row, no longer active; lifting again finds none
    const lifted = await other.unfreeze('host/org/agent', 'bob@desk');
    assert.equal(lifted?.id, a.freeze.id);
    assert.equal(lifted?.unfrozenBy, 'bob@desk');
    assert.ok(lifted!.unfrozenAt !== null && lifted!.unfrozenAt > a.freeze.frozenAt);
    assert.equal(await store.activeFreeze('host/org/agent'), null);
    assert.equal(await store.unfreeze('host/org/agent', 'bob@desk'), null);
    assert.equal((await store.activeFreeze('host/org/other'))?.id, b.freeze.id, 'the other repo stays frozen');
    // frozen again: a new row; the audit keeps both, oldest first
    const c = await store.freeze({ repoKey: 'host/org/agent', repo: 'https://host/org/agent', configFile: null, reason: 'release day', frozenBy: 'carol@ci' });
    assert.equal(c.created, true);
    assert.notEqual(c.freeze.id, a.freeze.id);
    assert.deepEqual((await store.freezes('host/org/agent')).map((f) => [f.reason, f.unfrozenBy]), [['incident 42', 'bob@desk'], ['release day', null]]);
    assert.deepEqual((await store.freezes()).map((f) => f.reason), ['incident 42', 'x', 'release day']);
    // inside a transaction that throws: nothing of it is kept
    await assert.rejects(store.tx(async (tx) => {
      await tx.unfreeze('host/org/other', 'dave@x');
      throw new Error('undo');
    }), /undo/);
    assert.equal((await store.activeFreeze('host/org/other'))?.unfrozenAt, null);
  });

  it('the database has an identity and a location, the same for a second store on it', async (t) => {
    const store = await open(t);
    assert.match(store.dbId, /^[0-9a-f]{32}$/);
    assert.ok(store.location.length > 0);
    const again = await target.reopen(t, store);
    assert.equal(again.dbId, store.dbId);
    assert.equal(again.location, store.location);
  });
}
