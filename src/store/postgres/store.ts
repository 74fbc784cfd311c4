import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import pgLib from './pg.js';
import type { Clock } from '../../clock.js';
import type { VersionClass } from '../../config/types.js';
import { AppError, EXIT, UsageError } from '../../errors.js';
import { suggest } from '../../util/suggest.js';
import { checkSchemaName, DEFAULT_SCHEMA, redactUrl, scrub } from './url.js';
import type { ServerStatus, UpdateStatus } from '../../model/lifecycle.js';
import type { Lease, ServerRecord, UpdateRecord } from '../../model/records.js';
import type { CommandResult, LeaseClaim, LeaseResult, NewAutoRun, NewFreeze, NewUpdate, ServerChange, Store, StoreTx, TxOptions, UpdateChange } from '../port.js';
import { Carried } from './carried.js';
import { isConnectionError, lockKey, PoolQ, sendCarried, type Q, type Shared } from './conn.js';
import { DEFAULT_RETRY_FOR_MS, Retrier, type DbNotice } from './retry.js';
import * as ops from './ops.js';
import type { StoreDump } from '../copy.js';
import * as copy from './copy.js';
import { PG_MIGRATIONS } from './schema.js';
import { Turns } from '../turns.js';
import { SessionLocks } from './session-locks.js';

/** Every method of the port, each an operation of ops.ts on this handle's `Q`; `call` says when it may run. */
abstract class PgCalls implements StoreTx {
  constructor(
    protected readonly shared: Shared,
    readonly dbId: string,
  ) {}

  get location(): string {
    return this.shared.location;
  }

  protected abstract call<T>(op: (q: Q) => Promise<T>): Promise<T>;
  /** As `call`, but tried once when the database is away (a heartbeat: the next beat is its retry). */
  protected callOnce<T>(op: (q: Q) => Promise<T>): Promise<T> {
    return this.call(op);
  }
  /** A call that only reads: inside a transaction it needs no savepoint of its own (see PgTx). */
  protected read<T>(op: (q: Q) => Promise<T>): Promise<T> {
    return this.call(op);
  }
  abstract tx<T>(fn: (t: StoreTx) => Promise<T>, opts?: TxOptions): Promise<T>;

  hasUpdate(name: string) { return this.read((q) => ops.hasUpdate(q, name)); }
  findUpdate(name: string) { return this.read((q) => ops.findUpdate(q, name)); }
  getUpdate(name: string) { return this.read((q) => ops.getUpdate(q, name)); }
  listUpdates() { return this.read((q) => ops.listUpdates(q)); }
  batchesOf(name: string) { return this.read((q) => ops.batchesOf(q, name)); }
  retriesOf(name: string) { return this.read((q) => ops.retriesOf(q, name)); }
  undosOf(name: string) { return this.read((q) => ops.undosOf(q, name)); }
  updatesOfConfig(configFile: string) { return this.read((q) => ops.updatesOfConfig(q, configFile)); }
  createUpdate(u: NewUpdate) { return this.call((q) => ops.createUpdate(q, u)); }
  setUpdateStatus(name: string, to: UpdateStatus, change: UpdateChange = {}) { return this.call((q) => ops.setUpdateStatus(q, name, to, change)); }
  patchUpdate(name: string, change: UpdateChange) { return this.call((q) => ops.patchUpdate(q, name, change)); }
  insertBatch(from: UpdateRecord, name: string, testStopAfter: number, as?: { status: 'paused'; reason: string }) {
    return this.call((q) => ops.insertBatch(q, from, name, testStopAfter, as));
  }

  getServers(updateName: string) { return this.read((q) => ops.getServers(q, updateName)); }
  getServer(id: number) { return this.read((q) => ops.getServer(q, id)); }
  setServerStatus(id: number, to: ServerStatus, change: ServerChange = {}) { return this.call((q) => ops.setServerStatus(q, id, to, change)); }
  patchServer(id: number, change: ServerChange) { return this.call((q) => ops.patchServer(q, id, change)); }
  setLockHeld(id: number, held: boolean) { return this.call((q) => ops.setLockHeld(q, id, held)); }
  setProbedCommit(id: number, commit: string | null) { return this.call((q) => ops.setProbedCommit(q, id, commit)); }
  setProbedVersion(id: number, version: string | null, cls: VersionClass | null) { return this.call((q) => ops.setProbedVersion(q, id, version, cls)); }
  leaveOut(updateName: string, ids: number[], why: string) { return this.call((q) => ops.leaveOut(q, updateName, ids, why)); }
  moveServers(ids: number[], toUpdate: string) { return this.call((q) => ops.moveServers(q, ids, toUpdate)); }
  dropServer(id: number, error: string, at: string, actor: string) { return this.call((q) => ops.dropServer(q, id, error, at, actor)); }
  busyAccount(server: Pick<ServerRecord, 'host' | 'port' | 'user' | 'updateName'>) { return this.read((q) => ops.busyAccount(q, server)); }
  findServers(name: string) { return this.read((q) => ops.findServers(q, name)); }
  laterWorkOn(s: Pick<ServerRecord, 'user' | 'host' | 'port' | 'id'>, since: string) { return this.read((q) => ops.laterWorkOn(q, s, since)); }

  beginCommand(server: Pick<ServerRecord, 'updateName' | 'id'>, phase: string, command: string) { return this.call((q) => ops.beginCommand(q, server, phase, command)); }
  beginCommandIfLeased(server: Pick<ServerRecord, 'updateName' | 'id'>, phase: string, command: string, token: string) {
    return this.call((q) => ops.beginCommandIfLeased(q, server, phase, command, token));
  }
  endCommand(id: number, r: CommandResult) { return this.call((q) => ops.endCommand(q, id, r)); }
  summarizeCommand(id: number, keep: number) { return this.call((q) => ops.summarizeCommand(q, id, keep)); }
  getJournal(updateName: string, serverName?: string) { return this.read((q) => ops.getJournal(q, updateName, serverName)); }

  addEvent(updateName: string, serverName: string | null, kind: string, message: string, actor: string | null = null) {
    return this.call((q) => ops.addEvent(q, updateName, serverName, kind, message, actor));
  }
  getEvents(updateName: string) { return this.read((q) => ops.getEvents(q, updateName)); }
  runEvents(updateName: string) { return this.read((q) => ops.runEvents(q, updateName)); }

  acquireLease(name: string, me: LeaseClaim, isDead: (holder: Lease) => boolean) { return this.call((q) => ops.acquireLease(q, name, me, isDead)); }
  leaseToken(name: string) { return this.read((q) => ops.leaseToken(q, name)); }
  heartbeat(name: string, token: string) { return this.callOnce((q) => ops.heartbeat(q, name, token)); }
  releaseLease(name: string, token: string): Promise<void> { return this.call(async (q) => void (await ops.releaseLease(q, name, token))); }

  activeFreeze(repoKey: string) { return this.read((q) => ops.activeFreeze(q, repoKey)); }
  freezes(repoKey?: string) { return this.read((q) => ops.freezes(q, repoKey)); }
  freeze(f: NewFreeze) { return this.call((q) => ops.freeze(q, f)); }
  unfreeze(repoKey: string, by: string) { return this.call((q) => ops.unfreeze(q, repoKey, by)); }
  openAutoRuns(configFile: string) { return this.read((q) => ops.openAutoRuns(q, configFile)); }
  autoRuns(configFile?: string) { return this.read((q) => ops.autoRuns(q, configFile)); }
  beginAutoRun(r: NewAutoRun) { return this.call((q) => ops.beginAutoRun(q, r)); }
  autoHeartbeat(id: number) { return this.callOnce((q) => ops.autoHeartbeat(q, id)); }
  setAutoRunUpdate(id: number, updateName: string) { return this.call((q) => ops.setAutoRunUpdate(q, id, updateName)); }
  endAutoRun(id: number, outcome: string, message: string, updateName?: string | null) { return this.call((q) => ops.endAutoRun(q, id, outcome, message, updateName)); }
  discardPlan(name: string, statuses?: readonly UpdateStatus[]) { return this.call((q) => ops.discardPlan(q, name, statuses)); }

  countsByUpdate() { return this.read((q) => ops.countsByUpdate(q)); }
  budgetUse(update: UpdateRecord) { return this.read((q) => ops.budgetUse(q, update)); }
  overlappingUpdates(updateName: string) { return this.read((q) => ops.overlappingUpdates(q, updateName)); }
  historyServers(server?: string) { return this.read((q) => ops.historyServers(q, server)); }
  serverNames() { return this.read((q) => ops.serverNames(q)); }
  hasServer(server: string) { return this.read((q) => ops.hasServer(q, server)); }
}

export interface PgStoreOptions {
  clock: Pick<Clock, 'now'>;
  /** The PostgreSQL schema this plan store lives in (created and migrated here); default `agent_update`. */
  schema?: string;
  /** false: a schema that holds no plan store yet is an error (exit 2) instead of created (only `plan` and `auto` create) */
  create?: boolean;
  /**
   * How long a call waits for a database that stopped answering (a restart, a failover), trying
   * again, before it gives up with a StoreError (exit 1); default DEFAULT_RETRY_FOR_MS (the CLI:
   * $AGENT_UPDATE_DB_RETRY). See retry.ts.
   */
  retryForMs?: number;
  /** Told once when the database stops answering and a call waits for it, once when it answers again. */
  notice?: (n: DbNotice) => void;
}

/** How long to wait for a connection to the database, and for one statement, before calling it unreachable. */
export const CONNECT_TIMEOUT_MS = 10_000;
export const STATEMENT_TIMEOUT_MS = 30_000;

/** How many connections to PostgreSQL a process opens at most (besides the session locks' own). */
export const POOL_SIZE = 4;

/**
 * The plan database in a schema of a PostgreSQL database, shared by every process and machine
 * pointed at it. As SqliteStore: every method that changes state is one transaction (status
 * changes checked against model/lifecycle.ts inside it, the row read FOR UPDATE); times are the
 * clock's; a call made while a `tx` of this store is open waits for it to end (Turns), a call
 * from inside it is refused. Outside a transaction calls use the pool; a `tx` runs on one client
 * of its own, BEGIN … COMMIT, each call in it and a nested `tx` a SAVEPOINT. Every writing
 * transaction takes the schema's write lock first (pg_advisory_xact_lock): writers of all
 * processes one at a time, as SQLite's BEGIN IMMEDIATE makes them. A database that stops
 * answering is waited for, for a bounded time (retry.ts); its errors are StoreError (exit 1).
 */
export class PgStore extends PgCalls implements Store {
  private readonly turns = new Turns();
  private closed = false;

  private constructor(
    shared: Shared,
    dbId: string,
    private readonly locks: SessionLocks,
    private readonly retry: Retrier,
  ) {
    super(shared, dbId);
  }

  /**
   * The lease, and its session advisory lock (session-locks.ts). Both are decided inside the
   * writers' lock, so two processes asking at once see each other's lock and row together. The
   * lock taken proves the row's holder gone when it is on another host (its connection has
   * closed); on this host its process is looked at, as with SQLite. The lock held by another
   * session proves nothing more than a heartbeat would (a frozen process keeps its connection):
   * then `isDead`, the heartbeat's rule, decides, as with SQLite.
   */
  override acquireLease(name: string, me: LeaseClaim, isDead: (holder: Lease) => boolean): Promise<LeaseResult> {
    const key = lockKey(`lease:${name}`, this.shared.schema);
    return this.call(async (q) => {
      let got = false;
      try {
        const r = await q.atomic(async (t) => {
          got = !this.locks.holds(key) && (await this.locks.tryLock(key));
          return ops.acquireLease(t, name, me, (h) => (got && h.host !== me.host) || isDead(h));
        });
        if (!r.ok && got) await this.locks.unlock(key);
        return r;
      } catch (e) {
        if (got) await this.locks.unlock(key);
        throw e;
      }
    });
  }

  /** The heartbeat, and the lease's lock taken again if its connection was lost. */
  override heartbeat(name: string, token: string): Promise<boolean> {
    return this.callOnce(async (q) => {
      await this.locks.keep().catch(() => undefined);
      return ops.heartbeat(q, name, token);
    });
  }

  override releaseLease(name: string, token: string): Promise<void> {
    return this.call(async (q) => {
      if (await ops.releaseLease(q, name, token)) await this.locks.unlock(lockKey(`lease:${name}`, this.shared.schema));
    });
  }

  /** Open (creating and migrating the schema when needed) the plan store at `url`, or a UsageError (exit 2) without the credentials. */
  static async open(url: string, opts: PgStoreOptions): Promise<PgStore> {
    const schema = opts.schema ?? DEFAULT_SCHEMA;
    checkSchemaName(schema);
    const location = `${redactUrl(url)} (schema ${schema})`;
    // Nothing may hang the tool: a connection is given up after CONNECT_TIMEOUT_MS, a statement
    // after STATEMENT_TIMEOUT_MS (by the server, and by the client when the server cannot answer),
    // and TCP keepalives find a peer that vanished.
    const config: pg.ClientConfig = {
      connectionString: url,
      options: `-c search_path=${schema} -c statement_timeout=${STATEMENT_TIMEOUT_MS}`,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      query_timeout: STATEMENT_TIMEOUT_MS + 5_000,
      keepAlive: true,
      keepAliveInitialDelayMillis: 5_000,
      application_name: 'agent-update',
    };
    // Few connections: each is a backend process of PostgreSQL's, forked and its caches warmed for
    // this command alone, and no call holds one while it waits for another (a transaction's calls
    // run on its own client, the store's others wait for it). Four: the run loop's three reads
    // side by side and one more; `plan`'s probes take turns on them (measured: 8 was slower).
    const pool = new pgLib.Pool({ ...config, max: POOL_SIZE });
    // an idle client whose connection drops: the next call gets the error, not the process
    pool.on('error', () => undefined);
    // nor one checked out between two statements (a transaction's, while its function works): its
    // next statement is refused ("not queryable"), which retry.ts knows sent nothing
    pool.on('connect', (client) => client.on('error', () => undefined));
    let n = 0;
    const carried: Carried = new Carried(() => sendCarried({ pool, carried }));
    const shared: Shared = { pool, schema, location, clock: opts.clock, writeLock: lockKey('write', schema), nextSavepoint: () => `sp${++n}`, carried };
    try {
      const dbId = await migrate(shared, opts.create ?? true);
      const retry = new Retrier({ location, retryForMs: opts.retryForMs ?? DEFAULT_RETRY_FOR_MS, notice: opts.notice, scrub: (m) => scrub(m, url) });
      return new PgStore(shared, dbId, new SessionLocks(shared, () => new pgLib.Client(config)), retry);
    } catch (e) {
      await pool.end().catch(() => undefined);
      if (e instanceof AppError) throw e;
      const why = scrub((e as Error).message, url);
      // the database not answering is not bad input (exit 1, try again); a refused login, an unknown database or role is (exit 2)
      if (isConnectionError(e)) throw new AppError(`cannot reach the plan database ${location}: ${why}`, EXIT.failure);
      throw new UsageError(`cannot open the plan database ${location}: ${why}`);
    }
  }

  /**
   * `op` on the pool: at once when no transaction of this store is open, else after it. A
   * connection error is tried again as retry.ts says (while it is, the call waits).
   */
  protected call<T>(op: (q: Q) => Promise<T>, once = false): Promise<T> {
    if (this.closed) return Promise.reject(new Error(`the plan database ${this.location} is closed`));
    const attempt = () => (once ? this.retry.once((a) => op(new PoolQ(this.shared, a))) : this.retry.run((a) => op(new PoolQ(this.shared, a))));
    if (this.turns.free) return attempt();
    const refused = this.turns.ownCall();
    return refused ? Promise.reject(refused) : this.turns.inTurn(attempt);
  }

  protected override callOnce<T>(op: (q: Q) => Promise<T>): Promise<T> {
    return this.call(op, true);
  }

  /**
   * `fn` in one transaction on a client of its own. Lost with its connection before its COMMIT
   * was sent, the whole of it (`fn` too) runs again on a fresh one (retry.ts): `fn` must do
   * nothing outside the transaction that cannot be done twice.
   */
  async tx<T>(fn: (t: StoreTx) => Promise<T>, opts?: TxOptions): Promise<T> {
    const refused = this.turns.ownCall();
    if (refused) throw refused;
    return this.turns.inTurn(() =>
      this.retry.run((a) =>
        new PoolQ(this.shared, a).atomic(async (q) => {
          const t = new PgTx(this.shared, this.dbId, q);
          try {
            return await this.turns.whileOpen(() => fn(t));
          } finally {
            t.end();
          }
        }, opts),
      ),
    );
  }

  exportAll(): Promise<StoreDump> {
    return this.call((q) => copy.exportAll(q));
  }

  async importAll(dump: StoreDump): Promise<void> {
    await this.call((q) => copy.importAll(q, dump));
    // the identity is the dump's now: the locks this handle puts on servers must name it
    (this as { dbId: string }).dbId = dump.dbId;
  }

  /** After every call made before it; closing again does nothing. */
  async close(): Promise<void> {
    await this.turns.inTurn(async () => {
      if (this.closed) return;
      this.closed = true;
      // the journal's last end, if nothing carried it yet (a database away: it is lost, and the
      // command it ends is re-checked by the next start, as after a kill)
      await sendCarried(this.shared).catch(() => undefined);
      this.shared.carried.clear();
      await this.locks.close();
      await this.shared.pool.end();
    });
  }
}

/**
 * The handle of an open transaction: its calls run at once on the transaction's client, each in
 * a savepoint of its own, as a statement of SQLite's is (one that fails, caught by `fn`, undoes
 * its own writes and leaves the transaction usable); a `tx` of it is a savepoint too.
 */
class PgTx extends PgCalls {
  private open = true;

  constructor(
    shared: Shared,
    dbId: string,
    /** the transaction's client (conn.ts ClientQ) */
    private readonly q: Q,
  ) {
    super(shared, dbId);
  }

  end(): void {
    this.open = false;
  }

  protected call<T>(op: (q: Q) => Promise<T>): Promise<T> {
    if (!this.open) return Promise.reject(new Error('a transaction handle was used after its transaction ended'));
    return this.q.atomic(op);
  }

  /**
   * A read runs bare, without a savepoint (a round trip less each): it writes nothing a failure
   * would have to undo. One that fails with an error of PostgreSQL's own leaves the transaction
   * unusable there, so the transaction then fails as a whole (conn.ts ClientQ: never committed).
   */
  protected override read<T>(op: (q: Q) => Promise<T>): Promise<T> {
    if (!this.open) return Promise.reject(new Error('a transaction handle was used after its transaction ended'));
    return op(this.q);
  }

  async tx<T>(fn: (t: StoreTx) => Promise<T>): Promise<T> {
    if (!this.open) throw new Error('a transaction handle was used after its transaction ended');
    return this.q.atomic(() => fn(this));
  }

  /** As read with the transaction's BEGIN when it was asked for there (TxOptions.leaseOf). */
  override async leaseToken(name: string): Promise<string | null> {
    const prefetched = this.open ? await this.q.prefetchedLease?.(name) : undefined;
    return prefetched !== undefined ? prefetched : super.leaseToken(name);
  }
}

/**
 * Create the schema and bring it up to date, in one transaction under an advisory lock of its
 * own: processes opening a new store at once run it one after the other, and the later ones find
 * nothing left to do. The store's identity (`meta.db_id`) is made with the first migration.
 */
async function migrate(s: Shared, create: boolean): Promise<string> {
  const client = await s.pool.connect();
  try {
    // The common case in one round trip: a store already at this schema version. Anything else
    // (no schema, an older or newer one, no identity yet) takes the locked way below.
    const known = await client.query("SELECT key, value FROM meta WHERE key IN ('schema_version', 'db_id')").catch(() => null);
    if (known !== null) {
      const value = (key: string) => (known.rows as Array<{ key: string; value: string }>).find((r) => r.key === key)?.value;
      const dbId = value('db_id');
      if (Number(value('schema_version')) === PG_MIGRATIONS.length && dbId !== undefined) return dbId;
    }
    await client.query('BEGIN');
    try {
      await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [lockKey('migrate', s.schema)]);
      if (!create) {
        const found = await client.query('SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2', [s.schema, 'meta']);
        if (found.rowCount === 0) throw new UsageError(`no plan store at ${s.location}: run \`${suggest('plan -c FILE')}\` first (it creates the schema), or pass another --db`);
      }
      await client.query(`CREATE SCHEMA IF NOT EXISTS "${s.schema}"`);
      await client.query(`SET LOCAL search_path TO "${s.schema}"`);
      await client.query('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)');
      const version = Number((await client.query("SELECT value FROM meta WHERE key = 'schema_version'")).rows[0]?.value ?? 0);
      if (version > PG_MIGRATIONS.length) {
        throw new UsageError(`${s.location} was written by a newer agent-update (schema ${version}, this one knows ${PG_MIGRATIONS.length}); upgrade agent-update`);
      }
      for (let v = version; v < PG_MIGRATIONS.length; v++) await client.query(PG_MIGRATIONS[v]!);
      if (version < PG_MIGRATIONS.length) {
        await client.query(
          "INSERT INTO meta (key, value) VALUES ('schema_version', $1) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
          [String(PG_MIGRATIONS.length)],
        );
      }
      await client.query("INSERT INTO meta (key, value) VALUES ('db_id', $1) ON CONFLICT (key) DO NOTHING", [randomBytes(16).toString('hex')]);
      const dbId = (await client.query("SELECT value FROM meta WHERE key = 'db_id'")).rows[0]!.value as string;
      await client.query('COMMIT');
      return dbId;
    } catch (e) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw e;
    }
  } finally {
    client.release();
  }
}
