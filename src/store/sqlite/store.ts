import type Database from 'better-sqlite3';
import type { Clock } from '../../clock.js';
import type { VersionClass } from '../../config/types.js';
import type { ServerStatus, UpdateStatus } from '../../model/lifecycle.js';
import type { Lease, ServerRecord, UpdateRecord } from '../../model/records.js';
import type { LeaseClaim, NewAutoRun, NewFreeze, NewUpdate, ServerChange, CommandResult, Store, StoreTx, UpdateChange } from '../port.js';
import * as autoRuns from './auto-runs.js';
import type { StoreDump } from '../copy.js';
import * as copy from './copy.js';
import { Db } from './db.js';
import * as events from './events.js';
import * as freezes from './freezes.js';
import * as journal from './journal.js';
import * as lease from './lease.js';
import { openDatabase, readDbId } from './open.js';
import * as reports from './reports.js';
import * as servers from './servers.js';
import { Turns } from '../turns.js';
import * as updates from './updates.js';

/**
 * Every method of the port over one connection, each a call of the per-area module that does it
 * synchronously (better-sqlite3); `call` says when it may run.
 */
abstract class SqliteCalls implements StoreTx {
  constructor(
    protected readonly db: Db,
    readonly dbId: string,
  ) {}

  get location(): string {
    return this.db.path;
  }

  /** Run `op` when this handle may use the connection; its result or its error as a promise. */
  protected abstract call<T>(op: () => T): Promise<T>;
  abstract tx<T>(fn: (t: StoreTx) => Promise<T>): Promise<T>;

  hasUpdate(name: string) { return this.call(() => updates.hasUpdate(this.db, name)); }
  findUpdate(name: string) { return this.call(() => updates.findUpdate(this.db, name)); }
  getUpdate(name: string) { return this.call(() => updates.getUpdate(this.db, name)); }
  listUpdates() { return this.call(() => updates.listUpdates(this.db)); }
  batchesOf(name: string) { return this.call(() => updates.batchesOf(this.db, name)); }
  retriesOf(name: string) { return this.call(() => updates.retriesOf(this.db, name)); }
  undosOf(name: string) { return this.call(() => updates.undosOf(this.db, name)); }
  updatesOfConfig(configFile: string) { return this.call(() => updates.updatesOfConfig(this.db, configFile)); }
  createUpdate(u: NewUpdate) { return this.call(() => updates.createUpdate(this.db, u)); }
  setUpdateStatus(name: string, to: UpdateStatus, change: UpdateChange = {}) { return this.call(() => updates.setUpdateStatus(this.db, name, to, change)); }
  patchUpdate(name: string, change: UpdateChange) { return this.call(() => updates.patchUpdate(this.db, name, change)); }
  insertBatch(from: UpdateRecord, name: string, testStopAfter: number, as?: { status: 'paused'; reason: string }) {
    return this.call(() => updates.insertBatch(this.db, from, name, testStopAfter, as));
  }

  getServers(updateName: string) { return this.call(() => servers.getServers(this.db, updateName)); }
  getServer(id: number) { return this.call(() => servers.getServer(this.db, id)); }
  setServerStatus(id: number, to: ServerStatus, change: ServerChange = {}) { return this.call(() => servers.setServerStatus(this.db, id, to, change)); }
  patchServer(id: number, change: ServerChange) { return this.call(() => servers.patchServer(this.db, id, change)); }
  setLockHeld(id: number, held: boolean) { return this.call(() => servers.setLockHeld(this.db, id, held)); }
  setProbedCommit(id: number, commit: string | null) { return this.call(() => servers.setProbedCommit(this.db, id, commit)); }
  setProbedVersion(id: number, version: string | null, cls: VersionClass | null) { return this.call(() => servers.setProbedVersion(this.db, id, version, cls)); }
  leaveOut(updateName: string, ids: number[], why: string) { return this.call(() => servers.leaveOut(this.db, updateName, ids, why)); }
  moveServers(ids: number[], toUpdate: string) { return this.call(() => servers.moveServers(this.db, ids, toUpdate)); }
  dropServer(id: number, error: string, at: string, actor: string) { return this.call(() => servers.dropServer(this.db, id, error, at, actor)); }
  busyAccount(server: Pick<ServerRecord, 'host' | 'port' | 'user' | 'updateName'>) { return this.call(() => servers.busyAccount(this.db, server)); }
  findServers(name: string) { return this.call(() => servers.findServers(this.db, name)); }
  laterWorkOn(s: Pick<ServerRecord, 'user' | 'host' | 'port' | 'id'>, since: string) { return this.call(() => servers.laterWorkOn(this.db, s, since)); }

  beginCommand(server: Pick<ServerRecord, 'updateName' | 'id'>, phase: string, command: string) { return this.call(() => journal.beginCommand(this.db, server, phase, command)); }
  beginCommandIfLeased(server: Pick<ServerRecord, 'updateName' | 'id'>, phase: string, command: string, token: string) {
    return this.call(() => journal.beginCommandIfLeased(this.db, server, phase, command, token));
  }
  endCommand(id: number, r: CommandResult) { return this.call(() => journal.endCommand(this.db, id, r)); }
  summarizeCommand(id: number, keep: number) { return this.call(() => journal.summarizeCommand(this.db, id, keep)); }
  getJournal(updateName: string, serverName?: string) { return this.call(() => journal.getJournal(this.db, updateName, serverName)); }

  addEvent(updateName: string, serverName: string | null, kind: string, message: string, actor: string | null = null) {
    return this.call(() => events.addEvent(this.db, updateName, serverName, kind, message, actor));
  }
  getEvents(updateName: string) { return this.call(() => events.getEvents(this.db, updateName)); }
  runEvents(updateName: string) { return this.call(() => events.runEvents(this.db, updateName)); }

  acquireLease(name: string, me: LeaseClaim, isDead: (holder: Lease) => boolean) { return this.call(() => lease.acquireLease(this.db, name, me, isDead)); }
  leaseToken(name: string) { return this.call(() => lease.leaseToken(this.db, name)); }
  heartbeat(name: string, token: string) { return this.call(() => lease.heartbeat(this.db, name, token)); }
  releaseLease(name: string, token: string) { return this.call(() => lease.releaseLease(this.db, name, token)); }

  openAutoRuns(configFile: string) { return this.call(() => autoRuns.openAutoRuns(this.db, configFile)); }
  autoRuns(configFile?: string) { return this.call(() => autoRuns.autoRuns(this.db, configFile)); }
  beginAutoRun(r: NewAutoRun) { return this.call(() => autoRuns.beginAutoRun(this.db, r)); }
  autoHeartbeat(id: number) { return this.call(() => autoRuns.autoHeartbeat(this.db, id)); }
  setAutoRunUpdate(id: number, updateName: string) { return this.call(() => autoRuns.setAutoRunUpdate(this.db, id, updateName)); }
  endAutoRun(id: number, outcome: string, message: string, updateName?: string | null) { return this.call(() => autoRuns.endAutoRun(this.db, id, outcome, message, updateName)); }
  discardPlan(name: string, statuses?: readonly UpdateStatus[]) { return this.call(() => autoRuns.discardPlan(this.db, name, statuses)); }

  activeFreeze(repoKey: string) { return this.call(() => freezes.activeFreeze(this.db, repoKey)); }
  freezes(repoKey?: string) { return this.call(() => freezes.freezes(this.db, repoKey)); }
  freeze(f: NewFreeze) { return this.call(() => freezes.freeze(this.db, f)); }
  unfreeze(repoKey: string, by: string) { return this.call(() => freezes.unfreeze(this.db, repoKey, by)); }

  countsByUpdate() { return this.call(() => reports.countsByUpdate(this.db)); }
  budgetUse(update: UpdateRecord) { return this.call(() => reports.budgetUse(this.db, update)); }
  overlappingUpdates(updateName: string) { return this.call(() => reports.overlappingUpdates(this.db, updateName)); }
  historyServers(server?: string) { return this.call(() => reports.historyServers(this.db, server)); }
  serverNames() { return this.call(() => reports.serverNames(this.db)); }
  hasServer(server: string) { return this.call(() => reports.hasServer(this.db, server)); }
}

/** `op()` now, its result or its error as a promise. */
function now<T>(op: () => T): Promise<T> {
  try {
    return Promise.resolve(op());
  } catch (e) {
    return Promise.reject(e as Error);
  }
}

/**
 * The plan database in one SQLite file (WAL, `synchronous=FULL`), shared by every process working
 * on it and, within one process, by every executor (the parallel batches of `start A A.2`). Every
 * method that changes state is one transaction; status changes are checked against
 * model/lifecycle.ts inside it. Times are the clock's. A call made while a `tx` of this store is
 * open waits for it to end (Turns).
 */
export class SqliteStore extends SqliteCalls implements Store {
  private readonly conn: Database.Database;
  private readonly turns = new Turns();
  private savepoints = 0;

  constructor(path: string, opts: { clock: Pick<Clock, 'now'> }) {
    const conn = openDatabase(path);
    super(new Db(conn, path, opts.clock), readDbId(conn));
    this.conn = conn;
  }

  protected call<T>(op: () => T): Promise<T> {
    if (this.turns.free) return now(op);
    const refused = this.turns.ownCall();
    return refused ? Promise.reject(refused) : this.turns.inTurn(op);
  }

  /** BEGIN IMMEDIATE (the write lock up front: no upgrade deadlocks), `fn`, COMMIT; ROLLBACK when it throws. */
  async tx<T>(fn: (t: StoreTx) => Promise<T>): Promise<T> {
    const refused = this.turns.ownCall();
    if (refused) throw refused;
    return this.turns.inTurn(async () => {
      this.conn.exec('BEGIN IMMEDIATE');
      const t = new SqliteTx(this.db, this.dbId, this.conn, () => `sp${++this.savepoints}`);
      try {
        const out = await this.turns.whileOpen(() => fn(t));
        this.conn.exec('COMMIT');
        return out;
      } catch (e) {
        if (this.conn.inTransaction) this.conn.exec('ROLLBACK');
        throw e;
      } finally {
        t.end();
      }
    });
  }

  /** After every call made before it. */
  async close(): Promise<void> {
    await this.turns.inTurn(() => this.conn.close());
  }

  exportAll(): Promise<StoreDump> {
    return this.call(() => copy.exportAll(this.db));
  }

  async importAll(dump: StoreDump): Promise<void> {
    await this.call(() => copy.importAll(this.db, dump));
    // the identity is the dump's now: the locks this handle puts on servers must name it
    (this as { dbId: string }).dbId = dump.dbId;
  }

  /** The SQL compiled so far, each statement once (test/store/scale.test.ts explains them). */
  compiledStatements(): string[] {
    return this.db.compiled();
  }
}

/** The handle of an open transaction: its calls run at once, inside it; a `tx` of it is a savepoint. */
class SqliteTx extends SqliteCalls {
  private open = true;

  constructor(
    db: Db,
    dbId: string,
    private readonly conn: Database.Database,
    private readonly savepoint: () => string,
  ) {
    super(db, dbId);
  }

  end(): void {
    this.open = false;
  }

  protected call<T>(op: () => T): Promise<T> {
    if (!this.open) return Promise.reject(new Error('a transaction handle was used after its transaction ended'));
    return now(op);
  }

  async tx<T>(fn: (t: StoreTx) => Promise<T>): Promise<T> {
    if (!this.open) throw new Error('a transaction handle was used after its transaction ended');
    const name = this.savepoint();
    this.conn.exec(`SAVEPOINT ${name}`);
    try {
      const out = await fn(this);
      this.conn.exec(`RELEASE ${name}`);
      return out;
    } catch (e) {
      this.conn.exec(`ROLLBACK TO ${name}`);
      this.conn.exec(`RELEASE ${name}`);
      throw e;
    }
  }
}
