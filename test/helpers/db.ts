/**
 * The plan database in tests: waiting on conditions, not delays (each returns as soon as what it
 * waits for holds, and fails naming it once the generous limit passes), and a Store opened for
 * one look.
 */
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
