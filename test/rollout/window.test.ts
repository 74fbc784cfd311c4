/**
 * execution.window in the executor: the loop's rule (windowStep, pure), then runUpdate on a real
 * store with the fake transport and a virtual clock (time passes only when the engine sleeps, and
 * at once): outside the window it pauses before any server (nothing sent to any), or waits with
 * --wait-for-window (a pause asked meanwhile still pauses, a hard stop still stops), a server in
 * flight finishes when the window closes under it (in a run and in a takeover), and the
 * test-mode limit survives a pause for the window.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import type { Clock } from '../../src/clock.js';
import type { RolloutSettings, RolloutWindow } from '../../src/config/types.js';
import { InterruptedError } from '../../src/errors.js';
import { systemLiveness } from '../../src/liveness.js';
import { requestPause } from '../../src/rollout/control.js';
import type { RolloutEvent } from '../../src/rollout/events.js';
import { testModeLimit } from '../../src/rollout/rules.js';
import { runUpdate } from '../../src/rollout/run.js';
import { WINDOW_POLL_MS, windowStep } from '../../src/rollout/window.js';
import type { Store } from '../../src/store/port.js';
import { openStore } from '../helpers/db.js';
import { liveness } from '../helpers/liveness.js';
import { makeTempDir } from '../helpers/tmp.js';
import { fakeSettings, NEW, OLD } from '../support/fake-settings.js';
import { FakeTransport } from '../support/fake-transport.js';

const OFFICE: RolloutWindow = { days: ['mon', 'tue', 'wed', 'thu', 'fri'], hours: '09:00-17:00', timezone: 'Europe/Berlin' };

// --- the rule ---

test('windowStep: no window, or open → go; closed → pause with the reason, or wait (announced once per opening)', () => {
  const sat = new Date('2025-01-11T12:00:00Z');
  const mon = new Date('2025-01-13T08:00:00Z');
  assert.deepEqual(windowStep(sat, undefined, false, null), { kind: 'go' });
  assert.deepEqual(windowStep(new Date('2025-01-13T09:00:00Z'), OFFICE, false, null), { kind: 'go' });
  assert.deepEqual(windowStep(sat, OFFICE, false, null, 'UTC'), {
    kind: 'pause',
    reason: 'outside the rollout window (mon-fri 09:00-17:00 Europe/Berlin): it opens Mon 2025-01-13 09:00 Europe/Berlin (local time: Mon 2025-01-13 08:00 UTC)',
  });
  const wait = windowStep(sat, OFFICE, true, null, 'Europe/Berlin');
  assert.deepEqual(wait, {
    kind: 'wait',
    opensAt: mon,
    waitMs: mon.getTime() - sat.getTime(),
    announce: true,
    window: 'mon-fri 09:00-17:00 Europe/Berlin',
    message: 'waiting for the rollout window (mon-fri 09:00-17:00 Europe/Berlin): it opens Mon 2025-01-13 09:00 Europe/Berlin',
  });
  // the same opening already announced: not again; another one (the clock jumped a week): again
  assert.equal((windowStep(new Date('2025-01-12T12:00:00Z'), OFFICE, true, mon.getTime()) as { announce: boolean }).announce, false);
  assert.equal((windowStep(new Date('2025-01-18T12:00:00Z'), OFFICE, true, mon.getTime()) as { announce: boolean }).announce, true);
});

test('testModeLimit: a resume keeps the limit a pause for the window stopped short of; any other pause clears it', () => {
  const paused = { status: 'paused' as const, stopAtWorked: 3, stopFromWorked: 1, testStopAfter: 2 };
  assert.deepEqual(testModeLimit({ ...paused, reason: 'outside the rollout window (…): it opens …' }, 2), { stopAtWorked: 3, stopFromWorked: 1 });
  assert.deepEqual(testModeLimit({ ...paused, reason: 'pause requested by op@host' }, 2), { stopAtWorked: null, stopFromWorked: null });
  assert.deepEqual(testModeLimit({ ...paused, reason: 'outside the rollout window (…): it opens …' }, 2, 5), { stopAtWorked: 7, stopFromWorked: 2 });
});

// --- the engine ---

/** A clock at `start` that moves only when the engine sleeps (at once); `onSleep` runs after each sleep. */
function virtualClock(start: string, onSleep?: (n: number) => void | Promise<void>): Clock & { set(iso: string): void; sleeps: number } {
  let t = Date.parse(start);
  const c = {
    sleeps: 0,
    now: () => new Date(t),
    set: (iso: string) => void (t = Date.parse(iso)),
    sleep: async (ms: number, signal?: AbortSignal) => {
      if (signal?.aborted) return;
      t += ms;
      c.sleeps++;
      await onSleep?.(c.sleeps);
      await new Promise((resolve) => setImmediate(resolve));
    },
  };
  return c;
}

async function setup(t: TestContext, names: string[], window: RolloutWindow | undefined, testStopAfter = 0) {
  const dir = makeTempDir('agent-update-window-');
  const store = openStore(join(dir, 'p.db'));
  t.after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const settings: RolloutSettings = { ...fakeSettings, execution: { busyWaitMs: 0, maxFailures: null, ...(window ? { window } : {}) } };
  await store.createUpdate({
    name: 'u', repo: '/r', branch: 'master', commit: NEW, configFile: null, settings, testStopAfter,
    servers: names.map((name) => ({ name, host: name, port: 22, user: 'u', type: 'app' })),
  });
  for (const s of await store.getServers('u')) await store.setProbedCommit(s.id, OLD);
  await store.setUpdateStatus('u', 'pending');
  const fake = new FakeTransport();
  for (const n of names) fake.add(n, OLD);
  return { store, fake };
}

function deps(store: Store, fake: FakeTransport, clock: Clock, events: RolloutEvent[] = [], live = systemLiveness) {
  return { store, transport: fake, clock, liveness: live, emit: (e: RolloutEvent) => void events.push(e) };
}

const statuses = async (store: Store) => Object.fromEntries((await store.getServers('u')).map((s) => [s.name, s.status]));

test('outside the window: paused before any server, the reason says when it opens; nothing is sent to a server', async (t) => {
  const { store, fake } = await setup(t, ['s1', 's2'], OFFICE);
  const events: RolloutEvent[] = [];
  // Sunday 03:00 in Berlin
  const r = await runUpdate(deps(store, fake, virtualClock('2025-01-12T02:00:00Z'), events), 'u', { mode: 'start' });
  assert.equal(r.status, 'paused');
  assert.equal(r.exitCode, 3);
  assert.match(r.reason, /^outside the rollout window \(mon-fri 09:00-17:00 Europe\/Berlin\): it opens Mon 2025-01-13 09:00 Europe\/Berlin/);
  assert.deepEqual(fake.commands, [], 'no command, not even a lock, on any server');
  assert.deepEqual(await statuses(store), { s1: 'pending', s2: 'pending' });
  const u = await store.getUpdate('u');
  assert.equal(u.status, 'paused');
  assert.equal(u.reason, r.reason);
  const finished = events.find((e) => e.type === 'update-finished');
  assert.deepEqual(finished && { status: finished.status, reason: finished.reason }, { status: 'paused', reason: r.reason });
  assert.ok(!events.some((e) => e.type === 'window-waiting' || e.type === 'server-started'));
  assert.ok((await store.getEvents('u')).some((e) => e.kind === 'window' && e.message === r.reason), 'journalled for logs');
});

test('inside the window: the rollout runs as without one', async (t) => {
  const { store, fake } = await setup(t, ['s1', 's2'], OFFICE);
  const r = await runUpdate(deps(store, fake, virtualClock('2025-01-13T10:00:00Z')), 'u', { mode: 'start' });
  assert.equal(r.status, 'success');
  assert.deepEqual(await statuses(store), { s1: 'success', s2: 'success' });
});

test('--wait-for-window: one window-waiting event, then the rollout begins once it opens', async (t) => {
  const { store, fake } = await setup(t, ['s1', 's2'], OFFICE);
  const events: RolloutEvent[] = [];
  // Monday 08:58:30 in Berlin: 90 s to wait
  const clock = virtualClock('2025-01-13T07:58:30Z');
  let firstCommandAt: Date | null = null;
  fake.intercept = (_server, _command, next) => {
    firstCommandAt ??= clock.now();
    return next();
  };
  const r = await runUpdate(deps(store, fake, clock, events), 'u', { mode: 'start', waitForWindow: true });
  assert.equal(r.status, 'success');
  const waits = events.filter((e) => e.type === 'window-waiting');
  assert.deepEqual(waits, [
    {
      type: 'window-waiting',
      update: 'u',
      window: 'mon-fri 09:00-17:00 Europe/Berlin',
      timezone: 'Europe/Berlin',
      opensAt: '2025-01-13T08:00:00.000Z',
      waitMs: 90_000,
      message: waits[0]!.type === 'window-waiting' ? waits[0]!.message : '',
    },
  ]);
  assert.match((waits[0] as { message: string }).message, /^waiting for the rollout window \(mon-fri 09:00-17:00 Europe\/Berlin\): it opens Mon 2025-01-13 09:00 Europe\/Berlin/);
  assert.ok(firstCommandAt! >= new Date('2025-01-13T08:00:00Z'), `the first command ran at ${firstCommandAt!.toISOString()}, before the window opened`);
  // it looked every WINDOW_POLL_MS while it waited
  assert.ok(clock.sleeps >= 90_000 / WINDOW_POLL_MS);
  const order = events.map((e) => e.type);
  assert.ok(order.indexOf('window-waiting') < order.indexOf('server-started'));
  assert.ok((await store.getEvents('u')).some((e) => e.kind === 'window' && /^waiting for the rollout window/.test(e.message)));
});

test('--wait-for-window: a pause asked while waiting pauses the update (nothing touched); a hard stop stops it', async (t) => {
  const { store, fake } = await setup(t, ['s1'], OFFICE);
  const clock = virtualClock('2025-01-12T02:00:00Z', async (n) => {
    if (n === 5) await requestPause(store, 'u', new Date(), systemLiveness, 'op@desk');
  });
  const r = await runUpdate(deps(store, fake, clock), 'u', { mode: 'start', waitForWindow: true });
  assert.equal(r.status, 'paused');
  assert.equal(r.reason, 'pause requested by op@desk');
  assert.equal(clock.sleeps, 5, 'it saw the pause at its next look');
  assert.deepEqual(fake.commands, []);

  // resumed, still outside: waiting again; a second Ctrl-C (the run's signal) ends it at once
  const stop = new AbortController();
  const again = virtualClock('2025-01-12T02:10:00Z', (n) => {
    if (n === 3) stop.abort();
  });
  await assert.rejects(runUpdate(deps(store, fake, again), 'u', { mode: 'resume', waitForWindow: true, signal: stop.signal }), InterruptedError);
  assert.deepEqual(fake.commands, []);
  assert.deepEqual(await statuses(store), { s1: 'pending' });
});

test('the window closes while a server is in flight: that server finishes, the next one is not begun', async (t) => {
  const { store, fake } = await setup(t, ['s1', 's2', 's3'], OFFICE);
  // Friday 16:59 in Berlin; s1's restart happens at 17:00:30
  const clock = virtualClock('2025-01-10T15:59:00Z');
  fake.intercept = (server, command, next) => {
    if (server === 's1' && command.includes('restart')) clock.set('2025-01-10T16:00:30Z');
    return next();
  };
  const r = await runUpdate(deps(store, fake, clock), 'u', { mode: 'start' });
  assert.equal(r.status, 'paused');
  assert.match(r.reason, /it opens Mon 2025-01-13 09:00 Europe\/Berlin/);
  assert.deepEqual(await statuses(store), { s1: 'success', s2: 'pending', s3: 'pending' });
  assert.deepEqual(fake.servers.get('s2')!.log, []);
  assert.equal(fake.lockOf('s1'), null, 'the finished server\'s lock released');

  // Monday: resume goes on with s2 and s3
  const monday = await runUpdate(deps(store, fake, virtualClock('2025-01-13T08:00:00Z')), 'u', { mode: 'resume' });
  assert.equal(monday.status, 'success');
});

test('a takeover outside the window finishes the server in flight, then pauses before the next', async (t) => {
  const { store, fake } = await setup(t, ['s1', 's2'], OFFICE);
  // a dead executor left s1 in verify, at the target
  await store.setUpdateStatus('u', 'running');
  const s1 = (await store.getServers('u'))[0]!;
  await store.setServerStatus(s1.id, 'running', { step: 'verify', fromCommit: OLD, toCommit: NEW });
  fake.servers.get('s1')!.commit = NEW;
  const r = await runUpdate(deps(store, fake, virtualClock('2025-01-11T12:00:00Z'), [], liveness()), 'u', { mode: 'start' });
  assert.equal(r.status, 'paused');
  assert.match(r.reason, /^outside the rollout window/);
  assert.deepEqual(await statuses(store), { s1: 'success', s2: 'pending' });
  assert.deepEqual(fake.servers.get('s1')!.log, ['version', 'health']);
  assert.deepEqual(fake.servers.get('s2')!.log, []);
});

test('test mode and the window: the limit set at start survives the pause for the window', async (t) => {
  const { store, fake } = await setup(t, ['s1', 's2', 's3'], OFFICE, 1);
  const closed = await runUpdate(deps(store, fake, virtualClock('2025-01-11T12:00:00Z')), 'u', { mode: 'start' });
  assert.match(closed.reason, /^outside the rollout window/);
  assert.equal((await store.getUpdate('u')).stopAtWorked, 1);
  const open = await runUpdate(deps(store, fake, virtualClock('2025-01-13T10:00:00Z')), 'u', { mode: 'resume' });
  assert.equal(open.status, 'paused');
  assert.equal(open.reason, 'test mode: 1 server finished');
  assert.deepEqual(await statuses(store), { s1: 'success', s2: 'pending', s3: 'pending' });
});
