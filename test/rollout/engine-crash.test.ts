/**
 * kill -9 at every remote command of a rollout, against the fake Transport (a file of its own:
 * the longest of the engine's tests, run beside the others): before and after each command, the
 * next start takes over and ends as a clean run would, never touching a finished server again.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import type { RolloutSettings } from '../../src/config/types.js';
import { runUpdate } from '../../src/rollout/run.js';
import type { Store } from '../../src/store/port.js';
import { OLD, NEW } from '../support/fake-settings.js';
import { FakeTransport, type FakeServer } from '../support/fake-transport.js';
import { settings, setup, deps, virtualClock, killAt } from './engine-support.js';

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


async function crashSetup(t: TestContext, scenario: CrashScenario) {
  const store = await setup(t, ['s1', 's2', 's3'], { ...settings, rollback: scenario.rollback });
  const fake = new FakeTransport({ broken: scenario.broken });
  for (const name of ['s1', 's2', 's3']) fake.add(name, OLD);
  return { store, fake, file: store.location };
}

const deploys = (s: FakeServer) => s.log.filter((c) => c === `reset ${NEW}`).length;

for (const scenario of crashScenarios) {
  test(`kill -9 at every remote command (${scenario.title}): the takeover ends as a clean run would`, async (t) => {
    // The clean run: how many commands, and the outcome every crash must still reach.
    const clean = await crashSetup(t, scenario);
    // Every remote command counts, the lock's release too: each is a crash point.
    let total = 0;
    clean.fake.intercept = (_server, _command, next) => {
      total++;
      return next();
    };
    const cleanRun = await runUpdate(deps(clean.store, clean.fake, virtualClock()), 'u', { mode: 'start' });
    const statuses = async (store: Store) => Object.fromEntries((await store.getServers('u')).map((s) => [s.name, s.status]));
    assert.equal(cleanRun.status, scenario.expect.update);
    assert.deepEqual(await statuses(clean.store), scenario.expect.servers);
    assert.ok(total >= 5, `the clean run sent ${total} commands`);
    for (const [name, s] of clean.fake.servers) {
      assert.equal(clean.fake.lockOf(name), null, `the clean run left its lock on ${name}`);
      if (s.log.length) assert.deepEqual([s.locks[0], s.locks[s.locks.length - 1]], ['acquired', 'released'], `${name}: ${s.locks.join(', ')}`);
    }
    t.diagnostic(`${total} remote commands, each a crash point twice (before and after it ran)`);

    for (let k = 1; k <= total; k++) {
      for (const landed of [false, true]) {
        const at = `crash at command ${k}/${total} (${landed ? 'after it ran' : 'before it ran'})`;
        const { store, fake, file } = await crashSetup(t, scenario);
        const { crashedOn, clock } = await killAt(file, fake, k, landed, at);

        // What the database says at the instant of death.
        const finishedBefore = (await store.getServers('u')).filter((s) => s.status !== 'pending' && s.status !== 'running').map((s) => s.name);
        const logsBefore = new Map([...fake.servers].map(([name, s]) => [name, s.log.length]));

        fake.intercept = null;
        const taken = await runUpdate(deps(store, fake, clock), 'u', { mode: 'start' });
        const where = `${at}, on ${crashedOn}`;
        assert.equal(taken.status, scenario.expect.update, where);
        assert.deepEqual(await statuses(store), scenario.expect.servers, where);
        for (const name of finishedBefore) {
          assert.equal(fake.servers.get(name)!.log.length, logsBefore.get(name), `${where}: ${name} had finished and was touched again`);
        }
        for (const [name, s] of fake.servers) {
          assert.ok(deploys(s) <= 2, `${where}: ${name} deployed ${deploys(s)} times`);
          const expectedCommit = { success: NEW, 'rolled-back': OLD, pending: OLD, fatal: undefined }[scenario.expect.servers[name]!];
          if (expectedCommit) assert.equal(s.commit, expectedCommit, `${where}: ${name}'s commit`);
        }
        assert.deepEqual(
          (await store.getServers('u')).filter((s) => s.status === 'running'),
          [],
          `${where}: nothing left running`,
        );
        for (const name of fake.servers.keys()) assert.equal(fake.lockOf(name), null, `${where}: a lock was left on ${name}`);
        assert.deepEqual((await store.getServers('u')).filter((s) => s.lockHeld).map((s) => s.name), [], `${where}: a server still marked as locked`);
      }
    }
  });
}
