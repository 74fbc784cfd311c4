/**
 * Whose turn it is on one store (as store/sqlite/turns.ts): a transaction holds the turn from its
 * BEGIN to its COMMIT, across the awaits of its function; a call made meanwhile waits for the
 * calls before it, in the order they were made. Nothing held: a call runs at once (on the pool).
 */
export class Turns {
  private held = false;
  private readonly waiting: Array<() => void> = [];

  get free(): boolean {
    return !this.held;
  }

  take(): Promise<void> {
    if (!this.held) {
      this.held = true;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  give(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.held = false;
  }
}
