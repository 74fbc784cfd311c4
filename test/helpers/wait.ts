/**
 * Waiting on conditions, not delays: each returns as soon as what it waits for holds, and fails
 * with what it waited for once the (generous) limit passes.
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
