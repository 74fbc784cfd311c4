/**
 * One test body, both plan stores: `storeTargets()` gives a SQLite target (a file) and a
 * PostgreSQL target (a fresh schema per test on one server per test file, started by the first
 * test that asks and stopped after the file's last), so an end-to-end test runs the same CLI
 * commands against `--db FILE` and `--db postgres://…`:
 *
 *     for (const store of storeTargets()) {
 *       test(`… [${store.kind}]`, { skip: store.skip }, async (t) => {
 *         const db = await store.db(fleet.root);
 *         …
 *       });
 *     }
 *
 * The PostgreSQL target logs in as a role that must give its password (the server checks it),
 * so its URL carries one: `secret` is what no output of the CLI may contain.
 *
 * And the few reads a test makes of either database in this process (status, a wait on a
 * condition), through the port, as `status` would make them.
 */
import { after } from 'node:test';
import { join } from 'node:path';
import { systemClock } from '../../src/clock.js';
import { statusDocument } from '../../src/output/status-json.js';
import type { Store } from '../../src/store/port.js';
import { PgStore } from '../../src/store/postgres/store.js';
import { isPostgresUrl, parsePgUrl } from '../../src/store/postgres/url.js';
import type { StatusDoc } from './cli.js';
import { openStore, until } from './db.js';
import { postgresSkip, startPostgres, type PgServer } from './postgres.js';

export type StoreKind = 'sqlite' | 'postgres';

export interface StoreTarget {
  readonly kind: StoreKind;
  /** why the tests on this store are skipped, or false (see postgresSkip) */
  readonly skip: string | false;
  /** A new, empty plan database for one test: `plan.db` in `dir`, or a new schema on the test file's server. */
  db(dir: string): Promise<string>;
  /** What no output of the CLI may contain (the password in the URL), or null. */
  readonly secret: string | null;
}

/** The login of the PostgreSQL target; its password has characters a URL must encode. */
const LOGIN = { user: 'operator', password: 'Pw9-s3cret/@:%' } as const;

/** The part of the password that shows in it written raw or URL-encoded: never in any output. */
export const PG_SECRET = 'Pw9-s3cret';

/**
 * SQLite and PostgreSQL, for the tests of one file (call it once, at the top). PostgreSQL is
 * skipped when it is not installed, and fails the run under REQUIRE_POSTGRES=1 (postgresSkip).
 */
export function storeTargets(): StoreTarget[] {
  const skip = postgresSkip();
  let server: Promise<PgServer> | null = null;
  let schemas = 0;
  after(async () => {
    const s = await server?.catch(() => null);
    await s?.stop();
  });
  return [
    { kind: 'sqlite', skip: false, secret: null, db: (dir) => Promise.resolve(join(dir, 'plan.db')) },
    {
      kind: 'postgres',
      skip,
      secret: PG_SECRET,
      async db() {
        server ??= startPostgres('agent_update_e2e', { login: LOGIN });
        const { loginUrl } = await server;
        return `${loginUrl!}?schema=e2e_${++schemas}`;
      },
    },
  ];
}

/** The plan database `db` (a file, or a postgres:// URL), opened as a command that does not plan opens it. */
export async function openStoreAt(db: string): Promise<Store> {
  if (!isPostgresUrl(db)) return openStore(db);
  const target = parsePgUrl(db);
  return PgStore.open(target.url, { clock: systemClock, schema: target.schema, create: false });
}

/** Run `f` on the plan database `db` opened for it, and close it. */
export async function withStoreAt<T>(db: string, f: (store: Store) => T | Promise<T>): Promise<T> {
  const store = await openStoreAt(db);
  try {
    return await f(store);
  } finally {
    await store.close();
  }
}

/** Poll the plan database `db` (a second reader, as `status` would be) until `pred` holds. */
export function waitForStoreAt<T>(db: string, what: string, pred: (store: Store) => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  return withStoreAt(db, (store) => until(what, () => pred(store), timeoutMs));
}

/** The document `status NAME --json` prints, read in this process from either store (cli.ts statusJson, for both). */
export function statusAt(db: string, name: string): Promise<StatusDoc> {
  return withStoreAt(db, async (store) => JSON.parse(JSON.stringify(await statusDocument(store, name))) as StatusDoc);
}
