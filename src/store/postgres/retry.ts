/**
 * A plan database that goes away (a restart, a failover, a network blip to it): which failures
 * of a call of the PostgreSQL store are tried again, on a fresh connection, and for how long.
 * Private to src/store/postgres; docs/decisions.md "A plan database that goes away" says why.
 *
 * A call (or a `tx`) that fails with a connection error is tried again, from its start, with
 * backoff, when nothing of it can have been committed:
 * - the connection could not be made, or the client library refused to send on a connection it
 *   knew was broken: nothing was sent;
 * - nothing that commits had been sent: a read, or a transaction before its COMMIT (a
 *   transaction whose connection ends is rolled back by the server);
 * - the server itself answered that it is ending the session (SQLSTATE 08…, 57P…: a shutdown, a
 *   terminated backend): an error the server reports for a statement means that statement, and
 *   the transaction it would have committed, did not commit.
 * A connection lost without an answer after a COMMIT (or a statement that commits on its own)
 * was sent is ambiguous: the write may or may not be there, and doing it again could record it
 * twice, so it is not tried again: StoreError (exit 1).
 *
 * The tries go on while the outage lasts less than `retryForMs` (from the first failure of it
 * any call saw, until any call succeeds): then StoreError, and every call that fails from then on
 * gives up at its first failure instead of waiting the bound again, until one succeeds. A caller
 * therefore waits, never runs on: the engine records a command before sending it, so while the
 * database cannot be written, nothing is sent to a server.
 */
import pgLib from './pg.js';
import { StoreError } from '../../errors.js';
import { formatDuration } from '../../util/duration.js';
import { isConnectionError, type Attempt } from './conn.js';

/** How long a call waits for an unreachable database when nothing else is said ($AGENT_UPDATE_DB_RETRY). */
export const DEFAULT_RETRY_FOR_MS = 60_000;

/** The waits between tries, the last one repeated. */
export const RETRY_BACKOFF_MS = [100, 250, 500, 1_000, 2_000];

/** What a person is told while the database is away: once when it stops answering, once when it answers again. */
export type DbNotice = { kind: 'unreachable'; error: string; retryForMs: number } | { kind: 'reachable'; afterMs: number };

export interface RetryOptions {
  /** where the database is, as messages name it (no password) */
  location: string;
  /** how long an outage is waited for before a call gives up; 0: never tried again */
  retryForMs: number;
  notice?: (n: DbNotice) => void;
  /** a message of the client library with any credential taken out */
  scrub?: (message: string) => string;
}

/** How `e`, a failure of one try, is handled. */
export function verdictOf(e: unknown, a: Attempt): 'retry' | 'ambiguous' | 'fail' {
  if (!isConnectionError(e)) return 'fail';
  if (!a.committing || sentNothing(e) || e instanceof pgLib.DatabaseError) return 'retry';
  return 'ambiguous';
}

/** The client library refused to send on a connection it already knew was broken or closed. */
function sentNothing(e: unknown): boolean {
  return e instanceof Error && / is not queryable$/.test(e.message);
}

/** The calls of one store, tried again while the database is away; one outage shared by them all. */
export class Retrier {
  /** when the outage began (performance.now()), null while the database answers */
  private since: number | null = null;
  private announced = false;
  /** a call has given up on this outage: the next ones give up at their first failure */
  private gaveUp = false;

  constructor(private readonly o: RetryOptions) {}

  /** `attempt`, tried again (from its start, with a fresh Attempt) as the top of this file says. */
  async run<T>(attempt: (a: Attempt) => Promise<T>): Promise<T> {
    for (let tries = 0; ; tries++) {
      const a: Attempt = { committing: false };
      try {
        const out = await attempt(a);
        this.answered();
        return out;
      } catch (e) {
        const verdict = verdictOf(e, a);
        if (verdict === 'fail') throw this.failure(e);
        if (verdict === 'ambiguous') {
          throw new StoreError(
            `the connection to the plan database ${this.o.location} was lost while a write was being committed (${this.reason(e)}): ` +
              'whether it was recorded is not known, so it is not made again',
          );
        }
        const wait = this.waitAfter(e, tries);
        if (wait === null) throw this.unreachable(e);
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  }

  /**
   * `attempt` tried once (a heartbeat: the next beat is its retry). Its failure neither starts
   * an outage nor waits; its success ends one.
   */
  async once<T>(attempt: (a: Attempt) => Promise<T>): Promise<T> {
    try {
      const out = await attempt({ committing: false });
      this.answered();
      return out;
    } catch (e) {
      throw this.failure(e);
    }
  }

  /** How long to wait before the next try, or null: give up. */
  private waitAfter(e: unknown, tries: number): number | null {
    const now = performance.now();
    if (this.since === null) {
      this.since = now;
      this.gaveUp = false;
    }
    const waited = now - this.since;
    if (this.gaveUp || waited >= this.o.retryForMs) {
      this.gaveUp = true;
      return null;
    }
    if (!this.announced) {
      this.announced = true;
      this.o.notice?.({ kind: 'unreachable', error: this.reason(e), retryForMs: this.o.retryForMs });
    }
    return Math.min(RETRY_BACKOFF_MS[Math.min(tries, RETRY_BACKOFF_MS.length - 1)]!, this.o.retryForMs - waited);
  }

  /** A call succeeded: the outage, if any, is over. */
  private answered(): void {
    if (this.since === null) return;
    const afterMs = performance.now() - this.since;
    const announced = this.announced;
    this.since = null;
    this.announced = false;
    this.gaveUp = false;
    if (announced) this.o.notice?.({ kind: 'reachable', afterMs });
  }

  private unreachable(e: unknown): StoreError {
    const waited = this.since === null ? 0 : performance.now() - this.since;
    return new StoreError(`the plan database ${this.o.location} could not be reached for ${formatDuration(Math.round(waited / 1000) * 1000)} (${this.reason(e)})`);
  }

  private reason(e: unknown): string {
    const r = reasonOf(e);
    return this.o.scrub ? this.o.scrub(r) : r;
  }

  /** What a failure not tried again is thrown as: the database's own errors as StoreError (exit 1), anything else as it is. */
  private failure(e: unknown): unknown {
    if (e instanceof pgLib.DatabaseError) {
      return new StoreError(`the plan database ${this.o.location} failed: ${this.reason(e)}${e.code ? ` (SQLSTATE ${e.code})` : ''}`);
    }
    if (isConnectionError(e)) return new StoreError(`the plan database ${this.o.location} could not be reached (${this.reason(e)})`);
    return e;
  }
}

/** A one-line reason: the message, else the code (an AggregateError of a refused connect has no message). */
function reasonOf(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return (m || (e as { code?: string }).code || 'connection error').replace(/\s+/g, ' ');
}
