/**
 * What the engine's tests against the fake Transport share (engine.test.ts, engine-crash.test.ts):
 * a real store with one update planned, the engine's dependencies, a clock that runs at once.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { type TestContext } from 'node:test';
import { systemClock, type Clock } from '../../src/clock.js';
import { systemLiveness, type Liveness } from '../../src/liveness.js';
import type { RolloutSettings } from '../../src/config/types.js';
import type { ServerStep } from '../../src/model/lifecycle.js';
import type { ServerRecord } from '../../src/model/records.js';
import { type Transport } from '../../src/ssh/transport.js';
import type { Store } from '../../src/store/port.js';
import { OLD, NEW, fakeSettings } from '../support/fake-settings.js';
import { makeTempDir } from '../helpers/tmp.js';
import { openStore } from '../helpers/db.js';
import { GONE_PID, liveness } from '../helpers/liveness.js';
import { runUpdate } from '../../src/rollout/run.js';
import type { FakeTransport } from '../support/fake-transport.js';
import assert from 'node:assert/strict';

export const settings: RolloutSettings = fakeSettings;

/** A SQLite plan database in a folder of its own, closed and removed after the test. */
export function tempStore(t: TestContext, prefix = 'agent-update-engine-'): Store {
  const dir = makeTempDir(prefix);
  const store = openStore(join(dir, 'p.db'));
  t.after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return store;
}

/**
 * Update `u` of `names` (to `commit`) planned in `store`, each server probed at OLD; `more`, what
 * else the plan holds, is made before the update is `pending`.
 */
export async function planUpdate(
  store: Store,
  names: string[],
  planned: RolloutSettings = settings,
  commit = NEW,
  more: (servers: ServerRecord[]) => Promise<void> = async () => {},
): Promise<void> {
  await store.createUpdate({
    name: 'u', repo: '/r', branch: 'master', commit, configFile: null, settings: planned, testStopAfter: 0,
    servers: names.map((name) => ({ name, host: name, port: 22, user: 'u', type: 'app' })),
  });
  const servers = await store.getServers('u');
  for (const s of servers) await store.setProbedCommit(s.id, OLD);
  await more(servers);
  await store.setUpdateStatus('u', 'pending');
}

export async function setup(t: TestContext, names: string[], planned: RolloutSettings = settings) {
  const store = tempStore(t);
  await planUpdate(store, names, planned);
  return store;
}

/** Leave the update as a process killed mid-server would: running, the server in `step`, no lease. */
export async function crashAt(store: Store, server: string, step: ServerStep, fromCommit: string | null): Promise<void> {
  await store.setUpdateStatus('u', 'running');
  const s = (await store.getServers('u')).find((x) => x.name === server)!;
  await store.setServerStatus(s.id, 'running', { step, fromCommit, toCommit: NEW, lockHeld: true });
}

/** Another executor takes the lease over (as a `start` elsewhere that judged us dead would). */
export async function takeLease(store: Store, update: string): Promise<void> {
  await store.acquireLease(update, { token: 'thief', pid: 4242, host: 'elsewhere', pidStart: null }, () => true);
}

export const deps = (store: Store, transport: Transport, clock: Clock = systemClock, live: Liveness = systemLiveness) => ({ store, transport, clock, liveness: live, emit: () => {} });

/** Time that passes only when the engine sleeps, and at once: health polling without the wait. */
export function virtualClock(): Clock {
  let t = Date.now();
  return {
    now: () => new Date(t),
    sleep: (ms) => {
      t += ms;
      return new Promise((resolve) => setImmediate(resolve));
    },
  };
}
export const statusOf = async (store: Store, name: string) => (await store.getServers('u')).find((s) => s.name === name)!;

/**
 * The first executor, on its own connection to the database (as a process of its own), run until
 * it dies at remote command `k`: before it is sent, or (`landed`) once it ran. A dead process
 * sends and writes nothing more.
 */
export async function killAt(file: string, fake: FakeTransport, k: number, landed: boolean, at: string): Promise<{ crashedOn: string; clock: ReturnType<typeof virtualClock> }> {
  const first = openStore(file);
  let sent = 0;
  let dead = false;
  let crashedOn = '';
  fake.intercept = async (server, command, next) => {
    if (dead) return new Promise<never>(() => {});
    if (++sent < k) return next();
    crashedOn = `${server}: ${command}`;
    if (landed) await next();
    dead = true;
    await first.close();
    return new Promise<never>(() => {});
  };
  const clock = virtualClock();
  let settled = false;
  // its lease and its locks name a process that is gone, as a process killed with -9 would be
  void runUpdate(deps(first, fake, clock, liveness({ pid: GONE_PID, pidStart: null })), 'u', { mode: 'start' })
    .catch(() => {})
    .finally(() => (settled = true));
  while (!dead && !settled) await new Promise((r) => setImmediate(r));
  assert.ok(dead, `${at}: the first executor ended without sending command ${k}`);
  return { crashedOn, clock };
}
