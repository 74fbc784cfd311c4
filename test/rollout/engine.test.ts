/**
 * The executor against an in-memory fake Transport: every takeover case, set up by writing the
 * crashed state straight into a real store, and checked by the exact commands that ran.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { systemLiveness } from '../../src/liveness.js';
import type { RolloutSettings } from '../../src/config/types.js';
import { AppError, BusyError, TransitionError, UsageError } from '../../src/errors.js';
import { HEARTBEAT_MS } from '../../src/rollout/lease.js';
import { runUpdate } from '../../src/rollout/run.js';
import { LOCK_FILE } from '../../src/rollout/remote-lock.js';
import type { ServerStep } from '../../src/model/lifecycle.js';
import { TransportError } from '../../src/ssh/transport.js';
import type { Store } from '../../src/store/port.js';
import { OLD, NEW, OTHER } from '../support/fake-settings.js';
import { liveness } from '../helpers/liveness.js';
import { exited, FakeTransport, lostConnection, type FakeServer } from '../support/fake-transport.js';
import { settings, setup, crashAt, takeLease, deps, virtualClock, statusOf } from './engine-support.js';

const deploys = (s: FakeServer) => s.log.filter((c) => c === `reset ${NEW}`).length;

test('a clean run: recheck, update, version, restart, health; in that order', async (t) => {
  const store = await setup(t, ['s1']);
  const fake = new FakeTransport();
  const s1 = fake.add('s1', OLD);
  const r = await runUpdate(deps(store, fake), 'u', { mode: 'start' });
  assert.equal(r.status, 'success');
  assert.deepEqual(s1.log, ['version', `reset ${NEW}`, 'version', 'restart', 'health']);
  assert.equal((await statusOf(store, 's1')).fromCommit, OLD);
});

const takeovers: Array<{ title: string; step: ServerStep; from: string | null; at: string; expect: string; log: string[] }> = [
  { title: 'crashed before the re-check recorded anything, server already at the target', step: 'update', from: null, at: NEW, expect: 'skipped', log: ['version'] },
  { title: 'crashed before any update command ran', step: 'update', from: null, at: OLD, expect: 'success', log: ['version', `reset ${NEW}`, 'version', 'restart', 'health'] },
  { title: 'crashed during update, the commit had landed: every update command runs again', step: 'update', from: OLD, at: NEW, expect: 'success', log: ['version', `reset ${NEW}`, 'version', 'restart', 'health'] },
  { title: 'crashed during update, nothing had landed', step: 'update', from: OLD, at: OLD, expect: 'success', log: ['version', `reset ${NEW}`, 'version', 'restart', 'health'] },
  { title: 'crashed during restart', step: 'restart', from: OLD, at: NEW, expect: 'success', log: ['version', 'restart', 'health'] },
  { title: 'crashed during verify: verified only', step: 'verify', from: OLD, at: NEW, expect: 'success', log: ['version', 'health'] },
  { title: 'found at an unknown commit: rolled back', step: 'update', from: OLD, at: OTHER, expect: 'rolled-back', log: ['version', `reset ${OLD}`, 'version', 'restart', 'health'] },
  { title: 'crashed during rollback: the rollback runs again', step: 'rollback', from: OLD, at: NEW, expect: 'rolled-back', log: ['version', `reset ${OLD}`, 'version', 'restart', 'health'] },
  { title: 'crashed during verify-rollback: the rollback runs again', step: 'verify-rollback', from: OLD, at: OLD, expect: 'rolled-back', log: ['version', `reset ${OLD}`, 'version', 'restart', 'health'] },
];

for (const c of takeovers) {
  test(`takeover: ${c.title} → ${c.expect}`, async (t) => {
    const store = await setup(t, ['s1', 's2', 's3']);
    const fake = new FakeTransport();
    const s1 = fake.add('s1', NEW);
    const s2 = fake.add('s2', c.at);
    const s3 = fake.add('s3', OLD);
    // s1 had finished before the crash.
    const first = await statusOf(store, 's1');
    await store.setUpdateStatus('u', 'running');
    await store.setServerStatus(first.id, 'running', { step: 'update', fromCommit: OLD, toCommit: NEW });
    await store.setServerStatus(first.id, 'success', {});
    const s = await statusOf(store, 's2');
    await store.setServerStatus(s.id, 'running', { step: c.step, fromCommit: c.from, toCommit: NEW });

    const r = await runUpdate(deps(store, fake), 'u', { mode: 'start' });
    assert.equal((await statusOf(store, 's2')).status, c.expect);
    assert.deepEqual(s2.log, c.log);
    assert.deepEqual(s1.log, [], 'a finished server is never touched again');
    if (c.expect === 'rolled-back') {
      assert.equal(r.status, 'failure');
      assert.deepEqual(s3.log, [], 'the rollout stopped at the rolled-back server');
    } else {
      assert.equal(r.status, 'success');
      assert.equal(s3.log.length, 5);
    }
  });
}

test('takeover with a broken target: verified, fails, rolled back', async (t) => {
  const store = await setup(t, ['s1']);
  const fake = new FakeTransport({ broken: [NEW] });
  const s1 = fake.add('s1', NEW);
  s1.online = false;
  await crashAt(store, 's1', 'verify', OLD);
  const r = await runUpdate(deps(store, fake), 'u', { mode: 'start' });
  assert.equal(r.status, 'failure');
  assert.equal((await statusOf(store, 's1')).status, 'rolled-back');
  assert.equal(s1.commit, OLD);
});

test('an executor whose lease is taken stops before its next write', async (t) => {
  // The lease's heartbeat timer is mocked: the test fires one beat instead of waiting 2 s for it.
  t.mock.timers.enable({ apis: ['setInterval'] });
  const store = await setup(t, ['s1', 's2']);
  const fake = new FakeTransport();
  const s1 = fake.add('s1', OLD);
  fake.add('s2', OLD);
  // Another process "takes over" while s1 is being updated.
  fake.intercept = async (_server, cmd, next) => {
    if (cmd.startsWith('reset')) {
      await takeLease(store, 'u');
      t.mock.timers.tick(HEARTBEAT_MS); // one heartbeat: it finds the lease taken
    }
    return next();
  };
  await assert.rejects(runUpdate(deps(store, fake), 'u', { mode: 'start' }), BusyError);
  assert.equal((await statusOf(store, 's1')).status, 'running', 'no result was written after losing the lease');
  assert.equal((await statusOf(store, 's1')).step, 'update');
  assert.deepEqual(s1.log, ['version', `reset ${NEW}`], 'and no remote command either');
});

test('takeover: the re-check fails before any update command ran → unreachable, nothing run, nothing rolled back', async (t) => {
  // Crashed right after the server went `running (update)` with fromCommit cleared: no update
  // command has run. A failed re-check must leave it untouched, as runServer does, not roll it
  // back (to rollback.commit, a commit never seen there) nor call it fatal.
  const withRollbackCommit = { ...settings, rollback: { ...settings.rollback, commit: OTHER } };
  const store = await setup(t, ['s1', 's2'], withRollbackCommit);
  const fake = new FakeTransport();
  const s1 = fake.add('s1', OLD);
  const s2 = fake.add('s2', OLD);
  fake.intercept = async (server, cmd, next) => {
    if (server !== 's1' || cmd !== 'version') return next();
    s1.log.push(cmd);
    return exited(1, '', 'fatal: not a git repository');
  };
  await crashAt(store, 's1', 'update', null);
  await runUpdate(deps(store, fake), 'u', { mode: 'start' });
  assert.deepEqual(s1.log, ['version'], 'nothing but the re-check ran on s1');
  assert.equal(s1.commit, OLD);
  assert.equal((await statusOf(store, 's1')).status, 'unreachable');
  assert.equal((await statusOf(store, 's2')).status, 'success', 'an untouched server does not stop the rollout');
  assert.equal(s2.commit, NEW);
});

test('an executor whose lease was taken while it was frozen stops before its next write, even before its next heartbeat', async (t) => {
  // A process stopped (SIGSTOP, a suspended laptop) for longer than the lease's staleness is
  // taken over; when it wakes, the reply to its command can arrive before its heartbeat timer
  // runs. It must not act on the in-memory belief that it still holds the lease.
  const store = await setup(t, ['s1', 's2']);
  const fake = new FakeTransport();
  const s1 = fake.add('s1', OLD);
  const s2 = fake.add('s2', OLD);
  fake.intercept = async (_server, cmd, next) => {
    const r = await next();
    if (cmd.startsWith('reset')) await takeLease(store, 'u');
    return r;
  };
  await assert.rejects(runUpdate(deps(store, fake), 'u', { mode: 'start' }), BusyError);
  assert.deepEqual(s1.log, ['version', `reset ${NEW}`], 'no remote command after the lease was taken');
  assert.equal((await statusOf(store, 's1')).status, 'running', 'no state written after the lease was taken');
  assert.equal((await statusOf(store, 's1')).step, 'update');
  assert.deepEqual(s2.log, []);
});

test('placeholders in agent.health.command are expanded (the target while verifying, the rollback commit while verifying a rollback)', async (t) => {
  const healthWithCommit = {
    ...settings,
    agent: { ...settings.agent, health: { ...settings.agent.health, command: 'health-at {commit}', expect: '' } },
  };
  const store = await setup(t, ['s1', 's2'], healthWithCommit);
  const fake = new FakeTransport({ broken: [NEW] });
  const s1 = fake.add('s1', OLD);
  fake.intercept = async (server, cmd, next) => {
    const m = /^health-at (.*)$/.exec(cmd);
    if (!m) return next();
    const f = fake.servers.get(server)!;
    f.log.push(cmd);
    const up = f.online && m[1] === f.commit;
    return exited(up ? 0 : 7, '', up ? '' : `not online at ${m[1]}`);
  };
  const r = await runUpdate(deps(store, fake), 'u', { mode: 'start' });
  // NEW is broken: its health check fails, the rollback to OLD is verified online at OLD.
  assert.ok(s1.log.includes(`health-at ${NEW}`), s1.log.join('\n'));
  assert.equal(s1.log[s1.log.length - 1], `health-at ${OLD}`);
  assert.equal((await statusOf(store, 's1')).status, 'rolled-back', (await statusOf(store, 's1')).error ?? '');
  assert.equal(r.status, 'failure');
});

/*
 * kill -9 at every instant, at the granularity of remote commands: for each command a clean run
 * sends, a first executor dies there, either before the command reaches the server or after it
 * ran there with the reply lost. A second executor (a new store connection, as a new process
 * would have) takes over. Whatever the instant, the rollout must end as the clean run did, no
 * server that had finished is touched again, and no server is deployed more than twice.
 */

test('a problem on our side of SSH (the key, its passphrase) refuses the start before any server is touched', async (t) => {
  const store = await setup(t, ['s1', 's2']);
  const fake = new FakeTransport();
  const s1 = fake.add('s1', OLD);
  Object.assign(fake, {
    preflight: async () => {
      throw new TransportError('auth', 'identity file /k is encrypted and no passphrase was given');
    },
  });
  await assert.rejects(
    runUpdate(deps(store, fake), 'u', { mode: 'start' }),
    (e: unknown) => e instanceof UsageError && e.exitCode === 2 && /^cannot start u: identity file \/k is encrypted .*; nothing was run on any server$/.test(e.message),
  );
  assert.deepEqual(s1.log, []);
  assert.equal((await store.getUpdate('u')).status, 'pending');
  assert.deepEqual((await store.getServers('u')).map((s) => s.status), ['pending', 'pending']);
  assert.equal((await store.getUpdate('u')).lease, null, 'no lease taken');
});

// ---- one server, one update at a time ------------------------------------------------------

/** Another pending update in the same store, over servers given as name → host (the account). */
async function addUpdate(store: Store, name: string, servers: Record<string, string>, over: Partial<RolloutSettings> = {}): Promise<void> {
  await store.createUpdate({
    name, repo: '/r', branch: 'master', commit: NEW, configFile: null, settings: { ...settings, ...over }, testStopAfter: 0,
    servers: Object.entries(servers).map(([n, host]) => ({ name: n, host, port: 22, user: 'u', type: 'app' })),
  });
  for (const s of await store.getServers(name)) await store.setProbedCommit(s.id, OLD);
  await store.setUpdateStatus(name, 'pending');
}

/** The same fake server under a second name: one account, named twice. */
function alias(fake: FakeTransport, name: string, of: string): void {
  fake.servers.set(name, fake.servers.get(of)!);
}

const lockOwnerOf = (text: string | null) => Object.fromEntries((text ?? '').trim().split('\n').map((l) => l.split('=')).filter((p) => p.length === 2));

test('two updates over a shared server in one process: each waits for the other, the server is worked on by one at a time', async (t) => {
  const store = await setup(t, ['s1', 's2']);
  await addUpdate(store, 'v', { t1: 's1', t3: 't3' });
  const fake = new FakeTransport();
  const s1 = fake.add('s1', OLD);
  fake.add('s2', OLD);
  fake.add('t3', OLD);
  alias(fake, 't1', 's1');
  // Who is inside s1 right now: no two updates may ever overlap there.
  let inside = 0;
  let overlapped = false;
  fake.intercept = async (server, command, next) => {
    if (server !== 's1' && server !== 't1') return next();
    inside++;
    if (inside > 1) overlapped = true;
    try {
      // give the other executor every chance to come in
      await new Promise((r) => setTimeout(r, 20));
      return await next();
    } finally {
      inside--;
    }
  };
  const [ru, rv] = await Promise.all([runUpdate(deps(store, fake), 'u', { mode: 'start' }), runUpdate(deps(store, fake), 'v', { mode: 'start' })]);
  assert.equal(overlapped, false, 'two executors were on s1 at once');
  assert.equal(ru.status, 'success');
  assert.equal(rv.status, 'success');
  // Whichever came second found it at the target already.
  const outcomes = [(await statusOf(store, 's1')).status, (await store.getServers('v')).find((s) => s.name === 't1')!.status].sort();
  assert.deepEqual(outcomes, ['skipped', 'success']);
  assert.equal(deploys(s1), 1, 'deployed once, not twice');
  assert.ok(!s1.locks.includes('held'), `the database kept the second off it before the lock had to: ${s1.locks.join(', ')}`);
  assert.equal(fake.lockOf('s1'), null);
  const waited = [...(await store.getEvents('u')), ...(await store.getEvents('v'))].filter((e) => e.kind === 'busy');
  assert.ok(waited.length >= 1 && /is in flight in update (u|v)/.test(waited[0]!.message), JSON.stringify(waited));
});

test('a server left in flight by an update whose executor died: another update pauses at once, naming it and the way out', async (t) => {
  const store = await setup(t, ['s1']);
  await addUpdate(store, 'v', { t1: 's1' });
  const fake = new FakeTransport();
  const s1 = fake.add('s1', OLD);
  alias(fake, 't1', 's1');
  await crashAt(store, 's1', 'restart', OLD);
  const r = await runUpdate(deps(store, fake), 'v', { mode: 'start' });
  assert.equal(r.status, 'paused');
  assert.equal(r.exitCode, 3);
  assert.match(r.reason, /t1 \(u@s1:22\) is in flight in update u \(as s1, step restart\), whose executor is gone: take it over first with `agent-update start u` .*`agent-update resume v`/);
  assert.deepEqual(s1.log, [], 'v did not touch it');
  assert.equal((await store.getServers('v'))[0]!.status, 'pending');
});

test('a lock from another database: wait for it (bounded), go on once it is released, pause naming its holder if it is not', async (t) => {
  const store = await setup(t, ['s1', 's2'], { ...settings, execution: { busyWaitMs: 60_000, maxFailures: null } });
  const fake = new FakeTransport();
  const s1 = fake.add('s1', OLD);
  fake.add('s2', OLD);
  const theirs = 'agent-update-lock v1\nupdate=theirs\ndb=0123456789abcdef\nhost=elsewhere\npid=4242\nsince=2026-12-01T00:00:00.000Z\n';
  const { writeFileSync, unlinkSync } = await import('node:fs');
  writeFileSync(join(s1.home, LOCK_FILE), theirs);
  // The other executor finishes after our third look.
  let looks = 0;
  fake.afterLock = (server, r) => {
    if (server === 's1' && r.code === 75 && ++looks === 3) unlinkSync(join(s1.home, LOCK_FILE));
  };
  const clock = virtualClock();
  const r = await runUpdate(deps(store, fake, clock), 'u', { mode: 'start' });
  assert.equal(r.status, 'success', r.reason);
  assert.equal(looks, 3);
  assert.deepEqual(s1.locks.slice(0, 4), ['held', 'held', 'held', 'acquired']);
  assert.equal(s1.log[0], 'version', 'the version command ran only once the lock was ours');
  assert.equal(s1.log.filter((c) => c === 'version').length, 2, 'the re-check and the check after updating');

  // Now one that is never released: the update pauses after execution.busy_wait, naming who holds it.
  const store2 = await setup(t, ['s1'], { ...settings, execution: { busyWaitMs: 30_000, maxFailures: null } });
  const fake2 = new FakeTransport();
  const x1 = fake2.add('s1', OLD);
  writeFileSync(join(x1.home, LOCK_FILE), theirs);
  const paused = await runUpdate(deps(store2, fake2, virtualClock()), 'u', { mode: 'start' });
  assert.equal(paused.status, 'paused');
  assert.match(paused.reason, /s1 \(u@s1:22\) is locked by update theirs \(database 0123456789abcdef\), pid 4242 on elsewhere since 2026-12-01T00:00:00.000Z, from another plan database; .*`agent-update unlock s1 --yes`; waited 30s/);
  assert.deepEqual(x1.log, [], 'not one of the operator\'s commands ran on it');
  assert.equal(fake2.lockOf('s1'), theirs, 'their lock is left as it was');
  const s = (await store2.getServers('u'))[0]!;
  assert.equal(s.status, 'pending');
  assert.equal(s.fromCommit, OLD, 'the plan\'s commit is kept');
  assert.ok(x1.locks.filter((l) => l === 'held').length <= 8, `backoff: ${x1.locks.length} looks in 30 s`);
});

test('a lock our own database left on a server whose update is done with it is stale: cleared and taken', async (t) => {
  const store = await setup(t, ['s1']);
  await addUpdate(store, 'v', { t1: 's1' });
  const fake = new FakeTransport();
  const s1 = fake.add('s1', OLD);
  alias(fake, 't1', 's1');
  // u finished s1 but its release was lost.
  const first = await runUpdate(deps(store, fake), 'u', { mode: 'start' });
  assert.equal(first.status, 'success');
  const { writeFileSync } = await import('node:fs');
  writeFileSync(join(s1.home, LOCK_FILE), `agent-update-lock v1\nupdate=u\ndb=${store.dbId}\nhost=h\npid=1\nsince=2026-12-01T00:00:00.000Z\n`);
  s1.locks.length = 0;
  const r = await runUpdate(deps(store, fake), 'v', { mode: 'start' });
  assert.equal(r.status, 'success');
  assert.deepEqual(s1.locks.slice(0, 2), ['held', 'cleared-stale']);
  assert.equal(fake.lockOf('s1'), null);
});

test('takeover: the same update takes its own lock over from its dead executor (another host: the lease decides); a lock taken meanwhile by another stops it, the server left running', async (t) => {
  const store = await setup(t, ['s1']);
  const fake = new FakeTransport();
  const s1 = fake.add('s1', NEW);
  await crashAt(store, 's1', 'verify', OLD);
  const { writeFileSync } = await import('node:fs');
  writeFileSync(join(s1.home, LOCK_FILE), `agent-update-lock v1\nupdate=u\ndb=${store.dbId}\nhost=h\npid=2147483646\nsince=2026-12-01T00:00:00.000Z\n`);
  const r = await runUpdate(deps(store, fake), 'u', { mode: 'start' });
  assert.equal(r.status, 'success');
  // the lock holds the dead executor's token (none: written by v1), not this one's: judged, cleared, taken
  assert.deepEqual(s1.locks, ['held', 'cleared-stale', 'released']);

  const store2 = await setup(t, ['s1']);
  const fake2 = new FakeTransport();
  const x1 = fake2.add('s1', NEW);
  await crashAt(store2, 's1', 'verify', OLD);
  writeFileSync(join(x1.home, LOCK_FILE), 'agent-update-lock v1\nupdate=other\ndb=feed\nhost=h\npid=1\nsince=2026-12-01T00:00:00.000Z\n');
  await assert.rejects(
    runUpdate(deps(store2, fake2), 'u', { mode: 'start' }),
    (e: unknown) => e instanceof AppError && e.exitCode === 1 && /s1 was in flight in u \(step verify\).*locked by update other/.test(e.message),
  );
  assert.equal((await store2.getServers('u'))[0]!.status, 'running', 'left for a later start to re-check');
  assert.deepEqual(x1.log, []);
  assert.equal(lockOwnerOf(fake2.lockOf('s1')).update, 'other', 'their lock is untouched');
});

test('the health journal stays bounded: the first and last attempts in full, the ones between cut down', async (t) => {
  const big = { ...settings, ssh: { ...settings.ssh, outputLimitBytes: 200_000 }, agent: { ...settings.agent, health: { ...settings.agent.health, timeoutMs: 600_000, intervalMs: 2_000 } } };
  const store = await setup(t, ['s1'], big);
  const fake = new FakeTransport();
  fake.add('s1', OLD);
  let attempts = 0;
  const noise = 'x'.repeat(100_000);
  fake.intercept = async (_server, command, next) => {
    if (command !== 'health') return next();
    attempts++;
    const up = attempts >= 40;
    return exited(up ? 0 : 7, up ? `online ${NEW} ${noise}` : noise, noise);
  };
  const r = await runUpdate(deps(store, fake, virtualClock()), 'u', { mode: 'start' });
  assert.equal(r.status, 'success');
  const health = (await store.getJournal('u')).filter((s) => s.phase === 'verify');
  assert.equal(health.length, 40);
  assert.equal(health[0]!.stdout!.length, noise.length, 'the first attempt in full');
  assert.equal(health[39]!.stdout!.length, `online ${NEW} ${noise}`.length, 'the last attempt in full');
  for (const h of health.slice(1, 39)) {
    assert.ok(h.stdout!.length < 1_200 && h.stderr!.length < 1_200, `attempt ${h.id}: ${h.stdout!.length} characters kept`);
    assert.match(h.stdout!, /characters of this attempt's output not kept/);
  }
  const stored = health.reduce((n, h) => n + h.stdout!.length + h.stderr!.length, 0);
  assert.ok(stored < 500_000, `${stored} characters stored for 40 attempts of 200 KB each`);
});

test('cancel of a running update: refused while its executor lives; once it is dead, the server in flight is left fatal for a person', async (t) => {
  const { cancelUpdate } = await import('../../src/rollout/control.js');
  const store = await setup(t, ['s1', 's2']);
  await crashAt(store, 's1', 'restart', OLD);
  // a live executor: this very process
  await store.acquireLease('u', { token: 'x', pid: process.pid, host: systemLiveness.host, pidStart: null }, () => true);
  await assert.rejects(cancelUpdate(store, 'u', new Date(), systemLiveness), (e: unknown) => e instanceof TransitionError && /executed by pid \d+ .*pause it first/.test(e.message));
  assert.equal((await store.getUpdate('u')).status, 'running');
  // now it is dead: its process is gone
  const { leftForAPerson } = await cancelUpdate(store, 'u', new Date(), liveness({ isAlive: () => false }));
  assert.deepEqual(leftForAPerson.map((s) => s.name), ['s1']);
  const u = await store.getUpdate('u');
  assert.equal(u.status, 'cancelled');
  assert.equal(u.lease, null);
  assert.match(u.reason!, /left for a person: s1/);
  const [s1, s2] = await store.getServers('u');
  assert.equal(s1!.status, 'fatal');
  assert.match(s1!.error!, /in flight \(step restart\) when the executor died.*unknown, check it by hand.*unlock s1 --yes/);
  assert.equal(s2!.status, 'pending');
});

// ---- the failure budget and the health window ------------------------------------------------

test('a failure budget shared by the batches of a split: once spent, no batch starts another server', async (t) => {
  const { splitUpdate } = await import('../../src/rollout/split.js');
  const withBudget = { ...settings, rollback: { ...settings.rollback, continueAfterRollback: true }, execution: { busyWaitMs: 0, maxFailures: { count: 1 } } };
  const store = await setup(t, ['s1', 's2', 's3', 's4', 's5', 's6'], withBudget);
  await splitUpdate(store, 'u', 2); // u: s1 s2 s3, u.2: s4 s5 s6
  const fake = new FakeTransport({ broken: [NEW] });
  for (const n of ['s1', 's2', 's3', 's4', 's5', 's6']) fake.add(n, OLD);
  const first = await runUpdate(deps(store, fake, virtualClock()), 'u', { mode: 'start' });
  assert.equal(first.status, 'failure');
  assert.match(first.reason, /the failure budget is spent: 2 servers rolled back or failed, more than the 1 allowed \(execution.max_failures: 1 of the 6 servers of u and its batches\)/);
  assert.deepEqual((await store.getServers('u')).map((s) => s.status), ['rolled-back', 'rolled-back', 'pending']);
  const second = await runUpdate(deps(store, fake, virtualClock()), 'u.2', { mode: 'start' });
  assert.equal(second.status, 'failure', 'the other batch shares the spent budget');
  assert.deepEqual((await store.getServers('u.2')).map((s) => s.status), ['pending', 'pending', 'pending']);
  for (const n of ['s3', 's4', 's5', 's6']) assert.deepEqual(fake.servers.get(n)!.log, [], `${n} untouched`);
  const { updateJson } = await import('../../src/output/status-json.js');
  const doc = updateJson(await store.getUpdate('u.2'), await store.getServers('u.2'), await store.budgetUse(await store.getUpdate('u.2')));
  assert.deepEqual(doc.budget, { maxFailures: 1, allowed: 1, used: 2, total: 6, updates: ['u', 'u.2'], exceeded: true });
});

test('a percentage budget: 25% of 8 servers lets two fail and stops at the third', async (t) => {
  const withBudget = { ...settings, rollback: { ...settings.rollback, continueAfterRollback: true }, execution: { busyWaitMs: 0, maxFailures: { percent: 25 } } };
  const store = await setup(t, ['s1', 's2', 's3', 's4', 's5', 's6', 's7', 's8'], withBudget);
  const fake = new FakeTransport({ broken: [NEW] });
  for (let i = 1; i <= 8; i++) fake.add(`s${i}`, OLD);
  const r = await runUpdate(deps(store, fake, virtualClock()), 'u', { mode: 'start' });
  assert.equal(r.status, 'failure');
  assert.deepEqual((await store.getServers('u')).map((s) => s.status), ['rolled-back', 'rolled-back', 'rolled-back', 'pending', 'pending', 'pending', 'pending', 'pending']);
  assert.match(r.reason, /3 servers rolled back or failed, more than the 2 allowed \(execution.max_failures: 25% of the 8 servers of u\)/);
});

test('agent.health.stable_for: a crash loop that answers once and dies is caught and rolled back; a stable one passes', async (t) => {
  const windowed = { ...settings, agent: { ...settings.agent, health: { ...settings.agent.health, timeoutMs: 60_000, intervalMs: 1_000, stableForMs: 10_000 } } };
  const store = await setup(t, ['s1', 's2'], windowed);
  const fake = new FakeTransport();
  const s1 = fake.add('s1', OLD);
  const s2 = fake.add('s2', OLD);
  // s1 at NEW answers healthy twice after each restart, then is down
  let sinceRestart = 0;
  fake.intercept = async (server, command, next) => {
    if (server !== 's1') return next();
    if (command === 'restart') sinceRestart = 0;
    if (command === 'health' && s1.commit === NEW && ++sinceRestart > 2) {
      s1.log.push(command);
      return exited(7, '', 'connection refused');
    }
    return next();
  };
  const r = await runUpdate(deps(store, fake, virtualClock()), 'u', { mode: 'start' });
  const one = await statusOf(store, 's1');
  assert.equal(one.status, 'rolled-back', one.error ?? '');
  assert.match(one.error!, /came online at b{12} but did not stay healthy: health exited 7: connection refused after 2s of the 10s it must stay healthy \(agent\.health\.stable_for\)/);
  assert.equal(s1.commit, OLD);
  assert.equal(r.status, 'failure');
  assert.deepEqual(s2.log, [], 'the rollout stopped there');
  // A stable agent passes after the window: 1 + 10 checks, one a second.
  const store2 = await setup(t, ['s1'], windowed);
  const fake2 = new FakeTransport();
  const x1 = fake2.add('s1', OLD);
  const ok = await runUpdate(deps(store2, fake2, virtualClock()), 'u', { mode: 'start' });
  assert.equal(ok.status, 'success');
  assert.equal(x1.log.filter((c) => c === 'health').length, 11);
});

// ---- a short network interruption is not a broken server -------------------------------------

const refused = () => new TransportError('network', 'cannot connect to u@s1:22: connection refused (ECONNREFUSED)');

test('a connection lost during an update command, a restart and a rollback is reconnected and the command run again', async (t) => {
  const store = await setup(t, ['s1', 's2']);
  const fake = new FakeTransport({ broken: [NEW] });
  const s1 = fake.add('s1', OLD);
  fake.add('s2', OLD);
  // each kind of command loses its connection once, and the next connect is refused twice
  const dropped = new Set<string>();
  let refuse = 0;
  fake.onConnect = (server) => {
    if (server === 's1' && refuse > 0) {
      refuse--;
      throw refused();
    }
  };
  fake.intercept = async (server, command, next) => {
    const kind = `${command.split(' ')[0]}-${fake.servers.get(server)!.commit === NEW ? 'new' : 'old'}`;
    if (server === 's1' && !dropped.has(kind) && (command.startsWith('reset') || command === 'restart')) {
      dropped.add(kind);
      refuse = 2;
      return lostConnection();
    }
    return next();
  };
  const r = await runUpdate(deps(store, fake, virtualClock()), 'u', { mode: 'start' });
  // NEW is broken: the rollout rolls back s1 (through the same kind of blips) and stops
  assert.equal((await statusOf(store, 's1')).status, 'rolled-back', (await statusOf(store, 's1')).error ?? '');
  assert.equal(r.status, 'failure');
  assert.equal(s1.commit, OLD);
  const steps = await store.getJournal('u', 's1');
  const cut = steps.filter((st) => /connection lost/.test(st.error ?? ''));
  assert.equal(cut.length, 4, 'each blip is in the journal');
  assert.ok(steps.filter((st) => /could not connect/.test(st.error ?? '')).length === 0, 'a refused reconnect is not a command: no journal row');
  assert.ok((await store.getEvents('u')).some((e) => e.kind === 'connection' && /connected again after/.test(e.message)));
  assert.doesNotMatch((await statusOf(store, 's1')).error ?? '', /connection/, 'judged on the health check, not on the blips');
});

test('a server unreachable at its re-check for less than reconnect_for is updated; for longer, it is unreachable, nothing changed', async (t) => {
  const store = await setup(t, ['s1', 's2']);
  const fake = new FakeTransport();
  const s1 = fake.add('s1', OLD);
  const s2 = fake.add('s2', OLD);
  let refusals = 5; // about 4 s of backoff: inside the default 30 s
  fake.onConnect = (server) => {
    if (server === 's1' && refusals-- > 0) throw refused();
    if (server === 's2') throw refused(); // never comes back
  };
  const clock = virtualClock();
  const began = clock.now().getTime();
  const r = await runUpdate(deps(store, fake, clock), 'u', { mode: 'start' });
  assert.equal((await statusOf(store, 's1')).status, 'success');
  assert.equal(s1.commit, NEW);
  assert.equal((await statusOf(store, 's2')).status, 'unreachable');
  assert.match((await statusOf(store, 's2')).error!, /could not connect, nothing was run: .*ECONNREFUSED/);
  assert.deepEqual(s2.log, []);
  assert.ok(clock.now().getTime() - began >= 30_000, 'it was given ssh.reconnect_for');
  assert.equal(r.status, 'partial-success');
});

test('gone for longer than reconnect_for after something changed: the update stops (exit 1), the server left running for start; then start finishes it', async (t) => {
  const store = await setup(t, ['s1', 's2']);
  const fake = new FakeTransport();
  const s1 = fake.add('s1', OLD);
  fake.add('s2', OLD);
  let down = false;
  let cut = false;
  fake.onConnect = (server) => {
    if (server === 's1' && down) throw refused();
  };
  fake.intercept = async (server, command, next) => {
    if (server === 's1' && command === 'restart' && !cut) {
      cut = down = true;
      return lostConnection();
    }
    return next();
  };
  await assert.rejects(
    runUpdate(deps(store, fake, virtualClock()), 'u', { mode: 'start' }),
    (e: unknown) =>
      e instanceof AppError && e.exitCode === 1 &&
      /s1 stopped answering during restart \(could not connect: .*ECONNREFUSED\)\) and did not come back within 30s \(ssh\.reconnect_for\); .* it stays running \(step restart\), and `agent-update start u` re-checks it/.test(e.message),
  );
  const s = await statusOf(store, 's1');
  assert.equal(s.status, 'running', 'neither rolled back blind nor fatal');
  assert.equal(s.step, 'restart');
  assert.equal((await store.getUpdate('u')).status, 'running');
  assert.equal((await store.getUpdate('u')).lease, null, 'the lease is released: start takes over at once');
  down = false;
  const r = await runUpdate(deps(store, fake, virtualClock()), 'u', { mode: 'start' });
  assert.equal(r.status, 'success');
  assert.equal(s1.commit, NEW);
});

test('health checks that cannot connect are "not healthy yet", inside the health timeout', async (t) => {
  const slowHealth = { ...settings, agent: { ...settings.agent, health: { ...settings.agent.health, timeoutMs: 60_000, intervalMs: 1_000 } } };
  const store = await setup(t, ['s1'], slowHealth);
  const fake = new FakeTransport();
  fake.add('s1', OLD);
  let healthCalls = 0;
  fake.intercept = async (_server, command, next) => (command === 'health' && ++healthCalls <= 3 ? lostConnection() : next());
  const r = await runUpdate(deps(store, fake, virtualClock()), 'u', { mode: 'start' });
  assert.equal(r.status, 'success');
  assert.equal((await store.getJournal('u', 's1')).filter((st) => st.phase === 'verify').length, 4, 'three lost, the fourth healthy: no retry loop of their own');
});

test('a stored plan whose command cannot be expanded (an older version made it) fails its step, journalled; never an internal error', async (t) => {
  const old = { ...settings, agent: { ...settings.agent, update: ['reset `echo {commit}`'] } };
  const store = await setup(t, ['s1'], old);
  const fake = new FakeTransport();
  const s1 = fake.add('s1', OLD);
  await crashAt(store, 's1', 'update', OLD);
  const r = await runUpdate(deps(store, fake), 'u', { mode: 'start' });
  assert.equal(r.status, 'failure');
  const s = await statusOf(store, 's1');
  assert.equal(s.status, 'fatal');
  assert.match(s.error!, /update command failed: not run: .*placeholder/);
  assert.ok(!s1.log.some((c) => c.startsWith('reset')), `nothing of it ran: ${s1.log.join(', ')}`);
  assert.ok((await store.getJournal('u', 's1')).some((st) => st.phase === 'update' && /^not run: /.test(st.error ?? '')));
});
