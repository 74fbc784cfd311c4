/** The port's contract (contract.ts) on the PostgreSQL store, on a server of this test file's own (helpers/postgres.ts); a schema per test. */
import { after, before } from 'node:test';
import type { Store } from '../../src/store/port.js';
import { PgStore } from '../../src/store/postgres/store.js';
import { postgresSkip, startPostgres, type PgServer } from '../helpers/postgres.js';
import { storeContract } from './contract.js';

const skip = postgresSkip();
let server: PgServer | undefined;
let schemas = 0;
const schemaOf = new WeakMap<Store, string>();

before(async () => {
  if (!skip) server = await startPostgres();
});
after(async () => {
  await server?.stop();
});

storeContract('postgres', {
  skip,
  async open(t, clock) {
    const schema = `contract_${++schemas}`;
    const store = await PgStore.open(server!.url, { clock, schema });
    schemaOf.set(store, schema);
    t.after(() => store.close());
    return store;
  },
  async reopen(t, store) {
    const again = await PgStore.open(server!.url, { clock: { now: () => new Date() }, schema: schemaOf.get(store)! });
    schemaOf.set(again, schemaOf.get(store)!);
    t.after(() => again.close());
    return again;
  },
});
