/**
 * The executor against an in-memory fake Transport: every takeover case, set up by writing the
 * crashed state straight into a real store, and checked by the exact commands that ran.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { systemClock, type Clock } from '../../src/clock.js';
import type { RolloutSettings, ServerSpec } from '../../src/config/types.js';
import { BusyError, UsageError } from '../../src/errors.js';
import { HEARTBEAT_MS } from '../../src/rollout/lease.js';
import { runUpdate } from '../../src/rollout/run.js';
import type { ServerStep } from '../../src/rollout/status.js';
import { TransportError, type ExecResult, type Session, type Transport } from '../../src/ssh/transport.js';
import { Store } from '../../src/store/store.js';
import { makeTempDir } from '../helpers/tmp.js';

const OLD = 'a'.repeat(40);
const NEW = 'b'.repeat(40);
const OTHER = 'c'.repeat(40);

interface FakeServer {
  commit: string;
  online: boolean;
  log: string[];
}

/** Servers as plain data: `reset --hard X` moves the commit, `restart` brings it online unless broken. */
class FakeTransport implements Transport {
  readonly servers = new Map<string, FakeServer>();
  /** a test's hook around every command: answer it itself, or call `next` to run it as usual */
  intercept: ((server: string, command: string, next: () => Promise<ExecResult>) => Promise<ExecResult>) | null = null;
  constructor(private readonly broken = new Set<string>()) {}

  add(name: string, commit: string): FakeServer {
    const s = { commit, online: true, log: [] };
    this.servers.set(name, s);
    return s;
  }

  async connect(server: ServerSpec): Promise<Session> {
    const s = this.servers.get(server.name)!;
    const broken = this.broken;
    const ok = (stdout: string): ExecResult => ({ code: 0, stdout, stderr: '', timedOut: false, error: null, durationMs: 1 });
    const run = async (command: string): Promise<ExecResult> => {
        s.log.push(command);
        if (command === 'version') return ok(s.commit + '\n');
        const reset = /^reset '?([0-9a-f]{40})'?$/.exec(command);
        if (reset) {
          s.commit = reset[1]!;
          s.online = false;
          return ok('');
        }
        if (command === 'restart') {
          s.online = !broken.has(s.commit);
          return ok('');
        }
        if (command === 'health') return s.online ? ok(`online ${s.commit}`) : { ...ok(''), code: 7 };
        throw new Error(`unexpected command ${command}`);
    };
    return {
      exec: (command: string) => (this.intercept ? this.intercept(server.name, command, () => run(command)) : run(command)),
      close() {},
    };
  }

  close(): void {}
}

const settings: RolloutSettings = {
  source: { repo: '/r', branch: 'master', commit: NEW },
  ssh: {
    user: 'u', port: 22, identityFile: null, passphraseEnv: 'X', agent: false, knownHosts: '/k',
    connectTimeoutMs: 1000, commandTimeoutMs: 1000, keepaliveIntervalMs: 0, outputLimitBytes: 1024,
  },
  agent: {
    versionCommand: 'version',
    update: ['reset {commit}'],
    restart: { web: 'restart' },
    health: { command: 'health', expect: '{commit}', timeoutMs: 300, intervalMs: 50 },
  },
  restart: ['web'],
  rollback: { enabled: true, continueAfterRollback: false, commit: null },
};

function setup(t: TestContext, names: string[]) {
  const dir = makeTempDir('agent-update-engine-');
  const store = new Store(join(dir, 'p.db'));
  t.after(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  store.createUpdate({
    name: 'u', repo: '/r', branch: 'master', commit: NEW, configFile: null, settings, testStopAfter: 0,
    servers: names.map((name) => ({ name, host: name, port: 22, user: 'u', type: 'app' })),
  });
  for (const s of store.getServers('u')) store.setProbedCommit(s.id, OLD);
  store.setUpdateStatus('u', 'pending');
  return store;
}

/** Leave the update as a process killed mid-server would: running, the server in `step`, no lease. */
function crashAt(store: Store, server: string, step: ServerStep, fromCommit: string | null): void {
  store.setUpdateStatus('u', 'running');
  const s = store.getServers('u').find((x) => x.name === server)!;
  store.setServerStatus(s.id, 'running', { step, fromCommit, toCommit: NEW });
}

const deps = (store: Store, transport: Transport, clock: Clock = systemClock) => ({ store, transport, clock, emit: () => {} });

/** Time that passes only when the engine sleeps, and at once: health polling without the wait. */
function virtualClock(): Clock {
  let t = Date.now();
  return {
    now: () => new Date(t),
    sleep: (ms) => {
      t += ms;
      return new Promise((resolve) => setImmediate(resolve));
    },
  };
}
const statusOf = (store: Store, name: string) => store.getServers('u').find((s) => s.name === name)!;

test('a clean run: recheck, update, version, restart, health; in that order', async (t) => {
  const store = setup(t, ['s1']);
  const fake = new FakeTransport();
  const s1 = fake.add('s1', OLD);
  const r = await runUpdate(deps(store, fake), 'u', { mode: 'start' });
  assert.equal(r.status, 'success');
  assert.deepEqual(s1.log, ['version', `reset ${NEW}`, 'version', 'restart', 'health']);
  assert.equal(statusOf(store, 's1').fromCommit, OLD);
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
    const store = setup(t, ['s1', 's2', 's3']);
    const fake = new FakeTransport();
    const s1 = fake.add('s1', NEW);
    const s2 = fake.add('s2', c.at);
    const s3 = fake.add('s3', OLD);
    // s1 had finished before the crash.
    const first = statusOf(store, 's1');
    store.setUpdateStatus('u', 'running');
    store.setServerStatus(first.id, 'running', { step: 'update', fromCommit: OLD, toCommit: NEW });
    store.setServerStatus(first.id, 'success', {});
    const s = statusOf(store, 's2');
    store.setServerStatus(s.id, 'running', { step: c.step, fromCommit: c.from, toCommit: NEW });

    const r = await runUpdate(deps(store, fake), 'u', { mode: 'start' });
    assert.equal(statusOf(store, 's2').status, c.expect);
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
  const store = setup(t, ['s1']);
  const fake = new FakeTransport(new Set([NEW]));
  const s1 = fake.add('s1', NEW);
  s1.online = false;
  crashAt(store, 's1', 'verify', OLD);
  const r = await runUpdate(deps(store, fake), 'u', { mode: 'start' });
  assert.equal(r.status, 'failure');
  assert.equal(statusOf(store, 's1').status, 'rolled-back');
  assert.equal(s1.commit, OLD);
});

test('an executor whose lease is taken stops before its next write', async (t) => {
  // The lease's heartbeat timer is mocked: the test fires one beat instead of waiting 2 s for it.
  t.mock.timers.enable({ apis: ['setInterval'] });
  const store = setup(t, ['s1', 's2']);
  const fake = new FakeTransport();
  const s1 = fake.add('s1', OLD);
  fake.add('s2', OLD);
  // Another process "takes over" while s1 is being updated.
  fake.intercept = async (_server, cmd, next) => {
    if (cmd.startsWith('reset')) {
      store.db.prepare("UPDATE updates SET lease_token = 'thief' WHERE name = 'u'").run();
      t.mock.timers.tick(HEARTBEAT_MS); // one heartbeat: it finds the lease taken
    }
    return next();
  };
  await assert.rejects(runUpdate(deps(store, fake), 'u', { mode: 'start' }), BusyError);
  assert.equal(statusOf(store, 's1').status, 'running', 'no result was written after losing the lease');
  assert.equal(statusOf(store, 's1').step, 'update');
  assert.deepEqual(s1.log, ['version', `reset ${NEW}`], 'and no remote command either');
});

test('takeover: the re-check fails before any update command ran → unreachable, nothing run, nothing rolled back', async (t) => {
  // Crashed right after the server went `running (update)` with fromCommit cleared: no update
  // command has run. A failed re-check must leave it untouched, as runServer does, not roll it
  // back (to rollback.commit, a commit never seen there) nor call it fatal.
  const store = setup(t, ['s1', 's2']);
  const withRollbackCommit = { ...settings, rollback: { ...settings.rollback, commit: OTHER } };
  store.db.prepare('UPDATE updates SET settings_json = ?').run(JSON.stringify(withRollbackCommit));
  const fake = new FakeTransport();
  const s1 = fake.add('s1', OLD);
  const s2 = fake.add('s2', OLD);
  fake.intercept = async (server, cmd, next) => {
    if (server !== 's1' || cmd !== 'version') return next();
    s1.log.push(cmd);
    return { code: 1, stdout: '', stderr: 'fatal: not a git repository', timedOut: false, error: null, durationMs: 1 };
  };
  crashAt(store, 's1', 'update', null);
  await runUpdate(deps(store, fake), 'u', { mode: 'start' });
  assert.deepEqual(s1.log, ['version'], 'nothing but the re-check ran on s1');
  assert.equal(s1.commit, OLD);
  assert.equal(statusOf(store, 's1').status, 'unreachable');
  assert.equal(statusOf(store, 's2').status, 'success', 'an untouched server does not stop the rollout');
  assert.equal(s2.commit, NEW);
});

test('an executor whose lease was taken while it was frozen stops before its next write, even before its next heartbeat', async (t) => {
  // A process stopped (SIGSTOP, a suspended laptop) for longer than the lease's staleness is
  // taken over; when it wakes, the reply to its command can arrive before its heartbeat timer
  // runs. It must not act on the in-memory belief that it still holds the lease.
  const store = setup(t, ['s1', 's2']);
  const fake = new FakeTransport();
  const s1 = fake.add('s1', OLD);
  const s2 = fake.add('s2', OLD);
  fake.intercept = async (_server, cmd, next) => {
    const r = await next();
    if (cmd.startsWith('reset')) store.db.prepare("UPDATE updates SET lease_token = 'thief' WHERE name = 'u'").run();
    return r;
  };
  await assert.rejects(runUpdate(deps(store, fake), 'u', { mode: 'start' }), BusyError);
  assert.deepEqual(s1.log, ['version', `reset ${NEW}`], 'no remote command after the lease was taken');
  assert.equal(statusOf(store, 's1').status, 'running', 'no state written after the lease was taken');
  assert.equal(statusOf(store, 's1').step, 'update');
  assert.deepEqual(s2.log, []);
});

test('placeholders in agent.health.command are expanded (the target while verifying, the rollback commit while verifying a rollback)', async (t) => {
  const store = setup(t, ['s1', 's2']);
  const healthWithCommit = {
    ...settings,
    agent: { ...settings.agent, health: { ...settings.agent.health, command: 'health-at {commit}', expect: '' } },
  };
  store.db.prepare('UPDATE updates SET settings_json = ?').run(JSON.stringify(healthWithCommit));
  const fake = new FakeTransport(new Set([NEW]));
  const s1 = fake.add('s1', OLD);
  fake.intercept = async (server, cmd, next) => {
    const m = /^health-at (.*)$/.exec(cmd);
    if (!m) return next();
    const f = fake.servers.get(server)!;
    f.log.push(cmd);
    const up = f.online && m[1] === f.commit;
    return { code: up ? 0 : 7, stdout: '', stderr: up ? '' : `not online at ${m[1]}`, timedOut: false, error: null, durationMs: 1 };
  };
  const r = await runUpdate(deps(store, fake), 'u', { mode: 'start' });
  // NEW is broken: its health check fails, the rollback to OLD is verified online at OLD.
  assert.ok(s1.log.includes(`health-at ${NEW}`), s1.log.join('\n'));
  assert.equal(s1.log[s1.log.length - 1], `health-at ${OLD}`);
  assert.equal(statusOf(store, 's1').status, 'rolled-back', statusOf(store, 's1').error ?? '');
  assert.equal(r.status, 'failure');
});

/*
 * kill -9 at every instant, at the granularity of remote commands: for each command a clean run
 * sends, a first executor dies there, either before the command reaches the server or after it
 * ran there with the reply lost. A second executor (a new store connection, as a new process
 * would have) takes over. Whatever the instant, the rollout must end as the clean run did, no
 * server that had finished is touched again, and no server is deployed more than twice.
 */
interface CrashScenario {
  title: string;
  broken: string[];
  rollback: RolloutSettings['rollback'];
  expect: { update: string; servers: Record<string, string> };
}

const crashScenarios: CrashScenario[] = [
  {
    title: 'a good commit',
    broken: [],
    rollback: settings.rollback,
    expect: { update: 'success', servers: { s1: 'success', s2: 'success', s3: 'success' } },
  },
  {
    title: 'a broken commit, rollback stops the rollout',
    broken: [NEW],
    rollback: settings.rollback,
    expect: { update: 'failure', servers: { s1: 'rolled-back', s2: 'pending', s3: 'pending' } },
  },
  {
    title: 'a broken commit, continue after rollback',
    broken: [NEW],
    rollback: { ...settings.rollback, continueAfterRollback: true },
    expect: { update: 'failure', servers: { s1: 'rolled-back', s2: 'rolled-back', s3: 'rolled-back' } },
  },
  {
    title: 'a broken commit whose rollback fails too',
    broken: [NEW, OLD],
    rollback: settings.rollback,
    expect: { update: 'failure', servers: { s1: 'fatal', s2: 'pending', s3: 'pending' } },
  },
];

function crashSetup(t: TestContext, scenario: CrashScenario) {
  const store = setup(t, ['s1', 's2', 's3']);
  store.db.prepare('UPDATE updates SET settings_json = ?').run(JSON.stringify({ ...settings, rollback: scenario.rollback }));
  const fake = new FakeTransport(new Set(scenario.broken));
  for (const name of ['s1', 's2', 's3']) fake.add(name, OLD);
  return { store, fake, file: store.db.name };
}

const deploys = (s: FakeServer) => s.log.filter((c) => c === `reset ${NEW}`).length;

for (const scenario of crashScenarios) {
  test(`kill -9 at every remote command (${scenario.title}): the takeover ends as a clean run would`, async (t) => {
    // The clean run: how many commands, and the outcome every crash must still reach.
    const clean = crashSetup(t, scenario);
    const cleanRun = await runUpdate(deps(clean.store, clean.fake, virtualClock()), 'u', { mode: 'start' });
    const statuses = (store: Store) => Object.fromEntries(store.getServers('u').map((s) => [s.name, s.status]));
    assert.equal(cleanRun.status, scenario.expect.update);
    assert.deepEqual(statuses(clean.store), scenario.expect.servers);
    const total = [...clean.fake.servers.values()].reduce((n, s) => n + s.log.length, 0);
    assert.ok(total >= 5, `the clean run sent ${total} commands`);
    t.diagnostic(`${total} remote commands, each a crash point twice (before and after it ran)`);

    for (let k = 1; k <= total; k++) {
      for (const landed of [false, true]) {
        const at = `crash at command ${k}/${total} (${landed ? 'after it ran' : 'before it ran'})`;
        const { store, fake, file } = crashSetup(t, scenario);
        // The first executor, on its own connection to the database, as a process of its own.
        const first = new Store(file);
        let sent = 0;
        let dead = false;
        let crashedOn = '';
        fake.intercept = async (server, command, next) => {
          if (dead) return new Promise<never>(() => {}); // a dead process sends nothing more
          if (++sent < k) return next();
          crashedOn = `${server}: ${command}`;
          if (landed) await next();
          dead = true;
          first.close(); // nothing more is written by it either
          return new Promise<never>(() => {});
        };
        const clock = virtualClock();
        let settled = false;
        void runUpdate(deps(first, fake, clock), 'u', { mode: 'start' })
          .catch(() => {})
          .finally(() => (settled = true));
        while (!dead && !settled) await new Promise((r) => setImmediate(r));
        assert.ok(dead, `${at}: the first executor ended without sending command ${k}`);

        // What the database says at the instant of death; the lease names a process that is gone.
        const finishedBefore = store.getServers('u').filter((s) => s.status !== 'pending' && s.status !== 'running').map((s) => s.name);
        const logsBefore = new Map([...fake.servers].map(([name, s]) => [name, s.log.length]));
        store.db.prepare('UPDATE updates SET lease_pid = 2147483646, lease_pid_start = NULL WHERE name = ?').run('u');

        fake.intercept = null;
        const taken = await runUpdate(deps(store, fake, clock), 'u', { mode: 'start' });
        const where = `${at}, on ${crashedOn}`;
        assert.equal(taken.status, scenario.expect.update, where);
        assert.deepEqual(statuses(store), scenario.expect.servers, where);
        for (const name of finishedBefore) {
          assert.equal(fake.servers.get(name)!.log.length, logsBefore.get(name), `${where}: ${name} had finished and was touched again`);
        }
        for (const [name, s] of fake.servers) {
          assert.ok(deploys(s) <= 2, `${where}: ${name} deployed ${deploys(s)} times`);
          const expectedCommit = { success: NEW, 'rolled-back': OLD, pending: OLD, fatal: undefined }[scenario.expect.servers[name]!];
          if (expectedCommit) assert.equal(s.commit, expectedCommit, `${where}: ${name}'s commit`);
        }
        assert.deepEqual(
          store.getServers('u').filter((s) => s.status === 'running'),
          [],
          `${where}: nothing left running`,
        );
      }
    }
  });
}

test('a problem on our side of SSH (the key, its passphrase) refuses the start before any server is touched', async (t) => {
  const store = setup(t, ['s1', 's2']);
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
  assert.equal(store.getUpdate('u').status, 'pending');
  assert.deepEqual(store.getServers('u').map((s) => s.status), ['pending', 'pending']);
  assert.equal(store.getUpdate('u').lease, null, 'no lease taken');
});
