/**
 * Whose turn it is on one store (SQLite's connection, PostgreSQL's pool). A transaction holds the
 * turn from its BEGIN to its COMMIT, across the awaits of its function; a call made meanwhile
 * waits for the calls before it, in the order they were made. Nobody waiting and nothing held: a
 * call runs at once.
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
}
