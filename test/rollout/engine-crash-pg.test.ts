/**
 * kill -9 with the plan in PostgreSQL, where a command's journal end rides with the next statement
 * (store/postgres/carried.ts): the executor dies just after each command's end was queued and
 * before anything carried it, so the end is lost as a kill just before the write would lose it.
 * The next start, on a connection of its own, finds the command in flight, re-checks the server
 * and ends as a clean run would, never touching a finished server again. Against a real
 * PostgreSQL server and the fake Transport.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { runUpdate } from '../../src/rollout/run.js';
import type { Store } from '../../src/store/port.js';
import { PgStore } from '../../src/store/postgres/store.js';
import { OLD, NEW } from '../support/fake-settings.js';
import { FakeTransport } from '../support/fake-transport.js';
import { postgresForFile } from '../helpers/postgres.js';
import { GONE_PID, liveness } from '../helpers/liveness.js';
import { deps, planUpdate, virtualClock } from './engine-support.js';

const { skip, postgres } = postgresForFile();
const clock = { now: () => new Date() };
let schemas = 0;

async function planned(t: TestContext): Promise<{ store: PgStore; schema: string; fake: FakeTransport }> {
  const schema = `crash_${++schemas}`;
  const store = await PgStore.open(postgres().url, { clock, schema });
  t.after(() => store.close());
  await planUpdate(store, ['s1', 's2']);
  const fake = new FakeTransport({ broken: [] });
  for (const name of ['s1', 's2']) fake.add(name, OLD);
  return { store, schema, fake };
}

const statuses = async (store: Store) => Object.fromEntries((await store.getServers('u')).map((s) => [s.name, s.status]));

test('kill -9 with a command’s journal end still carried, at every command: the takeover re-checks the server and ends as a clean run would', { skip }, async (t) => {
  const clean = await planned(t);
  let total = 0;
  const endOf = clean.store.endCommand.bind(clean.store);
  clean.store.endCommand = (id, r) => (total++, endOf(id, r));
  assert.equal((await runUpdate(deps(clean.store, clean.fake, virtualClock()), 'u', { mode: 'start' })).status, 'success');
  assert.ok(total >= 6, `the clean run ended ${total} commands`);

  for (let k = 1; k <= total; k++) {
    const at = `killed after command ${k}/${total} ended, its end not yet sent`;
    const { store, schema, fake } = await planned(t);
    // the executor, on a store of its own (a process of its own)
    const first = await PgStore.open(postgres().url, { clock, schema });
    let ended = 0;
    let dead = false;
    let lost: number | null = null;
    const end = first.endCommand.bind(first);
    first.endCommand = async (id, r) => {
      await end(id, r);
      if (++ended < k) return;
      // the process dies here: what it carried is never sent, its connections drop
      dead = true;
      lost = id;
      (first as unknown as { shared: { carried: { clear(): void } } }).shared.carried.clear();
      await first.close();
      return new Promise<never>(() => {});
    };
    fake.intercept = async (_server, _command, next) => (dead ? new Promise<never>(() => {}) : next());
    let settled = false;
    void runUpdate(deps(first, fake, virtualClock(), liveness({ pid: GONE_PID, pidStart: null })), 'u', { mode: 'start' })
      .catch(() => {})
      .finally(() => (settled = true));
    while (!dead && !settled) await new Promise((r) => setImmediate(r));
    assert.ok(dead, `${at}: the executor ended first`);

    // the end was lost with the process: the command is in flight in the journal
    const journal = await store.getJournal('u');
    assert.equal(journal.find((e) => e.id === lost)!.endedAt, null, `${at}: the carried end reached the database`);
    const finishedBefore = (await store.getServers('u')).filter((s) => s.status !== 'pending' && s.status !== 'running').map((s) => s.name);
    const logsBefore = new Map([...fake.servers].map(([name, s]) => [name, s.log.length]));

    fake.intercept = null;
    const taken = await runUpdate(deps(store, fake, virtualClock()), 'u', { mode: 'start' });
    assert.equal(taken.status, 'success', at);
    assert.deepEqual(await statuses(store), { s1: 'success', s2: 'success' }, at);
    for (const name of finishedBefore) assert.equal(fake.servers.get(name)!.log.length, logsBefore.get(name), `${at}: ${name} had finished and was touched again`);
    for (const [name, s] of fake.servers) {
      assert.equal(s.commit, NEW, `${at}: ${name}'s commit`);
      assert.equal(fake.lockOf(name), null, `${at}: a lock was left on ${name}`);
    }
    assert.deepEqual((await store.getServers('u')).filter((s) => s.lockHeld).map((s) => s.name), [], `${at}: a server still marked as locked`);
  }
});
