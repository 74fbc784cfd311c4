/**
 * Round trips of the PostgreSQL store the engine saves, against a real server (round trips
 * counted at the client library).
 *
 * A lone write under the lease (TxOptions.loneWriteLeased, conn.ts): the lease's check, the write
 * and the COMMIT are one round trip; a write after one that changed a row is refused.
 *
 * store/postgres/carried.ts: a command's journal end rides with the next statement of the store
 * (one round trip for it and, say, the next command's journal row), is sent alone when nothing
 * follows, and by close; a statement failing behind carried writes leaves them committed and
 * fails as it would alone; a carried write that cannot be made fails one call, not every call.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import pg from 'pg';
import { Carried } from '../../src/store/postgres/carried.js';
import { PoolQ, sendCarried, type Shared } from '../../src/store/postgres/conn.js';
import { PgStore } from '../../src/store/postgres/store.js';
import { postgresForFile } from '../helpers/postgres.js';
import { newUpdate } from './contract.js';
import type { StoreTx } from '../../src/store/port.js';

const { skip, postgres } = postgresForFile();
const clock = { now: () => new Date() };
let schemas = 0;

/** Every query the client library sends from now until `stop()`, as its text. */
function recordQueries(t: TestContext): { sent: string[] } {
  const sent: string[] = [];
  const original = pg.Client.prototype.query;
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    const q = args[0];
    sent.push(typeof q === 'string' ? q : ((q as { text?: string }).text ?? '?'));
    return (original as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof original;
  t.after(() => {
    pg.Client.prototype.query = original;
  });
  return { sent };
}

async function twoStores(t: TestContext): Promise<{ a: PgStore; b: PgStore }> {
  const schema = `carried_${++schemas}`;
  const a = await PgStore.open(postgres().url, { clock, schema });
  const b = await PgStore.open(postgres().url, { clock, schema });
  t.after(() => Promise.all([a.close(), b.close()]));
  await a.createUpdate(newUpdate('u', 1));
  return { a, b };
}

const ended = async (s: PgStore, id: number) => (await s.getJournal('u')).find((e) => e.id === id)?.endedAt ?? null;

test('a journal end rides with the next statement: the end and the next journal row are one round trip, and another process sees the end once it returns', { skip }, async (t) => {
  const { a, b } = await twoStores(t);
  const [s1] = await a.getServers('u');
  const first = await a.beginCommand(s1!, 'update', 'git checkout x');
  const queries = recordQueries(t);
  await a.endCommand(first, { code: 0, stdout: "it's done\n", stderr: '', error: null });
  assert.deepEqual(queries.sent, [], 'the end waits for the next statement');
  const second = await a.beginCommand(s1!, 'restart', 'systemctl restart x');
  assert.equal(queries.sent.length, 1, `one round trip: ${queries.sent.join(' | ')}`);
  assert.match(queries.sent[0]!, /^UPDATE steps .*; COMMIT; INSERT INTO steps/s);
  const seen = (await b.getJournal('u')).find((e) => e.id === first)!;
  assert.ok(seen.endedAt !== null);
  assert.deepEqual([seen.exitCode, seen.stdout], [0, "it's done\n"]);
  assert.equal(await ended(b, second), null);
});

test('a journal end that nothing follows is sent alone, soon; one still waiting is sent by close', { skip }, async (t) => {
  const { a, b } = await twoStores(t);
  const [s1] = await a.getServers('u');
  const first = await a.beginCommand(s1!, 'update', 'x');
  await a.endCommand(first, { code: 3, stdout: '', stderr: 'no', error: null });
  const deadline = Date.now() + 10_000;
  while ((await ended(b, first)) === null) {
    assert.ok(Date.now() < deadline, 'the carried end was never sent');
    await new Promise((r) => setTimeout(r, 10));
  }
  const second = await a.beginCommand(s1!, 'restart', 'y');
  await a.endCommand(second, { code: 0, stdout: '', stderr: '', error: null });
  await a.close();
  assert.ok((await ended(b, second)) !== null, 'close sent the end that was waiting');
});

/** A Shared of the store's kind on a pool of its own, for conn.ts alone. */
async function shared(t: TestContext): Promise<Shared> {
  const schema = `carried_conn_${++schemas}`;
  const pool = new pg.Pool({ connectionString: postgres().url, max: 2, options: `-c search_path=${schema}` });
  t.after(() => pool.end());
  await pool.query(`CREATE SCHEMA ${schema}; CREATE TABLE ${schema}.t (id int PRIMARY KEY, v bigint)`);
  let n = 0;
  const carried: Carried = new Carried(() => sendCarried({ pool, carried }));
  t.after(() => carried.clear());
  return { pool, schema, location: 'test', clock, writeLock: '42', nextSavepoint: () => `sp${++n}`, carried };
}

test('a statement failing behind carried writes: the writes are committed, the error is the statement’s own, in a transaction too', { skip }, async (t) => {
  const s = await shared(t);
  const q = new PoolQ(s);
  await q.run('INSERT INTO t (id, v) VALUES (?, ?), (?, ?)', [1, 0, 2, 0]);
  await q.later('UPDATE t SET v = ? WHERE id = ?', [10, 1]);
  await assert.rejects(q.run('INSERT INTO t (id, v) VALUES (?, ?)', [2, 5]), /duplicate key/);
  assert.equal(s.carried.pending, false);
  assert.deepEqual(await q.rows('SELECT id, v FROM t ORDER BY id'), [{ id: 1, v: '10' }, { id: 2, v: '0' }]);

  await q.later('UPDATE t SET v = ? WHERE id = ?', [20, 1]);
  await assert.rejects(q.atomic((x) => x.run('INSERT INTO t (id, v) VALUES (?, ?)', [1, 7])), /duplicate key/);
  assert.equal(s.carried.pending, false);
  // a transaction whose first statement fails inside its own savepoint goes on, as without the carried write
  await q.later('UPDATE t SET v = ? WHERE id = ?', [30, 2]);
  const out = await q.atomic(async (x) => {
    await assert.rejects(x.atomic((y) => y.run('INSERT INTO t (id, v) VALUES (?, ?)', [1, 7])), /duplicate key/);
    await x.run('INSERT INTO t (id, v) VALUES (?, ?)', [3, 3]);
    return 'went on';
  });
  assert.equal(out, 'went on');
  assert.deepEqual(await q.rows('SELECT id, v FROM t ORDER BY id'), [{ id: 1, v: '20' }, { id: 2, v: '30' }, { id: 3, v: '3' }]);
});

test('a carried write that cannot be made fails the call that carried it, once; the calls after it work', { skip }, async (t) => {
  const s = await shared(t);
  const q = new PoolQ(s);
  await q.run('INSERT INTO t (id, v) VALUES (?, ?)', [1, 0]);
  await q.later('UPDATE t SET v = ? WHERE id = ?', ['not a number', 1]);
  await assert.rejects(q.rows('SELECT v FROM t WHERE id = ?', [1]), /invalid input syntax/);
  assert.equal(s.carried.pending, false);
  assert.deepEqual(await q.rows('SELECT v FROM t WHERE id = ?', [1]), [{ v: '0' }]);
});

test('a lone write under the lease is one round trip, a journal end waiting included; a statement after a write it committed is refused', { skip }, async (t) => {
  const { a, b } = await twoStores(t);
  const [s1] = await a.getServers('u');
  await a.acquireLease('u', { token: 'tok', pid: 1, host: 'h', pidStart: null }, () => false);
  const lone = { leaseOf: 'u', loneWriteLeased: 'tok' };
  const step = await a.beginCommand(s1!, 'update', 'x');
  await a.endCommand(step, { code: 0, stdout: 'ok', stderr: '', error: null });
  const queries = recordQueries(t);
  const running = await a.tx(async (x: StoreTx) => {
    const out = await x.setServerStatus(s1!.id, 'running', { step: 'update' });
    assert.equal(await x.leaseToken('u'), 'tok', 'the lease as the write’s round trip read it');
    return out;
  }, lone);
  assert.equal(running.status, 'running');
  assert.equal(queries.sent.length, 1, queries.sent.join(' | '));
  assert.match(queries.sent[0]!, /^UPDATE steps .*; COMMIT; BEGIN; .*; DO \$au\$.*; WITH old AS .*; COMMIT$/s);
  assert.ok((await ended(b, step)) !== null);
  assert.equal((await b.getServer(s1!.id)).status, 'running');
  await assert.rejects(
    a.tx(async (x: StoreTx) => {
      await x.setLockHeld(s1!.id, true);
      await x.setLockHeld(s1!.id, false);
    }, lone),
    /a statement after a lone write that was committed/,
  );
  // the promise broken is the caller's bug; the store goes on
  assert.equal((await b.getServer(s1!.id)).lockHeld, true);
  await a.setLockHeld(s1!.id, false);
  assert.equal((await b.getServer(s1!.id)).lockHeld, false);
});
