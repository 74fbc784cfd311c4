/**
 * The plan database in tests: waiting on conditions, not delays (each returns as soon as what it
 * waits for holds, and fails naming it once the generous limit passes), a Store opened for one
 * look, what the database holds (for "nothing changed"), and, for the few things the port cannot
 * say or make, the SQLite file opened directly.
 */
import Database from 'better-sqlite3';
import { Store } from '../../src/store/store.js';

/** Poll until `pred` holds. */
export async function until<T>(what: string, pred: () => T | undefined | false, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = pred();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Poll the plan database (a second reader, as `status` would be) until `pred` holds. */
export async function waitForStore<T>(db: string, what: string, pred: (store: Store) => T | undefined | false, timeoutMs = 60_000): Promise<T> {
  const store = new Store(db);
  try {
    return await until(what, () => pred(store), timeoutMs);
  } finally {
    store.close();
  }
}

/** Run `f` on a Store of `db` opened for it, and close it. */
export function withStore<T>(db: string, f: (store: Store) => T): T {
  const store = new Store(db);
  try {
    return f(store);
  } finally {
    store.close();
  }
}

/** The names of every update in `db`, oldest first. */
export function updatesOf(db: string): string[] {
  return withStore(db, (store) => store.listUpdates().map((u) => u.name));
}

/**
 * What the database holds, read through the Store, as one string to compare: every update, its
 * servers, the ids of its journal rows and events, every `auto` run. For "nothing changed".
 * `heartbeats: false` leaves out the lease's and the auto runs' heartbeats (a live executor
 * beats); `journal: false` the journal (a rollout held in verify adds a health check every 50 ms).
 */
export function contents(store: Store, opts: { heartbeats?: boolean; journal?: boolean } = {}): string {
  const { heartbeats = true, journal = true } = opts;
  const updates = store.listUpdates().sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return JSON.stringify({
    updates: updates.map((u) => (u.lease && !heartbeats ? { ...u, lease: { ...u.lease, heartbeat: null } } : u)),
    servers: updates.flatMap((u) => store.getServers(u.name)).sort((a, b) => a.id - b.id),
    events: updates.flatMap((u) => store.getEvents(u.name).map((e) => e.id)).sort((a, b) => a - b),
    steps: journal ? updates.flatMap((u) => store.getSteps(u.name).map((s) => s.id)).sort((a, b) => a - b) : null,
    auto: store.autoRuns().map((r) => (heartbeats ? r : { ...r, heartbeat: null })),
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
