/**
 * store/postgres/pg.ts: the client library loads without building a fetch Response (Node 20 has
 * no `navigator`, and pg's runtime check would otherwise load Node's fetch), and the `navigator`
 * lent for it is gone afterwards.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

test('pg loads without loading fetch, and leaves no navigator behind', async () => {
  const had = 'navigator' in globalThis;
  const before = new Set((process as unknown as { moduleLoadList: string[] }).moduleLoadList);
  const { default: pg } = await import('../../src/store/postgres/pg.js');
  assert.equal(typeof pg.Pool, 'function');
  assert.equal('navigator' in globalThis, had);
  const loaded = (process as unknown as { moduleLoadList: string[] }).moduleLoadList.filter((m) => !before.has(m));
  assert.deepEqual(loaded.filter((m) => /undici|internal\/deps\/undici|fetch/.test(m)), []);
});
