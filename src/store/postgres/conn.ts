/**
 * How the operations of the PostgreSQL store reach the database: `Q` runs a statement (written
 * with `?` placeholders, as the SQLite store's are) and runs a function as one transaction of its
 * own, or a savepoint of the one open. Outside a transaction: the pool. Inside: the one client of
 * that transaction. Private to src/store/postgres.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import type { Clock } from '../../clock.js';

export type Row = Record<string, unknown>;

export interface Q {
  /** The rows `sql` returns (`?` placeholders, in order). */
  rows(sql: string, params?: readonly unknown[]): Promise<Row[]>;
  /** How many rows `sql` changed. */
  run(sql: string, params?: readonly unknown[]): Promise<number>;
  /** `fn` as one transaction (the store's write lock taken first), or a savepoint of the open one. */
  atomic<T>(fn: (q: Q) => Promise<T>): Promise<T>;
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

/** What every Q of one store shares. */
export interface Shared {
  readonly pool: pg.Pool;
  readonly schema: string;
  readonly location: string;
  readonly clock: Pick<Clock, 'now'>;
  /** The key of the store's write lock (pg_advisory_xact_lock). */
  readonly writeLock: string;
  nextSavepoint(): string;
}

/**
 * BEGIN, the store's write lock (every writing transaction of every process on this schema one
 * after the other, as SQLite's BEGIN IMMEDIATE makes them: a check and the write it allows, such
 * as a server's claim against busy accounts, cannot interleave with another's), `fn`, COMMIT;
 * ROLLBACK when it throws. The client goes back to the pool either way (destroyed when broken).
 */
export async function inTransaction<T>(s: Shared, client: pg.PoolClient, fn: (q: ClientQ) => Promise<T>): Promise<T> {
  // one round trip for both (the key is a number this store computed, not input)
  await client.query(`BEGIN; SELECT pg_advisory_xact_lock(${BigInt(s.writeLock)})`);
  try {
    const out = await fn(new ClientQ(s, client));
    await client.query('COMMIT');
    return out;
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw e;
  }
}

/** Statements on the pool, each on whichever connection is free; `atomic` a transaction on one. */
export class PoolQ implements Q {
  constructor(private readonly s: Shared) {}

  get location(): string {
    return this.s.location;
  }

  iso(): string {
    return this.s.clock.now().toISOString();
  }

  async rows(sql: string, params: readonly unknown[] = []): Promise<Row[]> {
    return (await this.s.pool.query(pgSql(sql), pgValues(params))).rows as Row[];
  }

  async run(sql: string, params: readonly unknown[] = []): Promise<number> {
    return (await this.s.pool.query(pgSql(sql), pgValues(params))).rowCount ?? 0;
  }

  async atomic<T>(fn: (q: Q) => Promise<T>): Promise<T> {
    const client = await this.s.pool.connect();
    let broken: Error | undefined;
    try {
      return await inTransaction(this.s, client, fn);
    } catch (e) {
      broken = isConnectionError(e) ? (e as Error) : undefined;
      throw e;
    } finally {
      client.release(broken);
    }
  }
}

/** Statements on the one client of an open transaction; `atomic` a savepoint in it. */
export class ClientQ implements Q {
  constructor(
    private readonly s: Shared,
    private readonly client: pg.PoolClient,
  ) {}

  get location(): string {
    return this.s.location;
  }

  iso(): string {
    return this.s.clock.now().toISOString();
  }

  async rows(sql: string, params: readonly unknown[] = []): Promise<Row[]> {
    return (await this.client.query(pgSql(sql), pgValues(params))).rows as Row[];
  }

  async run(sql: string, params: readonly unknown[] = []): Promise<number> {
    return (await this.client.query(pgSql(sql), pgValues(params))).rowCount ?? 0;
  }

  async atomic<T>(fn: (q: Q) => Promise<T>): Promise<T> {
    const name = this.s.nextSavepoint();
    await this.client.query(`SAVEPOINT ${name}`);
    try {
      const out = await fn(this);
      await this.client.query(`RELEASE SAVEPOINT ${name}`);
      return out;
    } catch (e) {
      await this.client.query(`ROLLBACK TO SAVEPOINT ${name}`);
      await this.client.query(`RELEASE SAVEPOINT ${name}`);
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
