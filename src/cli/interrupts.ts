/**
 * SIGINT and SIGTERM for `start` and `resume`, caught from the command's first line (before its
 * modules load, the store opens or SSH is checked), so a Ctrl-C in the first milliseconds is
 * never lost: until the command says what a signal means (`handle`), signals are only counted,
 * and replayed to the handler once it is set.
 *
 * SIGHUP (the terminal closed, an SSH session dropped) is not an interrupt: it is ignored while
 * the command runs, so the rollout goes on to its end or its next pause as with any other closed
 * output (output/closed.ts: every write to the terminal gone is dropped). `pause NAME` from another
 * terminal stops it; `status NAME --watch` follows it.
 */
export class Interrupts {
  private readonly caught: NodeJS.Signals[] = [];
  private handler: ((signal: NodeJS.Signals, count: number) => void) | null = null;
  private readonly listener = (signal: NodeJS.Signals) => {
    this.caught.push(signal);
    this.handler?.(signal, this.caught.length);
  };

  private readonly hangup = () => {};

  constructor() {
    process.on('SIGINT', this.listener);
    process.on('SIGTERM', this.listener);
    process.on('SIGHUP', this.hangup);
  }

  /** how many signals arrived so far */
  get count(): number {
    return this.caught.length;
  }

  /** the first signal, if any */
  get first(): NodeJS.Signals | undefined {
    return this.caught[0];
  }

  /** From now on each signal calls `handler` (with how many came so far); earlier ones are replayed, in order. */
  handle(handler: (signal: NodeJS.Signals, count: number) => void): void {
    this.handler = handler;
    this.caught.forEach((signal, i) => handler(signal, i + 1));
  }

  /** Let signals already delivered to the process reach the listener (they wait for the event loop). */
  settle(): Promise<void> {
    return new Promise((resolve) => setImmediate(resolve));
  }

  dispose(): void {
    this.handler = null;
    process.off('SIGINT', this.listener);
    process.off('SIGTERM', this.listener);
    process.off('SIGHUP', this.hangup);
  }
}
