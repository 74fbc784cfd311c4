/** The port's contract (contract.ts) on the PostgreSQL store, on a server of this test file's own (helpers/postgres.ts); a schema per test. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UsageError } from '../../src/errors.js';
import type { Store } from '../../src/store/port.js';
import { PgStore } from '../../src/store/postgres/store.js';
import { postgresForFile } from '../helpers/postgres.js';
import { newUpdate, storeContract } from './contract.js';

const { skip, postgres } = postgresForFile();
let schemas = 0;
const schemaOf = new WeakMap<Store, string>();


storeContract('postgres', {
  skip,
  async open(t, clock) {
    const schema = `contract_${++schemas}`;
    const store = await PgStore.open(postgres().url, { clock, schema });
    schemaOf.set(store, schema);
    t.after(() => store.close());
    return store;
  },
  async reopen(t, store) {
    const again = await PgStore.open(postgres().url, { clock: { now: () => new Date() }, schema: schemaOf.get(store)! });
    schemaOf.set(again, schemaOf.get(store)!);
    t.after(() => again.close());
    return again;
  },
});

test('postgres: stores opening a new schema at once all migrate it, one identity; a password never appears in an error', { skip }, async () => {
  const clock = { now: () => new Date() };
  const stores = await Promise.all(Array.from({ length: 6 }, () => PgStore.open(postgres().url, { clock, schema: 'race' })));
  assert.equal(new Set(stores.map((s) => s.dbId)).size, 1);
  await Promise.all(stores.map((s) => s.close()));
  const u = new URL(postgres().url);
  u.username = 'nobody';
  u.password = 's3cret-pw';
  await assert.rejects(PgStore.open(u.toString(), { clock }), (e: unknown) => e instanceof UsageError && !/s3cret-pw/.test(e.message) && /cannot open the plan database/.test(e.message));
  await assert.rejects(PgStore.open(postgres().url, { clock, schema: 'Bad; DROP' }), UsageError);
});

test('postgres: a NUL character, which its text cannot hold, is stored as ␀ (a command’s output, an event) instead of failing the write', { skip }, async (t) => {
  const store = await PgStore.open(postgres().url, { clock: { now: () => new Date() }, schema: 'nul_bytes' });
  t.after(() => store.close());
  await store.createUpdate(newUpdate('a', 1));
  const [s1] = await store.getServers('a');
  const id = await store.beginCommand(s1!, 'update', 'printf "a\\0b"');
  await store.endCommand(id, { code: 0, stdout: 'a\0b', stderr: '\0', error: null });
  await store.addEvent('a', 's1', 'note', 'x\0y');
  const [entry] = await store.getJournal('a');
  assert.deepEqual([entry!.stdout, entry!.stderr], ['a\u2400b', '\u2400']);
  assert.ok((await store.getEvents('a')).some((e) => e.message === 'x\u2400y'));
});
