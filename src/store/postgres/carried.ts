/**
 * Writes that ride with the next statement: a command's journal end (its exit code and output) is
 * not sent in a round trip of its own but in front of whatever this store sends next, in the same
 * simple query, committed before it (`…; COMMIT; next`). The engine's next statement is the next
 * command's journal row, or the write that announces the server's next state; either is sent
 * before the remote action it announces, so a result is always committed before anything is run
 * after it. When nothing follows within CARRY_MS, a timer sends it alone; closing the store sends
 * it too. A process killed before it was sent loses it, as one killed just before the write
 * would: the command stays in flight in the journal and the next `start` re-checks the server.
 * docs/decisions.md "The journal's end rides with the next statement" says why. Private to
 * src/store/postgres.
 *
 * Only writes that can be sent twice are carried (an UPDATE of one row to fixed values): a
 * batch lost with its connection, or failing on a statement after them, leaves them to be sent
 * again.
 */

/** How long a carried write waits for a statement to ride with before it is sent alone. */
export const CARRY_MS = 25;

/** Carried writes taken to be sent: `done` once written, `back` when they may not have been. */
export interface Taken {
  /** the writes, then COMMIT, as the start of a simple query */
  readonly prefix: string;
  /** the writes alone */
  readonly alone: string;
  /** how many statements they are */
  readonly count: number;
  done(): void;
  back(): void;
}

/** The writes waiting; one per store. */
export class Carried {
  /** the statements, their values written in (conn.ts `inlined`) */
  private items: string[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | null = null;

  /** `sendAlone`: how the timer sends them when nothing else did. */
  constructor(private readonly sendAlone: () => Promise<void>) {}

  get pending(): boolean {
    return this.items.length > 0;
  }

  /** `sql` (values written in) to be committed with the next statement, or alone within CARRY_MS. */
  add(sql: string): void {
    this.items.push(sql);
    this.arm();
  }

  private disarm(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private arm(): void {
    this.timer ??= setTimeout(() => {
      this.timer = null;
      // failing (the database away), they wait for the next statement, which waits for the database
      if (this.pending) this.sendAlone().catch(() => undefined);
    }, CARRY_MS);
  }

  /**
   * What is waiting, as the start of a simple query (`…; COMMIT; `: committed before what follows
   * it, whatever that does), taken out of the queue (a call beside this one does not send them
   * too); `back` puts them back in front when they may not have been written (the query failed).
   * Null when nothing waits.
   */
  take(): Taken | null {
    if (this.items.length === 0) return null;
    const taken = this.items;
    this.items = [];
    this.disarm();
    const alone = taken.join('; ');
    let settle!: () => void;
    const settled = new Promise<void>((resolve) => (settle = resolve));
    this.inFlight.add(settled);
    const end = () => {
      this.inFlight.delete(settled);
      settle();
    };
    return {
      prefix: `${alone}; COMMIT; `,
      alone,
      count: taken.length,
      done: end,
      back: () => {
        this.items = [...taken, ...this.items];
        this.arm();
        end();
      },
    };
  }

  /**
   * Once the carried writes another call took are written (or back in the queue): a statement
   * waits for them, so that nothing this process sends after a result was recorded can commit
   * before that result.
   */
  settled(): Promise<void> | null {
    return this.inFlight.size === 0 ? null : Promise.all(this.inFlight).then(() => undefined);
  }

  /** Forget what waits (the store is closing and could not send it). */
  clear(): void {
    this.items = [];
    this.disarm();
  }
}
