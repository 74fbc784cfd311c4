/**
 * The PostgreSQL store when its database goes away or is not what it expects (issue 23): a
 * connection ended under it is replaced without the caller seeing it, an outage is waited for up
 * to a bound (then StoreError, exit 1), a write whose COMMIT went unanswered is not made twice, a
 * schema of a newer agent-update is refused with nothing written, and two processes creating one
 * schema at once both succeed. On a real server of this file's own (helpers/postgres.ts).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { test } from 'node:test';
import { promisify } from 'node:util';
import pg from 'pg';
import { StoreError, UsageError } from '../../src/errors.js';
import { lockKey } from '../../src/store/postgres/conn.js';
import type { DbNotice } from '../../src/store/postgres/retry.js';
import { PgStore } from '../../src/store/postgres/store.js';
import { cli, ROOT } from '../helpers/cli.js';
import { until } from '../helpers/db.js';
import { postgresForFile } from '../helpers/postgres.js';
import { newUpdate } from './contract.js';

const { skip, postgres } = postgresForFile();


const clock = { now: () => new Date() };

/** A client of the test's own (not the store's), for what the port cannot do. */
async function admin<T>(f: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: postgres().url });
  await c.connect();
  try {
    return await f(c);
  } finally {
    await c.end();
  }
}

/** End every session of the store (application_name agent-update) in `state` (any when not given), as a restart or an administrator would. */
function terminate(state?: string): Promise<number> {
  return admin(async (c) => {
    const r = await c.query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'agent-update' AND pid <> pg_backend_pid() AND ($1::text IS NULL OR state = $1)",
      [state ?? null],
    );
    return r.rowCount ?? 0;
  });
}

test('a connection ended by the server between calls is replaced unseen; a transaction that lost its own before its COMMIT runs again, committed once', { skip }, async (t) => {
  const store = await PgStore.open(postgres().url, { clock, schema: 'gone_terminated' });
  t.after(() => store.close());
  await store.createUpdate(newUpdate('a', 2));
  // several connections in the pool, all idle
  await Promise.all([store.getUpdate('a'), store.getServers('a'), store.getEvents('a'), store.listUpdates()]);
  assert.ok((await terminate()) >= 1);
  // at once, before the pool may have noticed: reads, a write on its own, a write that is a transaction
  assert.equal((await store.getUpdate('a')).status, 'planning');
  await store.addEvent('a', null, 'note', 'after the sessions ended');
  await store.setUpdateStatus('a', 'pending');
  assert.equal((await store.getServers('a')).length, 2);

  let runs = 0;
  const out = await store.tx(async (tx) => {
    runs++;
    await tx.addEvent('a', null, 'note', `in the transaction (run ${runs})`);
    // the transaction's own session ended while it waits here (idle in transaction)
    if (runs === 1) assert.equal(await terminate('idle in transaction'), 1);
    await tx.addEvent('a', null, 'note', `still in it (run ${runs})`);
    return (await tx.getUpdate('a')).status;
  });
  assert.equal(out, 'pending');
  assert.equal(runs, 2, 'the transaction ran again on a fresh connection');
  const notes = (await store.getEvents('a')).filter((e) => e.kind === 'note').map((e) => e.message);
  assert.deepEqual(notes, ['after the sessions ended', 'in the transaction (run 2)', 'still in it (run 2)'], 'the first run was rolled back, the second committed once');
});

test('a database gone for longer than the bound: the call gives up with StoreError naming it, the next at once; back again, calls work and it is said', { skip }, async (t) => {
  const notices: DbNotice[] = [];
  const store = await PgStore.open(postgres().url, { clock, schema: 'gone_bound', retryForMs: 1_500, notice: (n) => notices.push(n) });
  t.after(() => store.close());
  await store.createUpdate(newUpdate('a', 1));
  await postgres().stopServer();
  try {
    const began = performance.now();
    await assert.rejects(store.getUpdate('a'), (e: unknown) => {
      assert.ok(e instanceof StoreError, String(e));
      assert.equal(e.exitCode, 1);
      assert.match(e.message, /^the plan database postgres:\/\/postgres@127\.0\.0\.1:\d+\/agent_update_test \(schema gone_bound\) could not be reached for 2s \(/);
      return true;
    });
    assert.ok(performance.now() - began >= 1_500, 'it waited the bound');
    assert.deepEqual(notices.map((n) => n.kind), ['unreachable']);
    const again = performance.now();
    await assert.rejects(store.addEvent('a', null, 'note', 'while away'), /could not be reached/);
    assert.ok(performance.now() - again < 1_000, 'once given up on, the next call does not wait the bound again');
  } finally {
    await postgres().startServer();
  }
  assert.equal((await store.getUpdate('a')).status, 'planning');
  assert.deepEqual(notices.map((n) => n.kind), ['unreachable', 'reachable']);
  assert.deepEqual((await store.getEvents('a')).filter((e) => e.kind === 'note'), [], 'the write given up on was not made');
});

test('a database back within the bound: the calls waiting for it go on, each write made once', { skip }, async (t) => {
  const notices: DbNotice[] = [];
  const store = await PgStore.open(postgres().url, { clock, schema: 'gone_back', retryForMs: 60_000, notice: (n) => notices.push(n) });
  t.after(() => store.close());
  await store.createUpdate(newUpdate('a', 1));
  await postgres().stopServer();
  let restarted = false;
  try {
    const write = store.addEvent('a', null, 'note', 'made while the database restarts');
    const claim = store.tx(async (tx) => tx.setUpdateStatus('a', 'pending'));
    await until('the store waiting for the database', () => notices.length > 0);
    await postgres().startServer();
    restarted = true;
    await Promise.all([write, claim]);
  } finally {
    if (!restarted) await postgres().startServer();
  }
  assert.deepEqual(notices.map((n) => n.kind), ['unreachable', 'reachable']);
  assert.equal((await store.getUpdate('a')).status, 'pending');
  assert.deepEqual((await store.getEvents('a')).filter((e) => e.kind === 'note').map((e) => e.message), ['made while the database restarts']);
});

/**
 * A proxy to the server that, once armed with a marker, lets the client's message holding it
 * through and then cuts the connection before the server's answer reaches the client: the
 * server has done it, the client cannot know.
 */
async function answerLosingProxy(target: URL): Promise<{ url: string; arm(marker: string): void; cuts(): number; close(): Promise<void> }> {
  let armed: string | null = null;
  let cut = 0;
  const sockets = new Set<Socket>();
  const proxy = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    let awaitingAnswer = false;
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (d: Buffer) => {
      if (armed !== null && d.includes(armed)) {
        armed = null;
        awaitingAnswer = true;
      }
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      if (awaitingAnswer) {
        cut++;
        client.destroy();
        upstream.destroy();
        return;
      }
      client.write(d);
    });
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const url = new URL(target.toString());
  url.port = String((proxy.address() as AddressInfo).port);
  return {
    url: url.toString(),
    arm: (marker) => void (armed = marker),
    cuts: () => cut,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        proxy.close(() => resolve());
      }),
  };
}

test('the answer to a COMMIT lost with its connection: not made again (StoreError, exit 1), and what was committed is there once; a read so cut is tried again', { skip }, async (t) => {
  const proxy = await answerLosingProxy(new URL(postgres().url));
  t.after(() => proxy.close());
  const store = await PgStore.open(proxy.url, { clock, schema: 'gone_ambiguous', retryForMs: 30_000 });
  t.after(() => store.close());
  const direct = await PgStore.open(postgres().url, { clock, schema: 'gone_ambiguous' });
  t.after(() => direct.close());
  await store.createUpdate(newUpdate('a', 1));
  const notes = async () => (await direct.getEvents('a')).filter((e) => e.kind === 'note').map((e) => e.message);

  // a transaction: its COMMIT reached the server, the answer did not reach us
  proxy.arm('COMMIT');
  await assert.rejects(
    store.tx(async (tx) => tx.addEvent('a', null, 'note', 'in a transaction')),
    (e: unknown) => e instanceof StoreError && /was lost while a write was being committed .*whether it was recorded is not known, so it is not made again/.test(e.message),
  );
  assert.equal(proxy.cuts(), 1);
  assert.deepEqual(await notes(), ['in a transaction'], 'committed by the server, and not made a second time');

  // a write that is one statement (it commits on its own)
  proxy.arm('INSERT INTO events');
  await assert.rejects(store.addEvent('a', null, 'note', 'one statement'), /was lost while a write was being committed/);
  assert.equal(proxy.cuts(), 2);
  assert.deepEqual(await notes(), ['in a transaction', 'one statement']);

  // a read commits nothing: tried again on a fresh connection, the caller sees only its answer
  proxy.arm('SELECT * FROM updates WHERE name');
  assert.equal((await store.getUpdate('a')).name, 'a');
  assert.equal(proxy.cuts(), 3);
});

test('a schema written by a newer agent-update is refused (exit 2) with nothing written, by the store and by the CLI', { skip }, async () => {
  const store = await PgStore.open(postgres().url, { clock, schema: 'gone_newer' });
  await store.createUpdate(newUpdate('a', 1));
  await store.close();
  const snapshot = () =>
    admin(async (c) => {
      const tables = await c.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'gone_newer' ORDER BY table_name");
      const meta = await c.query('SELECT key, value FROM gone_newer.meta ORDER BY key');
      const events = await c.query('SELECT count(*)::int AS n FROM gone_newer.events');
      return JSON.stringify({ tables: tables.rows, meta: meta.rows, events: events.rows });
    });
  await admin((c) => c.query("UPDATE gone_newer.meta SET value = '99' WHERE key = 'schema_version'"));
  const before = await snapshot();
  await assert.rejects(
    PgStore.open(postgres().url, { clock, schema: 'gone_newer' }),
    (e: unknown) => e instanceof UsageError && e.exitCode === 2 && /\(schema gone_newer\) was written by a newer agent-update \(schema 99, this one knows \d+\); upgrade agent-update/.test(e.message),
  );
  const r = await cli(['status'], { db: `${postgres().url}?schema=gone_newer` });
  assert.equal(r.code, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /was written by a newer agent-update \(schema 99/);
  const p = await cli(['history'], { db: `${postgres().url}?schema=gone_newer` });
  assert.equal(p.code, 2, p.stdout + p.stderr);
  assert.equal(await snapshot(), before, 'nothing was written');
});

test('two processes opening a brand-new schema at once both succeed, with one identity', { skip }, async () => {
  const schema = 'gone_fresh_race';
  const script = `
    import { PgStore } from ${JSON.stringify(new URL('dist/src/store/postgres/store.js', `file://${ROOT}`).href)};
    const store = await PgStore.open(process.argv[1], { clock: { now: () => new Date() }, schema: ${JSON.stringify(schema)} });
    process.stdout.write(store.dbId);
    await store.close();
  `;
  const run = promisify(execFile);
  // Both wait on the schema's migration lock, held here until both are there: they begin at once.
  const holder = new pg.Client({ connectionString: postgres().url });
  await holder.connect();
  try {
    await holder.query('SELECT pg_advisory_lock($1::bigint)', [lockKey('migrate', schema)]);
    const children = [1, 2].map(() => run(process.execPath, ['--input-type=module', '-e', script, postgres().url], { timeout: 60_000 }));
    await until('both processes waiting on the migration lock', async () => {
      const r = await holder.query("SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted");
      return (r.rows[0] as { n: number }).n === 2;
    });
    await holder.query('SELECT pg_advisory_unlock($1::bigint)', [lockKey('migrate', schema)]);
    const ids = (await Promise.all(children)).map((c) => c.stdout);
    assert.match(ids[0]!, /^[0-9a-f]{32}$/);
    assert.equal(ids[1], ids[0], 'one store, one identity');
  } finally {
    await holder.end();
  }
  const store = await PgStore.open(postgres().url, { clock, schema, create: false });
  await store.createUpdate(newUpdate('a', 1));
  await store.close();
});
