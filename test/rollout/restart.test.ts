/**
 * A rolling restart (settings.restartOnly, `agent-update restart`) through the executor against
 * the in-memory fake Transport: the exact commands each server gets, a failure, and a kill -9 at
 * every remote command whose takeover ends as the clean run did without ever restarting a server
 * twice or changing its commit.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import type { RolloutSettings } from '../../src/config/types.js';
import { runUpdate } from '../../src/rollout/run.js';
import type { Store } from '../../src/store/port.js';
import { OLD, OTHER, fakeSettings } from '../support/fake-settings.js';
import { exited, FakeTransport, lostConnection } from '../support/fake-transport.js';
import { deps, killAt, planUpdate, tempStore, virtualClock } from './engine-support.js';

const restart: RolloutSettings = {
  ...fakeSettings,
  agent: { ...fakeSettings.agent, restart: { web: 'restart', workers: 'restart' }, diagnose: { commands: ['diag {commit}'], timeoutMs: 1000 } },
  restart: ['web', 'workers'],
  rollback: { enabled: false, continueAfterRollback: false, commit: null },
  restartOnly: true,
};
const ZERO = '0'.repeat(40);

/** A restart of `names`, probed as plan/restart.ts does: each pending at `OLD`, its path that commit. */
async function setup(t: TestContext, names: string[], planned: RolloutSettings = restart): Promise<Store> {
  const store = tempStore(t, 'agent-update-restart-');
  await planUpdate(store, names, planned, ZERO, async (servers) => {
    for (const s of servers) await store.patchServer(s.id, { path: [{ commit: OLD, version: null }] });
    await store.patchUpdate('u', { commit: OLD });
  });
  return store;
}


const CLEAN = ['version', 'restart', 'restart', 'health', 'version'];
const statusOf = async (store: Store) => Object.fromEntries((await store.getServers('u')).map((s) => [s.name, s.status]));

test('a clean restart: the re-check, each restart, health at the commit it runs, the version check; never an update command', async (t) => {
  const store = await setup(t, ['s1', 's2']);
  const fake = new FakeTransport();
  const s1 = fake.add('s1', OLD);
  // s2 was moved to another commit since it was probed: restarted there, at what it runs now
  const s2 = fake.add('s2', OTHER);
  const r = await runUpdate(deps(store, fake, virtualClock()), 'u', { mode: 'start' });
  assert.equal(r.status, 'success');
  assert.equal((await store.getUpdate('u')).reason, 'all 2 servers restarted and verified');
  assert.deepEqual(s1.log, CLEAN);
  assert.deepEqual(s2.log, CLEAN);
  assert.equal(s1.commit, OLD);
  assert.equal(s2.commit, OTHER);
  const [a, b] = await store.getServers('u');
  assert.deepEqual([a!.status, a!.fromCommit, a!.toCommit], ['success', OLD, OLD]);
  assert.deepEqual([b!.status, b!.fromCommit, b!.toCommit, b!.path], ['success', OTHER, OTHER, [{ commit: OTHER, version: null }]], 'its own target is what it runs now');
  // health was verified at each server's own commit (expect: {commit})
  const journal = await store.getJournal('u', 's2');
  assert.ok(journal.some((j) => j.phase === 'verify' && j.stdout?.includes(OTHER)));
  assert.equal(fake.lockOf('s1'), null);
});

test('a server that does not come back: diagnosed, failed, not rolled back; the update stops there', async (t) => {
  const store = await setup(t, ['s1', 's2']);
  const fake = new FakeTransport({ broken: [OLD] });
  const s1 = fake.add('s1', OLD);
  const s2 = fake.add('s2', OLD);
  const r = await runUpdate(deps(store, fake, virtualClock()), 'u', { mode: 'start' });
  assert.equal(r.status, 'failure');
  assert.equal((await store.getUpdate('u')).reason, 'stopped: server s1 failed its restart (nothing to roll back)');
  assert.deepEqual(await statusOf(store), { s1: 'failed', s2: 'pending' });
  assert.equal(s1.log.filter((c) => c === 'health').length > 1, true);
  assert.deepEqual(s1.log.filter((c) => c !== 'health'), ['version', 'restart', 'restart', `diag ${OLD}`], 'no update command, no rollback');
  assert.deepEqual(s2.log, []);
});

test('the commit changed under the restart (version_command after verify prints another): failed', async (t) => {
  const store = await setup(t, ['s1']);
  const fake = new FakeTransport();
  const s1 = fake.add('s1', OLD);
  let versions = 0;
  fake.answer = (command) => (command === 'version' && ++versions === 2 ? exited(0, `${OTHER}\n`) : undefined);
  await runUpdate(deps(store, fake, virtualClock()), 'u', { mode: 'start' });
  const s = (await store.getServers('u'))[0]!;
  assert.equal(s.status, 'failed');
  assert.match(s.error ?? '', /^after the restart, version_command prints c{12}, not a{12} as before it: the commit changed/);
  assert.equal(s1.log.filter((c) => c === 'restart').length, 2);
});

test('a restart cut by a lost connection is not sent again once the server answers (nor the ones after it): the server is verified', async (t) => {
  const store = await setup(t, ['s1']);
  const fake = new FakeTransport();
  const s1 = fake.add('s1', OLD);
  let cut = false;
  fake.intercept = async (_server, command, next) => {
    if (command !== 'restart' || cut) return next();
    cut = true;
    await next(); // it ran, and the answer was lost with the connection
    return lostConnection();
  };
  const r = await runUpdate(deps(store, fake, virtualClock()), 'u', { mode: 'start' });
  assert.equal(r.status, 'success');
  assert.deepEqual(s1.log, ['version', 'restart', 'health', 'version'], 'one restart: neither the cut one nor workers after it sent again');
  const events = (await store.getEvents('u')).map((e) => e.message);
  assert.ok(events.some((m) => /^restart web was cut by a lost connection: it is not run again \(a restart is never run twice blindly\), nor workers after it; verifying$/.test(m)), events.join('\n'));
});

test('kill -9 at every remote command of a restart: the takeover ends success, no server restarted twice, no commit changed', async (t) => {
  const clean = await setup(t, ['s1', 's2']);
  const cleanFake = new FakeTransport();
  for (const n of ['s1', 's2']) cleanFake.add(n, OLD);
  let total = 0;
  cleanFake.intercept = (_s, _c, next) => {
    total++;
    return next();
  };
  assert.equal((await runUpdate(deps(clean, cleanFake, virtualClock()), 'u', { mode: 'start' })).status, 'success');
  t.diagnostic(`${total} remote commands, each a crash point twice (before and after it ran)`);
  let verifiedOnly = 0;
  for (let k = 1; k <= total; k++) {
    for (const landed of [false, true]) {
      const at = `crash at command ${k}/${total} (${landed ? 'after it ran' : 'before it ran'})`;
      const store = await setup(t, ['s1', 's2']);
      const fake = new FakeTransport();
      for (const n of ['s1', 's2']) fake.add(n, OLD);
      // the first executor, on a connection of its own, dies at command k
      const { clock } = await killAt(store.location, fake, k, landed, at);

      fake.intercept = null;
      const taken = await runUpdate(deps(store, fake, clock), 'u', { mode: 'start' });
      assert.equal(taken.status, 'success', at);
      assert.deepEqual(await statusOf(store), { s1: 'success', s2: 'success' }, at);
      for (const [name, s] of fake.servers) {
        const restarts = s.log.filter((c) => c === 'restart').length;
        assert.ok(restarts <= 2, `${at}: ${name} got ${restarts} restart commands for its 2 restarts`);
        if (restarts < 2) verifiedOnly++;
        assert.equal(s.commit, OLD, `${at}: ${name}'s commit`);
        assert.ok(!s.log.some((c) => c.startsWith('reset')), `${at}: ${name} got an update command`);
        assert.equal(fake.lockOf(name), null, `${at}: a lock was left on ${name}`);
      }
    }
  }
  // a restart sent (or about to be) when the executor died is verified, not run again: some crash points show it
  assert.ok(verifiedOnly > 0);
});
