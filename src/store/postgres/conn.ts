/**
 * How the operations of the PostgreSQL store reach the database: `Q` runs a statement (written
 * with `?` placeholders, as the SQLite store's are) and runs a function as one transaction of its
 * own, or a savepoint of the one open. Outside a transaction: the pool. Inside: the one client of
 * that transaction. Each marks, in its Attempt, when it sent something that commits (retry.ts
 * decides from it whether a failure may be tried again). Private to src/store/postgres.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import pgLib from './pg.js';
import type { Clock } from '../../clock.js';
import type { TxOptions } from '../port.js';
import type { Carried, Taken } from './carried.js';

export type Row = Record<string, unknown>;

export interface Q {
  /** The rows `sql` returns (`?` placeholders, in order). */
  rows(sql: string, params?: readonly unknown[]): Promise<Row[]>;
  /** How many rows `sql` changed. */
  run(sql: string, params?: readonly unknown[]): Promise<number>;
  /**
   * A write that can be sent twice (one row set to fixed values), committed with the next
   * statement this store sends instead of in a round trip of its own (carried.ts); in a
   * transaction, a statement of it as `run` is.
   */
  later(sql: string, params?: readonly unknown[]): Promise<void>;
  /** `fn` as one transaction (the store's write lock taken first), or a savepoint of the open one. */
  atomic<T>(fn: (q: Q) => Promise<T>, opts?: TxOptions): Promise<T>;
  /** In a transaction: the lease token its BEGIN read (TxOptions.leaseOf); else undefined. */
  prefetchedLease?(name: string): Promise<string | null | undefined>;
  /** Now, as every time this store writes is stamped. */
  iso(): string;
  /** Where the database is, as messages name it (no credentials). */
  readonly location: string;
}

/** `?` → `$1`, `$2`, … (the statements of this store have no `?` of their own). */
const converted = new Map<string, string>();
export function pgSql(sql: string): string {
  let out = converted.get(sql);
  if (out === undefined) {
    let n = 0;
    out = sql.replace(/\?/g, () => `$${++n}`);
    converted.set(sql, out);
  }
  return out;
}

/**
 * The values of a statement as PostgreSQL's text takes them: it cannot hold a NUL character
 * (SQLite can, and a command's output may have one), so each is stored as U+2400 (␀), visibly.
 */
export function pgValues(params: readonly unknown[]): unknown[] {
  return params.map((v) => (typeof v === 'string' && v.includes('\0') ? v.replace(/\0/g, '\u2400') : v));
}

/** A 64-bit advisory lock key (as a decimal string) for `what` in `schema`. */
export function lockKey(what: string, schema: string): string {
  return createHash('sha256').update(`agent-update:${what}:${schema}`).digest().readBigInt64BE(0).toString();
}

/** One try of a call (retry.ts): whether it has sent a COMMIT, or a statement that commits on its own. */
export interface Attempt {
  committing: boolean;
}

/** A statement of the pool that only reads: sending it commits nothing. */
const READ = /^\s*SELECT\b/i;

/** What every Q of one store shares. */
export interface Shared {
  readonly pool: pg.Pool;
  readonly schema: string;
  readonly location: string;
  readonly clock: Pick<Clock, 'now'>;
  /** The key of the store's write lock (pg_advisory_xact_lock). */
  readonly writeLock: string;
  nextSavepoint(): string;
  /** the writes waiting to ride with the next statement (carried.ts) */
  readonly carried: Carried;
}

/** The carried writes, sent on a connection of their own (carried.ts: when nothing followed them in time). */
export async function sendCarried(s: Pick<Shared, 'pool' | 'carried'>): Promise<void> {
  if (!s.carried.pending) return;
  // the connection first: writes taken are waited for by every statement (Carried.settled), so
  // they are taken only by a call that can send them at once
  const client = await s.pool.connect();
  let broken: Error | undefined;
  try {
    const carried = s.carried.take();
    if (carried !== null) await writeAlone(client, carried);
  } catch (e) {
    broken = isConnectionError(e) ? (e as Error) : undefined;
    throw e;
  } finally {
    client.release(broken);
  }
}

/**
 * The carried writes taken, sent alone: done once written; failing, put back when the connection
 * was lost, else dropped (a write that cannot be made is not tried again with every statement).
 */
async function writeAlone(client: pg.PoolClient, carried: Taken): Promise<void> {
  try {
    await client.query(carried.alone);
  } catch (e) {
    if (isConnectionError(e)) carried.back();
    else carried.done();
    throw e;
  }
  carried.done();
}

/**
 * `send()` (what sends `main` alone), or, when carried writes wait, `main` behind them
 * (sendCarrying). First waits for carried writes another call has in flight, so that nothing this
 * statement announces can commit before them.
 */
async function sendWithCarried(
  s: Pick<Shared, 'carried'>,
  client: pg.PoolClient,
  main: string | null,
  send: () => Promise<pg.QueryResult | pg.QueryResult[]>,
  undo?: () => Promise<void>,
): Promise<pg.QueryResult | pg.QueryResult[]> {
  await s.carried.settled();
  const carried = s.carried.take();
  return carried === null ? send() : sendCarrying(client, carried, main, send, undo);
}

/**
 * `main` (a simple query, or null when its values could not be written in) sent behind the
 * carried writes, in one round trip: `…; COMMIT; main`. Its results (an array when `main` is
 * several statements). When a statement of it fails, what happened is not guessed at: `undo`
 * ends a transaction `main` may have begun, the carried writes are sent alone (their own failure,
 * if any, is thrown, and they are dropped), then `resend` sends `main` alone, as it would have
 * been without them. A lost connection puts them back, for the call's retry (or another) to carry.
 */
async function sendCarrying(
  client: pg.PoolClient,
  carried: Taken,
  main: string | null,
  resend: () => Promise<pg.QueryResult | pg.QueryResult[]>,
  undo: () => Promise<void> = async () => undefined,
): Promise<pg.QueryResult | pg.QueryResult[]> {
  if (main === null) {
    await writeAlone(client, carried);
    return resend();
  }
  let results: pg.QueryResult[];
  try {
    results = (await client.query(carried.prefix + main)) as unknown as pg.QueryResult[];
  } catch (e) {
    if (isConnectionError(e)) {
      carried.back();
      throw e;
    }
    try {
      await undo();
    } catch (u) {
      carried.back();
      throw u;
    }
    await writeAlone(client, carried);
    return resend();
  }
  carried.done();
  const own = results.slice(carried.count + 1);
  return own.length === 1 ? own[0]! : own;
}

/**
 * BEGIN, the store's write lock (every writing transaction of every process on this schema one
 * after the other, as SQLite's BEGIN IMMEDIATE makes them: a check and the write it allows, such
 * as a server's claim against busy accounts, cannot interleave with another's), `fn`, COMMIT;
 * ROLLBACK when it throws. A transaction whose connection failed under `fn` (a call that `fn`
 * caught) is not committed: it throws that failure, before anything that commits was sent.
 * The client goes back to the pool either way (destroyed when broken, by the caller).
 */
export async function inTransaction<T>(
  s: Shared,
  client: pg.PoolClient,
  fn: (q: ClientQ) => Promise<T>,
  attempt: Attempt = { committing: false },
  opts: TxOptions = {},
): Promise<T> {
  // The start, sent with the transaction's first statement (ClientQ.send), in one round trip:
  // BEGIN, the write lock (the key is a number this store computed, not input), the lease the
  // transaction will check (its name a quoted literal: a simple query takes no parameters), and a
  // savepoint for its first call (ClientQ.atomic).
  const fresh = s.nextSavepoint();
  const leaseOf = opts.leaseOf ?? null;
  const state: TxState = {
    broken: null,
    fresh,
    leases: new Map(),
    begin: { sql: startSql(s, client, leaseOf, fresh), lone: true },
    savepoint: fresh,
    leaseOf,
    loneToken: opts.loneWriteLeased ?? null,
    committedAlone: null,
    attempt,
  };
  try {
    const out = await fn(new ClientQ(s, client, state));
    if (state.broken !== null) throw state.broken;
    // nothing was sent (the function read and wrote nothing): there is no transaction to end
    if (state.begin !== null) return out;
    // committed with its one write (TxOptions.loneWriteLeased), and nothing sent after it
    if (state.committedAlone !== null) return out;
    attempt.committing = true;
    await client.query('COMMIT');
    return out;
  } catch (e) {
    // a connection that failed needs no ROLLBACK (the server rolls back a session that ends), and one that hangs would keep us waiting for it
    const lost = isConnectionError(e) || (state.broken !== null && isConnectionError(state.broken));
    if (!attempt.committing && !lost && state.begin === null) await client.query('ROLLBACK').catch(() => undefined);
    throw e;
  }
}

/** BEGIN, the writers' lock, the lease asked for (TxOptions.leaseOf) and the first savepoint, as one string. */
function startSql(s: Shared, client: Pick<pg.PoolClient, 'escapeLiteral'>, leaseOf: string | null, savepoint: string): string {
  const lease = leaseOf === null ? '' : `; SELECT lease_token FROM updates WHERE name = ${client.escapeLiteral(leaseOf)}`;
  return `BEGIN; SELECT pg_advisory_xact_lock(${BigInt(s.writeLock)})${lease}; SAVEPOINT ${savepoint}`;
}

/** The SQLSTATE of leaseCheck's error. */
const LEASE_LOST = 'AU409';

/**
 * A check in SQL that `name`'s lease is `token`, for the start of a lone write: an error
 * LEASE_LOST, whose detail is the token found ('' for none), when it is not. Null when a value
 * would close the block's quoting (an update's name and a token never hold `$au$`).
 */
function leaseCheck(client: Pick<pg.PoolClient, 'escapeLiteral'>, name: string, token: string): string | null {
  const sql =
    `DO $au$ DECLARE held text; BEGIN SELECT lease_token INTO held FROM updates WHERE name = ${client.escapeLiteral(name)}; ` +
    `IF held IS DISTINCT FROM ${client.escapeLiteral(token)} THEN RAISE EXCEPTION 'the lease of this update is another''s' ` +
    `USING ERRCODE = '${LEASE_LOST}', DETAIL = coalesce(held, ''); END IF; END $au$`;
  return (sql.match(/\$au\$/g) ?? []).length === 2 ? sql : null;
}

/** Statements on the pool, each on whichever connection is free; `atomic` a transaction on one. */
export class PoolQ implements Q {
  constructor(
    private readonly s: Shared,
    private readonly attempt: Attempt = { committing: false },
  ) {}

  get location(): string {
    return this.s.location;
  }

  iso(): string {
    return this.s.clock.now().toISOString();
  }

  async rows(sql: string, params: readonly unknown[] = []): Promise<Row[]> {
    return (await this.send(sql, params)).rows as Row[];
  }

  async run(sql: string, params: readonly unknown[] = []): Promise<number> {
    return (await this.send(sql, params)).rowCount ?? 0;
  }

  /** As pool.query, but a statement that writes is marked committing only once a connection was had to send it on. */
  private async send(sql: string, params: readonly unknown[]): Promise<pg.QueryResult> {
    const client = await this.s.pool.connect();
    let broken: Error | undefined;
    try {
      if (!READ.test(sql)) this.attempt.committing = true;
      const text = pgSql(sql);
      const values = pgValues(params);
      return (await sendWithCarried(this.s, client, inlined(client, text, values), () => client.query(text, values))) as pg.QueryResult;
    } catch (e) {
      broken = isConnectionError(e) ? (e as Error) : undefined;
      throw e;
    } finally {
      client.release(broken);
    }
  }

  async later(sql: string, params: readonly unknown[] = []): Promise<void> {
    const text = inlined(pgLib, pgSql(sql), pgValues(params));
    if (text === null) await this.run(sql, params);
    else this.s.carried.add(text);
  }

  async atomic<T>(fn: (q: Q) => Promise<T>, opts?: TxOptions): Promise<T> {
    const client = await this.s.pool.connect();
    let broken: Error | undefined;
    try {
      return await inTransaction(this.s, client, fn, this.attempt, opts);
    } catch (e) {
      broken = isConnectionError(e) ? (e as Error) : undefined;
      throw e;
    } finally {
      client.release(broken);
    }
  }
}

/** An open transaction's state, shared by the ClientQ of its calls. */
interface TxState {
  /** the connection failure a call in it met, if any (the transaction is lost with it) */
  broken: unknown;
  /**
   * The savepoint made with BEGIN, while nothing was written after it: the first call that needs
   * a savepoint takes it instead of a round trip of its own. A read before it does not matter (a
   * ROLLBACK TO it undoes no write but the call's own).
   */
  fresh: string | null;
  /**
   * lease tokens read with BEGIN (TxOptions.leaseOf): as the transaction found them, under the
   * writers' lock; no write of the engine's guarded transactions changes a lease
   */
  leases: Map<string, string | null>;
  /**
   * the transaction's start, until it is sent with its first statement (null once sent); `lone`:
   * that first statement may be a lone write (loneToken; not in a transaction begun again)
   */
  begin: { sql: string; lone: boolean } | null;
  /** the savepoint the start makes (a transaction begun again after a lone write makes it again) */
  readonly savepoint: string;
  /** TxOptions.leaseOf */
  readonly leaseOf: string | null;
  /** TxOptions.loneWriteLeased: with leaseOf, a first statement that writes is a lone write, its lease check and COMMIT sent with it */
  readonly loneToken: string | null;
  /** a lone write committed with the start: whether it changed a row (null: none was) */
  committedAlone: { changed: boolean } | null;
  /** the call's try (retry.ts): committing once a COMMIT went with the start */
  readonly attempt: Attempt;
}

/**
 * `sql` (with `$1`, `$2`, …) with its values written in as literals, for a simple query (which
 * takes no parameters): strings quoted by the client library, finite numbers, NULL, booleans,
 * arrays of those; null when a value is of another kind (it is then sent as a parameter).
 */
export function inlined(client: Pick<pg.PoolClient, 'escapeLiteral'>, sql: string, values: readonly unknown[]): string | null {
  const literal = (v: unknown): string | null => {
    if (v === null || v === undefined) return 'NULL';
    if (typeof v === 'string') return client.escapeLiteral(v);
    if (typeof v === 'number') return Number.isFinite(v) ? String(v) : null;
    if (typeof v === 'boolean') return v ? 'TRUE' : 'FALSE';
    if (Array.isArray(v)) {
      const items = v.map(literal);
      return items.every((x) => x !== null) ? `ARRAY[${items.join(', ')}]` : null;
    }
    return null;
  };
  const shown = values.map(literal);
  if (shown.some((x) => x === null)) return null;
  return sql.replace(/\$(\d+)/g, (_, n: string) => shown[Number(n) - 1]!);
}

/**
 * Statements on the one client of an open transaction; `atomic` a savepoint in it, so that a
 * failing statement undoes its own writes only and leaves the transaction usable (PostgreSQL
 * otherwise refuses every statement after a failed one until the end of the transaction). Inside
 * a savepoint (`flat`), a further `atomic` is part of it: one savepoint per call of the port.
 */
export class ClientQ implements Q {
  constructor(
    private readonly s: Shared,
    private readonly client: pg.PoolClient,
    private readonly state: TxState,
    private readonly flat = false,
  ) {}

  get location(): string {
    return this.s.location;
  }

  iso(): string {
    return this.s.clock.now().toISOString();
  }

  async rows(sql: string, params: readonly unknown[] = []): Promise<Row[]> {
    return (await this.send(pgSql(sql), params)).rows as Row[];
  }

  async run(sql: string, params: readonly unknown[] = []): Promise<number> {
    return (await this.send(pgSql(sql), params)).rowCount ?? 0;
  }

  /**
   * The lease token read with BEGIN (TxOptions.leaseOf), if it was asked for there: the start is
   * sent now if not yet, alone. Another update's lease is not read with it, nor is the start sent
   * for it (the read the caller then makes carries the start).
   */
  async prefetchedLease(name: string): Promise<string | null | undefined> {
    const begin = this.state.begin;
    if (begin !== null) {
      if (this.state.leaseOf !== name) return undefined;
      await this.send('SELECT 1');
    }
    return this.state.leases.get(name);
  }

  private async send(sql: string, params: readonly unknown[] = []): Promise<pg.QueryResult> {
    if (this.state.committedAlone !== null) this.beginAgain();
    const begin = this.state.begin;
    const leaseOf = this.state.leaseOf;
    // a write after the start's savepoint: a ROLLBACK TO it would undo that write too
    if (!READ.test(sql)) this.state.fresh = null;
    let lone = false;
    try {
      if (begin !== null) {
        // the first statement goes with the start: one round trip for both, its values written in
        const values = pgValues(params);
        const first = inlined(this.client, sql, values);
        this.state.begin = null;
        // a lone write (TxOptions.loneWriteLeased): its lease check before it, the COMMIT after it
        const token = begin.lone ? this.state.loneToken : null;
        const check = leaseOf !== null && token !== null && first !== null && !READ.test(sql) ? leaseCheck(this.client, leaseOf, token) : null;
        lone = check !== null;
        const start = first === null ? begin.sql : lone ? `${begin.sql}; ${check}; ${first}; COMMIT` : `${begin.sql}; ${first}`;
        if (lone) this.state.attempt.committing = true;
        const results = (await sendWithCarried(this.s, this.client, start, () => this.client.query(start), async () => void (await this.client.query('ROLLBACK')))) as unknown as pg.QueryResult[];
        if (leaseOf !== null) this.state.leases.set(leaseOf, ((results[2]!.rows as Row[])[0]?.lease_token as string | null | undefined) ?? null);
        if (lone) {
          const own = results.at(-2)!;
          this.state.committedAlone = { changed: (own.rowCount ?? 0) > 0 };
          return own;
        }
        return first !== null ? results.at(-1)! : await this.client.query(sql, values);
      }
      return await this.client.query(sql, pgValues(params));
    } catch (e) {
      if (lone && !isConnectionError(e)) {
        // PostgreSQL answered that a statement before the COMMIT failed: nothing committed, the
        // transaction is open and failed (its savepoint undoes it, or the end rolls it back)
        this.state.attempt.committing = false;
        if ((e as { code?: unknown }).code === LEASE_LOST) this.state.leases.set(leaseOf!, (e as { detail?: string }).detail || null);
      }
      // A connection lost, or a statement that failed outside a savepoint (a bare read, PgTx): the
      // transaction cannot go on, and is never committed (a COMMIT now would be a silent ROLLBACK).
      if (isConnectionError(e) || !this.flat) this.state.broken ??= e;
      throw e;
    }
  }

  /**
   * After a lone write committed with the start (TxOptions.loneWriteLeased), the next statement
   * begins the transaction again, as the first did (lock, lease, savepoint): allowed only when that
   * write changed nothing (a refused status change, whose slow way reads again and names why).
   */
  private beginAgain(): void {
    const alone = this.state.committedAlone!;
    if (alone.changed) throw new Error('internal error: a statement after a lone write that was committed (TxOptions.loneWriteLeased)');
    this.state.committedAlone = null;
    this.state.attempt.committing = false;
    this.state.begin = { sql: startSql(this.s, this.client, this.state.leaseOf, this.state.savepoint), lone: false };
  }

  async later(sql: string, params: readonly unknown[] = []): Promise<void> {
    await this.run(sql, params);
  }

  async atomic<T>(fn: (q: Q) => Promise<T>): Promise<T> {
    if (this.flat) return fn(this);
    let name = this.state.fresh;
    if (name === null) {
      name = this.s.nextSavepoint();
      await this.send(`SAVEPOINT ${name}`);
    } else {
      this.state.fresh = null;
    }
    // Not released when it succeeds: the transaction's end releases it, and a RELEASE would be a
    // round trip more for every call made in a transaction.
    try {
      return await fn(new ClientQ(this.s, this.client, this.state, true));
    } catch (e) {
      // (a lone write committed: there is no transaction left to undo anything in)
      if (this.state.broken === null && this.state.committedAlone === null) await this.send(`ROLLBACK TO SAVEPOINT ${name}`);
      throw e;
    }
  }
}

/** An error of the connection itself (not of a statement): the client is not given back to the pool. */
export function isConnectionError(e: unknown): boolean {
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string') return /^(08|57P)/.test(code) || /^E[A-Z]+$/.test(code);
  // the client library's own, without a code: a connect or a statement that timed out, a socket that closed
  const message = e instanceof Error ? e.message : '';
  return /^(Connection terminated|timeout expired|Query read timeout|Client has encountered a connection error|Connection timeout)/i.test(message);
}
