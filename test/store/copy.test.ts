/**
 * `db copy` at the store level (store/copy.ts): a plan built through the port on SQLite, copied
 * SQLite → PostgreSQL → SQLite with exportAll/importAll, reads the same through every method of
 * the port on all three (ids, identity and all); each copy takes new rows after the copied ones;
 * a store that holds anything is refused and a failed import leaves the store empty; the list of
 * columns copied is every column of both schemas.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import pg from 'pg';
import { UsageError } from '../../src/errors.js';
import { statusDocument } from '../../src/output/status-json.js';
import { readHistory } from '../../src/rollout/history.js';
import { splitUpdate } from '../../src/rollout/split.js';
import { COPY_TABLES, countsOf, type StoreDump } from '../../src/store/copy.js';
import type { ReportStore, Store } from '../../src/store/port.js';
import { PgStore } from '../../src/store/postgres/store.js';
import { SqliteStore } from '../../src/store/sqlite/store.js';
import { withSqliteFile } from '../helpers/db.js';
import { postgresForFile } from '../helpers/postgres.js';
import { tempDirFor } from '../helpers/tmp.js';
import { newUpdate, steppingClock } from './contract.js';

const { skip, postgres: pgServer } = postgresForFile();
let schemas = 0;


/** Times long past: every lease and auto claim of the plan is a dead holder's (another host, no heartbeat for years). */
const clock = () => steppingClock(Date.parse('2024-05-01T08:00:00.000Z'));

function sqlite(t: TestContext, name = 'plan.db'): SqliteStore {
  const store = new SqliteStore(join(tempDirFor(t, 'agent-update-copy-'), name), { clock: clock() });
  t.after(() => store.close());
  return store;
}

async function postgres(t: TestContext, schema = `copy_${++schemas}`): Promise<PgStore> {
  const store = await PgStore.open(pgServer().url, { clock: clock(), schema });
  t.after(() => store.close());
  return store;
}

const C = (ch: string) => ch.repeat(40);
const ok = (stdout: string) => ({ code: 0, stdout, stderr: '', error: null });

/**
 * A plan with a bit of everything, through the port: probes journalled, a dropped server, a split
 * (the batch paused with its executor gone mid-server, lease and lock left), a rollout with a
 * success and a rollback (output with escapes and non-ASCII), a retry and an undo of it, and two
 * `auto` runs (one ended, one whose process died).
 */
async function build(store: Store): Promise<void> {
  const holder = { pid: 40001, host: 'runner-1', pidStart: '12345' };
  await store.createUpdate(
    newUpdate('a', 5, {
      configFile: '/c.yaml',
      createdBy: 'me@laptop',
      testStopAfter: 0,
      servers: [
        { name: 's1', host: 'h1', port: 22, user: 'u', type: 'web', types: ['web', 'db'] },
        { name: 's2', host: 'h2', port: 2222, user: 'v', type: 'app', identityFiles: ['/k'], jump: [{ host: 'bastion', port: 22, user: 'ops' }] },
        { name: 's3', host: 'h3', port: 22, user: 'u', type: 'app', path: [{ commit: C('d'), version: '1.2.3' }, { commit: C('c'), version: '2.0.0' }] },
        { name: 's4', host: 'h4', port: 22, user: 'u', type: 'app' },
        { name: 's5', host: 'h5', port: 22, user: 'u', type: 'app' },
      ],
    }),
  );
  for (const s of await store.getServers('a')) {
    await store.endCommand(await store.beginCommand(s, 'probe', 'git rev-parse HEAD'), ok(`${C('b')}\n`));
    await store.setProbedCommit(s.id, C('b'));
    await store.setProbedVersion(s.id, '1.0.0', 'required');
  }
  await store.setUpdateStatus('a', 'pending', { reason: null });
  const s5 = (await store.getServers('a')).find((s) => s.name === 's5')!;
  await store.dropServer(s5.id, 'dropped by me@laptop: broken disk', '2024-05-01T08:10:00.000Z', 'me@laptop');
  assert.deepEqual(await splitUpdate(store, 'a', 2), ['a', 'a.2']);

  // a: one server success, one rolled back; partial-success
  await store.acquireLease('a', { token: 'tok-a', ...holder }, () => true);
  await store.addEvent('a', null, 'start', 'start by me@laptop (pid 40001)', 'me@laptop');
  await store.setUpdateStatus('a', 'running', { startedAt: '2024-05-01T09:00:00.000Z' });
  const [first, second] = (await store.getServers('a')).filter((s) => s.status === 'pending');
  await store.setServerStatus(first!.id, 'running', { step: 'update', fromCommit: C('b'), lockHeld: true, hop: 0, startedAt: '2024-05-01T09:00:01.000Z' });
  await store.endCommand(await store.beginCommand(first!, 'update', 'git fetch && git checkout'), ok('HEAD is now at cccc ✓ ünïcödé \x1b[31mred\x1b[0m\n'));
  await store.setServerStatus(first!.id, 'running', { step: 'verify' });
  const long = await store.beginCommand(first!, 'verify', 'curl -fsS localhost/health');
  await store.endCommand(long, { code: 0, stdout: 'x'.repeat(5000), stderr: 'warn\n', error: null });
  await store.summarizeCommand(long, 100);
  await store.setServerStatus(first!.id, 'success', { step: null, toCommit: C('c'), endedAt: '2024-05-01T09:00:05.000Z' });
  await store.setLockHeld(first!.id, false);
  await store.setServerStatus(second!.id, 'running', { step: 'update', fromCommit: C('b'), lockHeld: true, hop: 0 });
  await store.endCommand(await store.beginCommand(second!, 'verify', 'health'), { code: 7, stdout: '', stderr: 'down', error: 'health check failed' });
  await store.setServerStatus(second!.id, 'running', { step: 'rollback' });
  await store.setServerStatus(second!.id, 'rolled-back', { step: null, toCommit: C('b'), error: 'health check failed: down', endedAt: '2024-05-01T09:00:09.000Z' });
  await store.setLockHeld(second!.id, false);
  await store.setUpdateStatus('a', 'partial-success', { endedAt: '2024-05-01T09:00:10.000Z' });
  await store.releaseLease('a', 'tok-a');

  // a.2: its executor died mid-server (lease and lock left behind), a pause asked meanwhile
  await store.acquireLease('a.2', { token: 'tok-b', ...holder, host: 'runner-2' }, () => true);
  await store.setUpdateStatus('a.2', 'running', { startedAt: '2024-05-01T09:01:00.000Z', stopAtWorked: 1, stopFromWorked: 0 });
  const [inFlight] = await store.getServers('a.2');
  await store.setServerStatus(inFlight!.id, 'running', { step: 'restart', fromCommit: C('b'), lockHeld: true, hop: 0 });
  await store.beginCommand(inFlight!, 'restart', 'systemctl restart agent');
  await store.patchUpdate('a.2', { pauseRequestedAt: '2024-05-01T09:02:00.000Z', pauseRequestedBy: 'oncall@phone' });

  // a retry and an undo of a
  const retry = await store.createUpdate(newUpdate('a-retry', 1, { configFile: '/c.yaml', retryOf: 'a', createdBy: 'cron@ci' }));
  await store.setUpdateStatus(retry.name, 'pending');
  await store.createUpdate(newUpdate('a-undo', 1, { undoOf: 'a', createdBy: 'me@laptop', servers: [{ name: 's1', host: 'h1', port: 22, user: 'u', type: 'web', path: [{ commit: C('b'), version: null }] }] }));
  await store.setUpdateStatus('a-undo', 'pending');
  await store.setUpdateStatus('a-undo', 'cancelled', { reason: 'not needed' });
  await store.addEvent('a-undo', null, 'cancel', 'cancelled by me@laptop', 'me@laptop');

  // auto: one run that planned the retry, one whose process died while planning
  const run = await store.beginAutoRun({ configFile: '/c.yaml', actor: 'cron@ci', pid: 777, host: 'ci-runner', pidStart: null, commit: C('c') });
  await store.setAutoRunUpdate(run, 'a-retry');
  await store.endAutoRun(run, 'started', 'planned a-retry');
  await store.beginAutoRun({ configFile: '/other.yaml', actor: 'cron@ci', pid: 778, host: 'ci-runner', pidStart: '99', commit: null });

  // freezes: one lifted, one active
  await store.freeze({ repoKey: 'r', repo: '/r', configFile: '/c.yaml', reason: 'incident 7', frozenBy: 'me@laptop' });
  await store.unfreeze('r', 'oncall@phone');
  await store.freeze({ repoKey: 'r', repo: '/r/', configFile: null, reason: 'release day ✓', frozenBy: 'cron@ci' });
}

/** Objects with every `db` (a store's location) left out: that is where FROM and TO differ. */
function withoutLocation(v: unknown): unknown {
  return JSON.parse(JSON.stringify(v, (k, x: unknown) => (k === 'db' ? undefined : x)));
}

/** Everything the port reads about the plan, as `status`, `logs`, `history`, the engine and planning read it. */
async function view(store: ReportStore): Promise<unknown> {
  const updates = await store.listUpdates();
  const per = [];
  for (const u of updates) {
    per.push({
      u,
      found: await store.findUpdate(u.name),
      servers: await store.getServers(u.name),
      journal: await store.getJournal(u.name),
      journalOfS1: await store.getJournal(u.name, 's1'),
      events: await store.getEvents(u.name),
      runs: await store.runEvents(u.name),
      batches: await store.batchesOf(u.name),
      retries: await store.retriesOf(u.name),
      undos: await store.undosOf(u.name),
      budget: await store.budgetUse(u),
      overlaps: await store.overlappingUpdates(u.name),
      lease: await store.leaseToken(u.name),
      status: await statusDocument(store, u.name),
    });
  }
  const servers = per.flatMap((p) => p.servers);
  return withoutLocation({
    dbId: store.dbId,
    updates,
    per,
    serversById: await Promise.all(servers.map((s) => store.getServer(s.id))),
    counts: [...(await store.countsByUpdate())],
    history: await readHistory(store),
    historyOfS1: await readHistory(store, 's1'),
    historyServers: await store.historyServers(),
    names: await store.serverNames(),
    found: await store.findServers('s1'),
    byAccount: await store.findServers('v@h2:2222'),
    later: await store.laterWorkOn({ user: 'u', host: 'h1', port: 22, id: 0 }, '2000-01-01T00:00:00.000Z'),
    busy: await store.busyAccount({ host: 'h2', port: 2222, user: 'v', updateName: 'nothing' }),
    ofConfig: await store.updatesOfConfig('/c.yaml'),
    autoRuns: await store.autoRuns(),
    openAuto: await store.openAutoRuns('/other.yaml'),
    freezes: await store.freezes(),
    activeFreeze: await store.activeFreeze('r'),
  });
}

/** `from` exported and imported into `to`; `to`'s handle takes the identity; the dump. */
async function copy(from: Store, to: Store): Promise<StoreDump> {
  const dump = await from.exportAll();
  await to.importAll(dump);
  assert.equal(to.dbId, from.dbId, 'the importing handle names the copied identity');
  return dump;
}

test('SQLite → PostgreSQL → SQLite: every record the same through the port, ids and identity too; the dumps identical', { skip }, async (t) => {
  const a = sqlite(t, 'a.db');
  await build(a);
  const pgSchema = `copy_${++schemas}`;
  const p = await postgres(t, pgSchema);
  const b = sqlite(t, 'b.db');

  const fromA = await copy(a, p);
  assert.deepEqual(countsOf(fromA), { updates: 4, servers: 7, journal: 9, events: countsOf(fromA).events, autoRuns: 2, freezes: 2 });
  assert.ok(countsOf(fromA).events > 10);
  const fromP = await copy(p, b);
  assert.deepEqual(fromP, fromA, 'PostgreSQL gives back exactly the rows it was given');
  assert.deepEqual(await b.exportAll(), fromA);

  const expected = await view(a);
  assert.deepEqual(await view(p), expected, 'PostgreSQL reads as the SQLite original');
  assert.deepEqual(await view(b), expected, 'the SQLite copy of the copy reads as the original');
  // a process that opens the copy later sees the same identity (the locks on servers name it)
  const again = await PgStore.open(pgServer().url, { clock: clock(), schema: pgSchema });
  t.after(() => again.close());
  assert.equal(again.dbId, a.dbId);
  assert.deepEqual(await view(again), expected);
});

test('after a copy, new rows get ids after the copied ones (PostgreSQL identities reset) and everything else works on the copy', { skip }, async (t) => {
  const a = sqlite(t);
  await build(a);
  const dump = await a.exportAll();
  const maxId = (table: 'servers' | 'steps' | 'events' | 'auto_runs' | 'freezes') => Math.max(...dump.tables[table].map((r) => r.id as number));
  for (const to of [await postgres(t), sqlite(t, 'copy.db')]) {
    await to.importAll(dump);
    const u = await to.createUpdate(newUpdate('after', 2, { configFile: '/c.yaml' }));
    assert.equal(u.status, 'planning');
    const [s1, s2] = await to.getServers('after');
    assert.ok(s1!.id > maxId('servers') && s2!.id > s1!.id, `${to.location}: new server ids ${s1!.id}, ${s2!.id} after ${maxId('servers')}`);
    const j = await to.beginCommand(s1!, 'probe', 'x');
    assert.ok(j > maxId('steps'));
    await to.endCommand(j, ok('y'));
    await to.addEvent('after', null, 'note', 'a new event', 'me@laptop');
    const events = await to.getEvents('after');
    assert.ok(events.length > 0 && events.every((e) => e.id > maxId('events')));
    assert.ok((await to.beginAutoRun({ configFile: '/c.yaml', actor: 'me', pid: 1, host: 'h', pidStart: null, commit: null })) > maxId('auto_runs'));
    // the active freeze is in the copy; a new one takes an id after the copied ones
    assert.equal((await to.activeFreeze('r'))?.reason, 'release day ✓');
    assert.ok((await to.freeze({ repoKey: 'r2', repo: '/r2', configFile: null, reason: 'x', frozenBy: 'me' })).freeze.id > maxId('freezes'));
    // the copied plan goes on: the dead executor's batch taken over, resumed and finished
    const taken = await to.acquireLease('a.2', { token: 'tok-new', pid: 1, host: 'h', pidStart: null }, () => true);
    assert.equal(taken.ok && taken.previous?.token, 'tok-b', 'the lease left behind is in the copy, taken over from its dead holder');
    await to.setUpdateStatus('a.2', 'running');
    const [inFlight] = await to.getServers('a.2');
    await to.setServerStatus(inFlight!.id, 'success', { step: null, toCommit: C('c'), lockHeld: false });
    await to.setUpdateStatus('a.2', 'success');
    await to.releaseLease('a.2', 'tok-new');
    assert.equal((await to.getUpdate('a.2')).status, 'success');
  }
});

test('importAll refuses a store that holds anything, writing nothing; a failed import leaves the store as empty as it was', { skip }, async (t) => {
  const a = sqlite(t);
  await build(a);
  const dump = await a.exportAll();
  for (const to of [await postgres(t), sqlite(t, 'to.db')]) {
    const id = to.dbId;
    // a row that breaks the last table's key: everything before it is undone with it
    const broken: StoreDump = { ...dump, tables: { ...dump.tables, auto_runs: [dump.tables.auto_runs[0]!, dump.tables.auto_runs[0]!] } };
    await assert.rejects(to.importAll(broken));
    assert.deepEqual(await to.listUpdates(), [], `${to.location}: nothing of the failed import is left`);
    assert.deepEqual(await to.autoRuns(), []);
    assert.equal(to.dbId, id, 'the identity stays its own');
    assert.equal((await to.exportAll()).dbId, id);

    await to.createUpdate(newUpdate('mine', 1));
    const before = await to.exportAll();
    await assert.rejects(to.importAll(dump), (e: unknown) => e instanceof UsageError && /already holds a plan store with 1 update: .*never merges/.test(e.message));
    assert.deepEqual(await to.exportAll(), before, 'nothing was written');
  }
  // only auto runs (an auto that found nothing to do): not empty either
  const autoOnly = sqlite(t, 'auto.db');
  await autoOnly.beginAutoRun({ configFile: '/c.yaml', actor: 'me', pid: 1, host: 'h', pidStart: null, commit: null });
  await assert.rejects(autoOnly.importAll(dump), (e: unknown) => e instanceof UsageError && /1 auto run: /.test(e.message));
});

test('the columns copied are every column of every table of both schemas', { skip }, async (t) => {
  const file = sqlite(t);
  const sqliteColumns = withSqliteFile(file.location, (db) =>
    Object.fromEntries(Object.keys(COPY_TABLES).map((table) => [table, (db.pragma(`table_info(${table})`) as Array<{ name: string }>).map((c) => c.name).sort()])),
  );
  const schema = `copy_${++schemas}`;
  await postgres(t, schema);
  const c = new pg.Client({ connectionString: pgServer().url });
  await c.connect();
  t.after(() => c.end());
  const pgColumns: Record<string, string[]> = {};
  for (const table of Object.keys(COPY_TABLES)) {
    const r = await c.query('SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2', [schema, table]);
    pgColumns[table] = r.rows.map((x: { column_name: string }) => x.column_name).sort();
  }
  const expected = Object.fromEntries(Object.entries(COPY_TABLES).map(([table, cols]) => [table, [...cols].sort()]));
  assert.deepEqual(sqliteColumns, expected, 'SQLite');
  assert.deepEqual(pgColumns, expected, 'PostgreSQL');
  // and no table but these and meta holds plan data
  const tables = withSqliteFile(file.location, (db) => db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all());
  assert.deepEqual(tables, [...Object.keys(COPY_TABLES), 'meta'].sort());
  const pgTables = await c.query("SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE' ORDER BY table_name", [schema]);
  assert.deepEqual(pgTables.rows.map((x: { table_name: string }) => x.table_name), [...Object.keys(COPY_TABLES), 'meta'].sort());
});
