/** test/helpers/postgres.ts: a server of its own, on a port it picked, that answers and is gone after stop(). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { postgresSkip, startPostgres } from '../helpers/postgres.js';

test('a PostgreSQL server of the test: started on a free port, a database created, taken down and up again with its data, stopped and removed', { skip: postgresSkip() }, async () => {
  const server = await startPostgres();
  const c = new pg.Client({ connectionString: server.url });
  await c.connect();
  const r = await c.query<{ db: string }>('SELECT current_database() AS db');
  await c.end();
  assert.equal(r.rows[0]!.db, 'agent_update_test');
  const port = new URL(server.url).port;
  assert.notEqual(port, '5432');
  // down and up again on the same port, with what was committed
  const kept = new pg.Client({ connectionString: server.url });
  await kept.connect();
  await kept.query('CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)');
  await kept.end();
  await server.stopServer();
  await assert.rejects(new pg.Client({ connectionString: server.url, connectionTimeoutMillis: 2000 }).connect());
  await server.startServer();
  const back = new pg.Client({ connectionString: server.url });
  await back.connect();
  assert.equal((await back.query<{ x: number }>('SELECT x FROM kept')).rows[0]!.x, 7);
  await back.end();
  await server.stop();
  const again = new pg.Client({ connectionString: server.url, connectionTimeoutMillis: 2000 });
  await assert.rejects(again.connect());
});

test('a login with a password: the server checks it (a wrong one is refused), and the role may create a schema', { skip: postgresSkip() }, async () => {
  const server = await startPostgres('agent_update_test', { login: { user: 'tester', password: 'p@ss:w/rd%' } });
  try {
    const url = server.loginUrl!;
    assert.match(url, /^postgres:\/\/tester:p%40ss%3Aw%2Frd%25@127\.0\.0\.1:\d+\/agent_update_test$/);
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    await c.query('CREATE SCHEMA mine');
    await c.end();
    const u = new URL(url);
    u.password = 'wrong';
    const bad = new pg.Client({ connectionString: u.toString() });
    await assert.rejects(bad.connect(), /password authentication failed for user "tester"/);
  } finally {
    await server.stop();
  }
});
