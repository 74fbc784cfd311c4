/**
 * store/postgres/conn.ts `inlined`: the first statement of a transaction goes with its BEGIN as
 * one simple query, its values written in as literals. Against a real server: every value comes
 * back exactly as sent as a parameter would (quotes, backslashes, `$1` in a value, newlines,
 * unicode, NULL, numbers, arrays), and a kind it cannot write is left to a parameter (null).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { inlined } from '../../src/store/postgres/conn.js';
import { postgresForFile } from '../helpers/postgres.js';

const { skip, postgres } = postgresForFile();

test('inlined values read back exactly as the same values sent as parameters', { skip }, async () => {
  const c = new pg.Client({ connectionString: postgres().url });
  await c.connect();
  try {
    const values: unknown[] = [
      "it's", 'back\\slash \\\\ two', '$1 and $2 and ?', 'line\nbreak\ttab', 'ünïcødé ✓ 日本', '', null, 42, -7, 0.5, true, false,
      ['running', "o'clock", 'a\\b'], [],
    ];
    const sql = `SELECT ${values.map((v, i) => `$${i + 1}${Array.isArray(v) ? '::text[]' : typeof v === 'number' ? '::float8' : typeof v === 'boolean' ? '::boolean' : '::text'} AS v${i}`).join(', ')}`;
    const asParams = (await c.query(sql, values)).rows[0] as Record<string, unknown>;
    const text = inlined(c, sql, values);
    assert.ok(text !== null);
    const asLiterals = (await c.query(text)).rows[0] as Record<string, unknown>;
    assert.deepEqual(asLiterals, asParams);
    assert.equal(asLiterals.v2, '$1 and $2 and ?', 'a value is not scanned for placeholders');
    // in a multi-statement simple query, as the transaction's start sends it
    const multi = (await c.query(`BEGIN; SELECT 1; ${text}; ROLLBACK`)) as unknown as pg.QueryResult[];
    assert.deepEqual(multi[2]!.rows[0], asParams);
  } finally {
    await c.end();
  }
});

test('inlined: a value of another kind (a Buffer, an object, a number that is not finite) is not written in', () => {
  const client = { escapeLiteral: (s: string) => `'${s.replace(/'/g, "''")}'` };
  assert.equal(inlined(client, 'SELECT $1', [Buffer.from('x')]), null);
  assert.equal(inlined(client, 'SELECT $1', [{ a: 1 }]), null);
  assert.equal(inlined(client, 'SELECT $1', [Number.NaN]), null);
  assert.equal(inlined(client, 'SELECT $1, $2', ['a', [1, { b: 2 }]]), null);
  assert.equal(inlined(client, 'SELECT $1, $10, $2', ['a', 'b', 3, 4, 5, 6, 7, 8, 9, 'ten']), "SELECT 'a', 'ten', 'b'");
});
