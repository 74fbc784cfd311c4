/**
 * The plan database in tests: waiting on conditions, not delays (each returns as soon as what it
 * waits for holds, and fails naming it once the generous limit passes), a Store opened for one
 * look, what the database holds (for "nothing changed"), and, for the few things the port cannot
 * say or make, the SQLite file opened directly.
 */
import Database from 'better-sqlite3';
import { systemClock, type Clock } from '../../src/clock.js';
import type { ReportStore } from '../../src/store/port.js';
import { SqliteStore } from '../../src/store/sqlite/store.js';

/** The plan database at `path`, as the CLI opens it (its times from `clock`). */
export function openStore(path: string, clock: Pick<Clock, 'now'> = systemClock): SqliteStore {
  return new SqliteStore(path, { clock });
}

/** Poll until `pred` holds. */
export async function until<T>(what: string, pred: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Poll the plan database (a second reader, as `status` would be) until `pred` holds. */
export async function waitForStore<T>(
  db: string,
  what: string,
  pred: (store: SqliteStore) => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 60_000,
): Promise<T> {
  const store = openStore(db);
  try {
    return await until(what, () => pred(store), timeoutMs);
  } finally {
    await store.close();
  }
}

/** Run `f` on a Store of `db` opened for it, and close it. */
export async function withStore<T>(db: string, f: (store: SqliteStore) => T | Promise<T>): Promise<T> {
  const store = openStore(db);
  try {
    return await f(store);
  } finally {
    await store.close();
  }
}

/** The names of every update in `db`, oldest first. */
export async function updatesOf(db: string): Promise<string[]> {
  return withStore(db, async (store) => (await store.listUpdates()).map((u) => u.name));
}

/**
 * What the database holds, read through the Store, as one string to compare: every update, its
 * servers, the ids of its journal rows and events, every `auto` run. For "nothing changed".
 * `heartbeats: false` leaves out the lease's and the auto runs' heartbeats (a live executor
 * beats); `journal: false` the journal (a rollout held in verify adds a health check every 50 ms).
 */
export async function contents(store: ReportStore, opts: { heartbeats?: boolean; journal?: boolean } = {}): Promise<string> {
  const { heartbeats = true, journal = true } = opts;
  const updates = (await store.listUpdates()).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const servers = [];
  const events: number[] = [];
  const steps: number[] = [];
  for (const u of updates) {
    servers.push(...(await store.getServers(u.name)));
    events.push(...(await store.getEvents(u.name)).map((e) => e.id));
    if (journal) steps.push(...(await store.getJournal(u.name)).map((s) => s.id));
  }
  return JSON.stringify({
    updates: updates.map((u) => (u.lease && !heartbeats ? { ...u, lease: { ...u.lease, heartbeat: null } } : u)),
    servers: servers.sort((a, b) => a.id - b.id),
    events: events.sort((a, b) => a - b),
    steps: journal ? steps.sort((a, b) => a - b) : null,
    auto: (await store.autoRuns()).map((r) => (heartbeats ? r : { ...r, heartbeat: null })),
  });
}

/**
 * The plan database's SQLite file opened directly, as the sqlite3 shell would open it, for `f`.
 * Only for what the Store does not say or make: the schema and its version, query plans, a copy
 * of the file, a row no command writes.
 */
export function withSqliteFile<T>(file: string, f: (db: Database.Database) => T, opts: { readonly?: boolean } = {}): T {
  const db = new Database(file, { readonly: opts.readonly ?? false, timeout: 10_000 });
  try {
    return f(db);
  } finally {
    db.close();
  }
}

/** `sqlite3 FROM '.backup TO'`: a consistent copy of the database, its id included, as a backup restored would be. */
export async function copyDatabase(from: string, to: string): Promise<void> {
  const db = new Database(from, { timeout: 10_000 });
  try {
    await db.backup(to);
  } finally {
    db.close();
  }
}
