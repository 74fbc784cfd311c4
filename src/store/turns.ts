import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * Whose turn it is on one store (SQLite's connection, PostgreSQL's pool). A transaction holds the
 * turn from its BEGIN to its COMMIT, across the awaits of its function; a call made meanwhile
 * waits for the calls before it, in the order they were made. Nobody waiting and nothing held: a
 * call runs at once.
 *
 * A call from inside the function of this store's own open transaction would wait for that
 * transaction, which waits for the call: `whileOpen` marks the function's async context, and
 * `ownCall` refuses such a call with an error instead of letting it hang (a bug: use `t`).
 */
export class Turns {
  private held = false;
  private readonly waiting: Array<() => void> = [];

  /** Nothing holds the connection and nothing waits for it. */
  get free(): boolean {
    return !this.held;
  }

  /** Resolves once it is the caller's turn (at once when free); the caller must `give()` it back. */
  take(): Promise<void> {
    if (!this.held) {
      this.held = true;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** The turn goes to the first caller waiting, or the connection is free. */
  give(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.held = false;
  }

  /** `fn` in the caller's turn (after every call made before it); the turn is given back however it ends. */
  async inTurn<T>(fn: () => T | Promise<T>): Promise<T> {
    await this.take();
    try {
      return await fn();
    } finally {
      this.give();
    }
  }

  /** Run a transaction's function, marked as inside this store's transaction until it ends. */
  async whileOpen<T>(fn: () => Promise<T>): Promise<T> {
    const mark = { turns: this, open: true };
    try {
      return await insideTx.run(mark, fn);
    } finally {
      mark.open = false;
    }
  }

  /** The error refusing a call made from inside this store's own open transaction, else null. */
  ownCall(): Error | null {
    const open = insideTx.getStore();
    return open?.turns === this && open.open
      ? new Error('a call on the store inside its own transaction (it would wait for itself): make it through the transaction handle')
      : null;
  }
}

/** The transaction whose function this code runs in (and whether it is still open), if any. */
const insideTx = new AsyncLocalStorage<{ turns: Turns; open: boolean }>();
