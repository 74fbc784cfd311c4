/**
 * kill -9 at every remote command of a server walking a stepping stone, against the fake
 * Transport (a file of its own, run beside engine-crash.test.ts): the takeover finishes or rolls
 * back the right hop.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import type { RolloutSettings } from '../../src/config/types.js';
import { runUpdate } from '../../src/rollout/run.js';
import type { Store } from '../../src/store/port.js';
import { OLD, NEW, OTHER } from '../support/fake-settings.js';
import { FakeTransport } from '../support/fake-transport.js';
import { settings, setup, deps, virtualClock, statusOf, killAt } from './engine-support.js';

/*
 * The same kill -9 at every remote command, for a server walking a stepping stone (s1: OLD at
 * 1.0.0 → STONE 1.1.0 → NEW 1.3.0) before a direct one (s2): whatever the instant (inside hop 1's
 * update or verify, between the hop's event and the next hop's index, inside hop 2, during hop
 * 2's rollback), the takeover ends as the clean run did, on the right hop, with the reason naming
 * it; a stone verified before the crash is never deployed again except by hop 2's rollback.
 */
const STONE = 'd'.repeat(40);
const PATH = [{ commit: STONE, version: '1.1.0' }, { commit: NEW, version: '1.3.0' }];

interface PathScenario {
  title: string;
  broken: string[];
  rollback: RolloutSettings['rollback'];
  expect: { update: string; servers: Record<string, { status: string; commit: string; error?: RegExp }> };
}

const pathScenarios: PathScenario[] = [
  {
    title: 'a good path',
    broken: [],
    rollback: settings.rollback,
    expect: { update: 'success', servers: { s1: { status: 'success', commit: NEW }, s2: { status: 'success', commit: NEW } } },
  },
  {
    title: 'hop 2 broken, continue after rollback',
    broken: [NEW],
    rollback: { ...settings.rollback, continueAfterRollback: true },
    expect: {
      update: 'failure',
      servers: {
        s1: { status: 'rolled-back', commit: STONE, error: /^hop 2 of 2 \(1\.1\.0 → 1\.3\.0\): .*; rolled back to the stepping stone 1\.1\.0 \(d{12}\), verified: it runs 1\.1\.0 now, not the target$/ },
        s2: { status: 'rolled-back', commit: OLD },
      },
    },
  },
  {
    title: 'hop 2 broken, with rollback.commit: the stone, not rollback.commit, for the path server',
    broken: [NEW],
    rollback: { ...settings.rollback, continueAfterRollback: true, commit: OTHER },
    expect: {
      update: 'failure',
      servers: { s1: { status: 'rolled-back', commit: STONE, error: /^hop 2 of 2 \(1\.1\.0 → 1\.3\.0\): / }, s2: { status: 'rolled-back', commit: OTHER } },
    },
  },
  {
    title: 'hop 1 broken',
    broken: [STONE],
    rollback: settings.rollback,
    expect: { update: 'failure', servers: { s1: { status: 'rolled-back', commit: OLD, error: /^hop 1 of 2 \(1\.0\.0 → 1\.1\.0\): / }, s2: { status: 'pending', commit: OLD } } },
  },
];

async function pathSetup(t: TestContext, scenario: PathScenario) {
  const store = await setup(t, ['s1', 's2'], { ...settings, rollback: scenario.rollback });
  const s1 = (await store.getServers('u')).find((s) => s.name === 's1')!;
  await store.patchServer(s1.id, { path: PATH });
  await store.setProbedVersion(s1.id, '1.0.0', null);
  const fake = new FakeTransport({ broken: scenario.broken });
  for (const name of ['s1', 's2']) fake.add(name, OLD);
  return { store, fake, file: store.location };
}

for (const scenario of pathScenarios) {
  test(`kill -9 at every remote command of a path through a stepping stone (${scenario.title}): the takeover finishes or rolls back the right hop`, async (t) => {
    const statuses = async (store: Store) => Object.fromEntries((await store.getServers('u')).map((s) => [s.name, s.status]));
    const expected = Object.fromEntries(Object.entries(scenario.expect.servers).map(([n, e]) => [n, e.status]));
    const check = async (store: Store, fake: FakeTransport, where: string) => {
      assert.deepEqual(await statuses(store), expected, where);
      for (const [name, e] of Object.entries(scenario.expect.servers)) {
        assert.equal(fake.servers.get(name)!.commit, e.commit, `${where}: ${name}'s commit`);
        if (e.error) assert.match((await statusOf(store, name)).error ?? '', e.error, `${where}: ${name}'s reason`);
      }
    };
    const clean = await pathSetup(t, scenario);
    let total = 0;
    clean.fake.intercept = (_server, _command, next) => {
      total++;
      return next();
    };
    const cleanRun = await runUpdate(deps(clean.store, clean.fake, virtualClock()), 'u', { mode: 'start' });
    assert.equal(cleanRun.status, scenario.expect.update);
    await check(clean.store, clean.fake, 'the clean run');
    t.diagnostic(`${total} remote commands, each a crash point twice (before and after it ran)`);

    for (let k = 1; k <= total; k++) {
      for (const landed of [false, true]) {
        const at = `crash at command ${k}/${total} (${landed ? 'after it ran' : 'before it ran'})`;
        const { store, fake, file } = await pathSetup(t, scenario);
        const { crashedOn, clock } = await killAt(file, fake, k, landed, at);

        const finishedBefore = (await store.getServers('u')).filter((s) => s.status !== 'pending' && s.status !== 'running').map((s) => s.name);
        const logsBefore = new Map([...fake.servers].map(([name, s]) => [name, s.log.length]));
        // the stone verified (the hop event, or hop 2 begun) before the crash
        const stoneVerified = (await statusOf(store, 's1')).hop === 1 || (await store.getEvents('u')).some((e) => e.serverName === 's1' && e.kind === 'hop');

        fake.intercept = null;
        const taken = await runUpdate(deps(store, fake, clock), 'u', { mode: 'start' });
        const where = `${at}, on ${crashedOn}`;
        assert.equal(taken.status, scenario.expect.update, where);
        await check(store, fake, where);
        for (const name of finishedBefore) {
          assert.equal(fake.servers.get(name)!.log.length, logsBefore.get(name), `${where}: ${name} had finished and was touched again`);
        }
        const after = fake.servers.get('s1')!.log.slice(logsBefore.get('s1'));
        const stoneAgain = after.filter((c) => c === `reset ${STONE}`).length;
        if (stoneVerified) {
          const byRollback = scenario.expect.servers.s1!.commit === STONE && scenario.expect.servers.s1!.status === 'rolled-back' ? 1 : 0;
          assert.ok(stoneAgain <= byRollback, `${where}: the verified stone was deployed again (${after.join(', ')})`);
        }
        for (const [name, s] of fake.servers) {
          for (const c of [STONE, NEW]) {
            const n = s.log.filter((x) => x === `reset ${c}`).length;
            assert.ok(n <= 2 + (c === STONE ? 1 : 0), `${where}: ${name} deployed ${c.slice(0, 4)} ${n} times`);
          }
        }
        assert.deepEqual((await store.getServers('u')).filter((s) => s.status === 'running'), [], `${where}: nothing left running`);
        for (const name of fake.servers.keys()) assert.equal(fake.lockOf(name), null, `${where}: a lock was left on ${name}`);
      }
    }
  });
}
