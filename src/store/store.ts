import type Database from 'better-sqlite3';
import type { VersionClass } from '../config/types.js';
import type { ServerStatus, UpdateStatus } from '../model/lifecycle.js';
import type { AutoRun, BusyAccount, EventRecord, Lease, ServerRecord, StepRecord, UpdateRecord } from '../model/records.js';
import type { BudgetUse, LeaseClaim, LeaseResult, NewAutoRun, NewUpdate, Overlap, RunEvent, ServerChange, StepResult, UpdateChange } from './port.js';
import * as autoRuns from './sqlite/auto-runs.js';
import { Db } from './sqlite/db.js';
import * as events from './sqlite/events.js';
import * as journal from './sqlite/journal.js';
import * as lease from './sqlite/lease.js';
import { openDatabase, readDbId } from './sqlite/open.js';
import * as reports from './sqlite/reports.js';
import * as servers from './sqlite/servers.js';
import * as updates from './sqlite/updates.js';

export type { NewUpdate, ServerChange, UpdateChange } from './port.js';

/**
 * The plan database: one SQLite file in WAL mode, shared by every process working on it.
 * Every method that changes state is one transaction, so a crash leaves either the old or
 * the new state, never half of each. Status changes are checked against model/lifecycle.ts
 * inside the transaction that makes them.
 */
export class Store {
  private readonly conn: Database.Database;
  private readonly db: Db;
  /** This database's identity, named in the locks it puts on servers. */
  readonly dbId: string;

  constructor(
    readonly path: string,
    now: () => Date = () => new Date(),
  ) {
    this.conn = openDatabase(path);
    this.db = new Db(this.conn, path, { now });
    this.dbId = readDbId(this.conn);
  }

  close(): void {
    this.conn.close();
  }

  /** The SQL compiled so far, each statement once (for test/store/scale.test.ts). */
  compiledStatements(): string[] {
    return this.db.compiled();
  }

  /** Run `fn` in one IMMEDIATE transaction (takes the write lock up front: no upgrade deadlocks). */
  tx<T>(fn: () => T): T {
    return this.db.tx(fn);
  }

  hasUpdate(name: string): boolean { return updates.hasUpdate(this.db, name); }
  findUpdate(name: string): UpdateRecord | null { return updates.findUpdate(this.db, name); }
  getUpdate(name: string): UpdateRecord { return updates.getUpdate(this.db, name); }
  listUpdates(): UpdateRecord[] { return updates.listUpdates(this.db); }
  createUpdate(u: NewUpdate): UpdateRecord { return updates.createUpdate(this.db, u); }
  setUpdateStatus(name: string, to: UpdateStatus, change: UpdateChange = {}): UpdateRecord { return updates.setUpdateStatus(this.db, name, to, change); }
  patchUpdate(name: string, change: UpdateChange): void { updates.patchUpdate(this.db, name, change); }
  insertBatch(from: UpdateRecord, name: string, testStopAfter: number, as?: { status: 'paused'; reason: string }): void { updates.insertBatch(this.db, from, name, testStopAfter, as); }
  batchesOf(name: string): UpdateRecord[] { return updates.batchesOf(this.db, name); }
  retriesOf(name: string): UpdateRecord[] { return updates.retriesOf(this.db, name); }
  undosOf(name: string): UpdateRecord[] { return updates.undosOf(this.db, name); }
  updatesOfConfig(configFile: string): UpdateRecord[] { return updates.updatesOfConfig(this.db, configFile); }

  getServers(updateName: string): ServerRecord[] { return servers.getServers(this.db, updateName); }
  getServer(id: number): ServerRecord { return servers.getServer(this.db, id); }
  setServerStatus(id: number, to: ServerStatus, change: ServerChange = {}): ServerRecord { return servers.setServerStatus(this.db, id, to, change); }
  patchServer(id: number, change: ServerChange): void { servers.patchServer(this.db, id, change); }
  setLockHeld(id: number, held: boolean): void { servers.setLockHeld(this.db, id, held); }
  setProbedCommit(id: number, commit: string | null): void { servers.setProbedCommit(this.db, id, commit); }
  setProbedVersion(id: number, version: string | null, cls: VersionClass | null): void { servers.setProbedVersion(this.db, id, version, cls); }
  leaveOut(updateName: string, ids: number[], why: string): void { servers.leaveOut(this.db, updateName, ids, why); }
  moveServers(ids: number[], toUpdate: string): void { servers.moveServers(this.db, ids, toUpdate); }
  dropServer(id: number, error: string, at: string, actor: string): ServerRecord { return servers.dropServer(this.db, id, error, at, actor); }
  busyAccount(server: Pick<ServerRecord, 'host' | 'port' | 'user' | 'updateName'>): BusyAccount | null { return servers.busyAccount(this.db, server); }
  findServers(name: string): ServerRecord[] { return servers.findServers(this.db, name); }
  laterWorkOn(s: Pick<ServerRecord, 'user' | 'host' | 'port' | 'id'>, since: string): ServerRecord[] { return servers.laterWorkOn(this.db, s, since); }

  beginStep(server: Pick<ServerRecord, 'updateName' | 'id'>, phase: string, command: string): number { return journal.beginStep(this.db, server, phase, command); }
  endStep(id: number, r: StepResult): void { journal.endStep(this.db, id, r); }
  summarizeStep(id: number, keep: number): void { journal.summarizeStep(this.db, id, keep); }
  getSteps(updateName: string, serverName?: string): StepRecord[] { return journal.getSteps(this.db, updateName, serverName); }

  addEvent(updateName: string, serverName: string | null, kind: string, message: string, actor: string | null = null): void { events.addEvent(this.db, updateName, serverName, kind, message, actor); }
  getEvents(updateName: string): EventRecord[] { return events.getEvents(this.db, updateName); }
  runEvents(updateName: string): RunEvent[] { return events.runEvents(this.db, updateName); }

  acquireLease(name: string, me: LeaseClaim, isDead: (holder: Lease) => boolean): LeaseResult { return lease.acquireLease(this.db, name, me, isDead); }
  leaseToken(name: string): string | null { return lease.leaseToken(this.db, name); }
  heartbeat(name: string, token: string): boolean { return lease.heartbeat(this.db, name, token); }
  releaseLease(name: string, token: string): void { lease.releaseLease(this.db, name, token); }

  openAutoRuns(configFile: string): AutoRun[] { return autoRuns.openAutoRuns(this.db, configFile); }
  autoRuns(configFile?: string): AutoRun[] { return autoRuns.autoRuns(this.db, configFile); }
  beginAutoRun(r: NewAutoRun): number { return autoRuns.beginAutoRun(this.db, r); }
  autoHeartbeat(id: number): void { autoRuns.autoHeartbeat(this.db, id); }
  setAutoRunUpdate(id: number, updateName: string): void { autoRuns.setAutoRunUpdate(this.db, id, updateName); }
  endAutoRun(id: number, outcome: string, message: string, updateName?: string | null): void { autoRuns.endAutoRun(this.db, id, outcome, message, updateName); }
  discardPlan(name: string): void { autoRuns.discardPlan(this.db, name); }

  countsByUpdate(): Map<string, Record<string, number>> { return reports.countsByUpdate(this.db); }
  budgetUse(update: UpdateRecord): BudgetUse { return reports.budgetUse(this.db, update); }
  overlappingUpdates(updateName: string): Overlap[] { return reports.overlappingUpdates(this.db, updateName); }
  historyServers(server?: string): ServerRecord[] { return reports.historyServers(this.db, server); }
  serverNames(): string[] { return reports.serverNames(this.db); }
  hasServer(server: string): boolean { return reports.hasServer(this.db, server); }
}
