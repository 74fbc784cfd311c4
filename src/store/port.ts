/**
 * The plan database as its callers see it: what reports read (ReportStore), what the engine
 * writes (EngineStore), what planning writes besides (PlanStore), and all of it with close()
 * (Store). The engine, plan, output and the CLI take these interfaces; store/sqlite/ is the
 * implementation over one SQLite file, and a server database reached over the network (the next
 * issue: PostgreSQL) is another one behind the same interfaces.
 *
 * Every method returns a Promise (docs/decisions.md says why): an answer from across a network
 * cannot be waited for without blocking the event loop, which carries the SSH keepalives, the
 * dead-man beats, the lease's heartbeat and signal handling.
 *
 * Transactions: `tx(fn)` runs `fn(t)` in one transaction and commits what it wrote, or nothing if
 * it throws. Inside `fn`, every read and write goes through `t` (the same methods), never through
 * the store itself: a call on the store waits until the transaction has ended, which is what
 * keeps the parallel batches of one process (one Store) out of each other's transactions; a call
 * on the store from inside `fn` would wait for itself, so it is refused with an error (the
 * SQLite store knows it by the async context of `fn`). A `tx` of `t` runs inside the one
 * open (nested: a throw in it undoes its own writes only). Each method that writes is already
 * one transaction of its own. A call inside `fn` that fails, caught there, undoes only itself.
 * `fn` may run more than once (the PostgreSQL store runs it again when its connection was lost
 * before the COMMIT): it must do nothing outside the transaction that cannot be done twice.
 *
 * Records are those of model/records.ts; what callers hand the store to write is below.
 */
import type { RolloutSettings, ServerSpec, VersionClass } from '../config/types.js';
import type { AutoRun, BusyAccount, EventRecord, FreezeRecord, PathStop, Lease, ServerRecord, JournalEntry, UpdateRecord } from '../model/records.js';
import type { ServerStatus, ServerStep, UpdateStatus } from '../model/lifecycle.js';
import type { StoreDump } from './copy.js';

export interface NewUpdate {
  name: string;
  repo: string;
  branch: string;
  commit: string;
  configFile: string | null;
  settings: RolloutSettings;
  testStopAfter: number;
  /** `types` defaults to `[type]`; `path`: the server's own hops (undo), else set by the plan */
  servers: Array<Omit<ServerSpec, 'types'> & Partial<Pick<ServerSpec, 'types'>> & { path?: PathStop[] | null }>;
  retryOf?: string | null;
  undoOf?: string | null;
  createdBy?: string | null;
}

export interface ServerChange {
  step?: ServerStep | null;
  fromCommit?: string | null;
  toCommit?: string | null;
  error?: string | null;
  startedAt?: string | null;
  endedAt?: string | null;
  lockHeld?: boolean;
  agentVersion?: string | null;
  versionClass?: VersionClass | null;
  /** null = one hop to the update's commit */
  path?: PathStop[] | null;
  hop?: number | null;
}

export interface UpdateChange {
  /** the update's commit: only a rolling restart's, set once its servers were probed (plan/restart.ts) */
  commit?: string;
  startedAt?: string | null;
  endedAt?: string | null;
  stopAtWorked?: number | null;
  stopFromWorked?: number | null;
  pauseRequestedAt?: string | null;
  pauseRequestedBy?: string | null;
  reason?: string | null;
  /** how many of the update's steps (execution.steps) are done and let go */
  stepsPromoted?: number;
  /** the step (1-based) whose servers bake now, and the bake time left at its last check; null: none */
  bakeStep?: number | null;
  bakeLeftMs?: number | null;
  /** the guard's last round: when, and what it found */
  guardCheckedAt?: string | null;
  guardSummary?: string | null;
}

/** A command's result as the journal records it. */
export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
  error: string | null;
}

/** Who asks for a lease: the lease less the times the store stamps. */
export type LeaseClaim = Omit<Lease, 'since' | 'heartbeat'>;

/**
 * What a transaction will read first, so that a store across a network may read it with the
 * transaction's start instead of a round trip of its own (the PostgreSQL store); the answers are
 * the same either way.
 */
export interface TxOptions {
  /** `fn` begins with `leaseToken(leaseOf)` (a write guarded by the lease: rollout/engine.ts guarded) */
  leaseOf?: string;
  /**
   * With leaseOf: the lease token this process holds, and a promise that `fn` makes one write,
   * with its first statement (a statement after it only when that write changed nothing: the slow
   * way of a refused status change, which reads again). The PostgreSQL store may then send the
   * lease's check, the write and the COMMIT in one round trip (postgres/conn.ts); when the check
   * finds the lease another's, the write fails, and `leaseToken(leaseOf)` in it says whose.
   */
  loneWriteLeased?: string;
}

/** The lease taken (with the dead holder it was taken from), or the live holder that keeps it. */
export type LeaseResult = { ok: true; previous: Lease | null } | { ok: false; holder: Lease };

/** An `auto` run's claim as it begins. */
export interface NewAutoRun {
  configFile: string;
  actor: string;
  pid: number;
  host: string;
  pidStart: string | null;
  commit: string | null;
}

/** A freeze as `freeze` asks for it; the store stamps the time. */
export interface NewFreeze {
  /** model/freeze.ts repoKey of `repo` */
  repoKey: string;
  repo: string;
  configFile: string | null;
  reason: string;
  frozenBy: string;
}

/** The failure budget's use over a split's group (the root and its batches). */
export interface BudgetUse {
  used: number;
  total: number;
  updates: string[];
}

/** Another unfinished update with servers on the same accounts. */
export interface Overlap {
  update: string;
  status: UpdateStatus;
  servers: string[];
}

/** A person's run of an update (`start`, `resume`, `takeover` events with an actor). */
export interface RunEvent {
  at: string;
  kind: string;
  actor: string;
}

/** Reads: `status`, `logs`, `history` and output/ use only these; the engine and plan read through them too. */
export interface ReportStore {
  /** Where the database is, as messages name it (the SQLite file's path). */
  readonly location: string;
  /** The database's identity, named in the locks it puts on servers. */
  readonly dbId: string;

  hasUpdate(name: string): Promise<boolean>;
  findUpdate(name: string): Promise<UpdateRecord | null>;
  /** The update, or a UsageError (exit 2) that lists what exists. */
  getUpdate(name: string): Promise<UpdateRecord>;
  /** Every update, oldest first. */
  listUpdates(): Promise<UpdateRecord[]>;
  /** The batches split from `name`, and theirs, in creation order. */
  batchesOf(name: string): Promise<UpdateRecord[]>;
  /** The updates `retry` made from `name`, in creation order. */
  retriesOf(name: string): Promise<UpdateRecord[]>;
  /** The updates `undo` made from `name`, in creation order. */
  undosOf(name: string): Promise<UpdateRecord[]>;
  /** The updates planned from this config file (its absolute path), newest first. */
  updatesOfConfig(configFile: string): Promise<UpdateRecord[]>;

  /** An update's servers in plan order. */
  getServers(updateName: string): Promise<ServerRecord[]>;
  getServer(id: number): Promise<ServerRecord>;
  /** The server of another update on the same account (`user@host:port`) that is `running` now, if any. */
  busyAccount(server: Pick<ServerRecord, 'host' | 'port' | 'user' | 'updateName'>): Promise<BusyAccount | null>;
  /** The servers, across all updates, on the account `user@host:port` or named `name`, newest update first. */
  findServers(name: string): Promise<ServerRecord[]>;
  /** Server rows of other updates on the same account worked on after `since`, oldest first (undo). */
  laterWorkOn(s: Pick<ServerRecord, 'user' | 'host' | 'port' | 'id'>, since: string): Promise<ServerRecord[]>;

  /** An update's journal (one server's when named), server by server in plan order. */
  getJournal(updateName: string, serverName?: string): Promise<JournalEntry[]>;
  getEvents(updateName: string): Promise<EventRecord[]>;
  /** The runs of an update by a person (`start`, `resume`, `takeover` events with their actor), in order. */
  runEvents(updateName: string): Promise<RunEvent[]>;

  /** The token of the update's lease as committed now, or null when nobody holds it. */
  leaseToken(name: string): Promise<string | null>;

  /** The `auto` runs of this config not ended yet (claims), newest first. */
  openAutoRuns(configFile: string): Promise<AutoRun[]>;
  /** Every `auto` run (of one config when given), oldest first. */
  autoRuns(configFile?: string): Promise<AutoRun[]>;

  /** The active freeze of the repo with this key (model/freeze.ts repoKey), or null. */
  activeFreeze(repoKey: string): Promise<FreezeRecord | null>;
  /** Every freeze, active and lifted (of one repo key when given), oldest first: the audit of freezes. */
  freezes(repoKey?: string): Promise<FreezeRecord[]>;

  /** Each update's servers counted by status (`total` and one key per status present). */
  countsByUpdate(): Promise<Map<string, Record<string, number>>>;
  /** The failure budget's use for the group of `update` (itself and the batches of its split). */
  budgetUse(update: UpdateRecord): Promise<BudgetUse>;
  /** Other unfinished updates with unfinished servers on the accounts of this one's. */
  overlappingUpdates(updateName: string): Promise<Overlap[]>;
  /** `history`: every server row in a status that says something about its commit (of `server` only, a name or `user@host:port`). */
  historyServers(server?: string): Promise<ServerRecord[]>;
  /** Every server name in the database, for a did-you-mean. */
  serverNames(): Promise<string[]>;
  /** Whether any server row is named `server`, or is on the account `user@host:port`. */
  hasServer(server: string): Promise<boolean>;
}

/**
 * What the engine (rollout/) writes: status changes checked against model/lifecycle.ts in the
 * transaction that makes them, the journal, events, the lease, `drop` and `split`.
 */
export interface EngineStore extends ReportStore {
  /** `fn` in one transaction; see the top of this file. */
  tx<T>(fn: (t: EngineStore) => Promise<T>, opts?: TxOptions): Promise<T>;

  /** Change an update's status, checked against the table, with an event. */
  setUpdateStatus(name: string, to: UpdateStatus, change?: UpdateChange): Promise<UpdateRecord>;
  /** Change fields of an update without changing its status. */
  patchUpdate(name: string, change: UpdateChange): Promise<void>;
  /** Change a server's status (and step, commits, error), checked against the table, with an event. */
  setServerStatus(id: number, to: ServerStatus, change?: ServerChange): Promise<ServerRecord>;
  /** Whether our lock may be on the server (`ServerRecord.lockHeld`); not a status change. */
  setLockHeld(id: number, held: boolean): Promise<void>;

  /** A command about to run: its journal row (committed before it runs); its id. */
  beginCommand(server: Pick<ServerRecord, 'updateName' | 'id'>, phase: string, command: string): Promise<number>;
  /**
   * beginCommand, only while `token` holds the server's update's lease (checked in the statement
   * that writes the row: the check and the record of intent are one); null, and nothing written,
   * when it no longer does. What the engine does right before each remote command.
   */
  beginCommandIfLeased(server: Pick<ServerRecord, 'updateName' | 'id'>, phase: string, command: string, token: string): Promise<number | null>;
  /** A command's result, as soon as it is known. */
  endCommand(id: number, r: CommandResult): Promise<void>;
  /** Cut a journalled command's output to its first and last `keep` characters each. */
  summarizeCommand(id: number, keep: number): Promise<void>;
  /** `actor`: the person (`user@host`) whose command this records; null for the engine's own. */
  addEvent(updateName: string, serverName: string | null, kind: string, message: string, actor?: string | null): Promise<void>;

  /** Take the update's lease unless a live holder has it (`isDead` judges a holder that is not us), in one transaction. */
  acquireLease(name: string, me: LeaseClaim, isDead: (holder: Lease) => boolean): Promise<LeaseResult>;
  /** Refresh our lease; false when it is no longer ours. */
  heartbeat(name: string, token: string): Promise<boolean>;
  releaseLease(name: string, token: string): Promise<void>;

  /** `drop`: a pending server becomes `excluded` (checked), with who dropped it and why. */
  dropServer(id: number, error: string, at: string, actor: string): Promise<ServerRecord>;
  /** `split`: a batch of `from`, pending, or paused with a reason. */
  insertBatch(from: UpdateRecord, name: string, testStopAfter: number, as?: { status: 'paused'; reason: string }): Promise<void>;
  /** `split`: servers moved to another update (in this order), their journal and events with them. */
  moveServers(ids: number[], toUpdate: string): Promise<void>;
}

/** What planning (plan/: plan, retry, undo, auto) writes besides. */
export interface PlanStore extends EngineStore {
  tx<T>(fn: (t: PlanStore) => Promise<T>, opts?: TxOptions): Promise<T>;

  /** An update as `planning` and its servers as `pending`, in one transaction. */
  createUpdate(u: NewUpdate): Promise<UpdateRecord>;
  /** Change fields of a server without changing its status. */
  patchServer(id: number, change: ServerChange): Promise<void>;
  /** The commit a pending server was found at while planning. */
  setProbedCommit(id: number, commit: string | null): Promise<void>;
  /** The version (and class) a server was found at while planning. */
  setProbedVersion(id: number, version: string | null, cls: VersionClass | null): Promise<void>;
  /** `plan --only`: servers taken out of an update being planned (rows, journal, events), their names kept in the settings. */
  leaveOut(updateName: string, ids: number[], why: string): Promise<void>;
  /**
   * An update that never started and everything recorded for it removed: `planning` (auto found
   * nothing to do, a plan was interrupted), or, for `forget`, one of `statuses`. Throws for
   * another status or an update that was started.
   */
  discardPlan(name: string, statuses?: readonly UpdateStatus[]): Promise<void>;

  /** An `auto` run begun (its claim); its id. */
  beginAutoRun(r: NewAutoRun): Promise<number>;
  /** Refresh an open `auto` run's heartbeat. */
  autoHeartbeat(id: number): Promise<void>;
  setAutoRunUpdate(id: number, updateName: string): Promise<void>;
  /** End an `auto` run with what it came to; its row stays as the audit record. */
  endAutoRun(id: number, outcome: string, message: string, updateName?: string | null): Promise<void>;

  /**
   * `freeze`: the repo frozen, in one transaction, unless a freeze of it is active already: the
   * new freeze (`created`), or the active one, unchanged (`created: false`).
   */
  freeze(f: NewFreeze): Promise<{ freeze: FreezeRecord; created: boolean }>;
  /** `unfreeze`: the repo's active freeze lifted by `by` (who and when recorded on it), returned so; null when none is active. */
  unfreeze(repoKey: string, by: string): Promise<FreezeRecord | null>;
}

/** The handle `tx` gives its function: every method, run inside the transaction. */
export type StoreTx = PlanStore;

/** The whole store, as the CLI opens it. */
export interface Store extends PlanStore {
  /** Close it once every call made before has ended (a transaction still open finishes first). */
  close(): Promise<void>;

  /** `db copy`: every row of every table, ids and all, and the identity, read in one snapshot (store/copy.ts). */
  exportAll(): Promise<StoreDump>;
  /**
   * `db copy`: `dump` written, ids as they are, into this store, which must hold nothing yet (a
   * UsageError otherwise), in one transaction; the store's identity (`dbId`) becomes the dump's.
   */
  importAll(dump: StoreDump): Promise<void>;
}
