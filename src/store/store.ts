import { createRequire } from 'node:module';
import type Database from 'better-sqlite3';
import type { RolloutSettings, ServerSpec, VersionClass } from '../config/types.js';
import type { AutoRun, BusyAccount, EventRecord, Hop, Lease, ServerRecord, ServerReach, StepRecord, UpdateRecord } from '../model/records.js';
import { UsageError } from '../errors.js';
import { plural } from '../util/plural.js';
import {
  serverTransition,
  updateTransition,
  type ServerStatus,
  type ServerStep,
  type UpdateStatus,
} from '../model/lifecycle.js';
import { ACTIVE_SERVER, ACTIVE_UPDATE, BUDGETED_SERVER, HISTORY_SERVER, TOUCHED_SERVER, sqlList } from '../model/lifecycle.js';
import { MIGRATIONS } from './schema.js';
import { didYouMean } from '../util/did-you-mean.js';
import { suggest } from '../util/suggest.js';

function reachJson(s: ServerReach): string | null {
  const r: ServerReach = {};
  if (s.identityFiles !== undefined) r.identityFiles = s.identityFiles;
  if (s.knownHosts !== undefined) r.knownHosts = s.knownHosts;
  if (s.identitiesOnly !== undefined) r.identitiesOnly = s.identitiesOnly;
  if (s.identityAgent !== undefined) r.identityAgent = s.identityAgent;
  if (s.certificateFiles !== undefined) r.certificateFiles = s.certificateFiles;
  if (s.jump !== undefined && s.jump.length > 0) r.jump = s.jump;
  return Object.keys(r).length ? JSON.stringify(r) : null;
}

export interface NewUpdate {
  name: string;
  repo: string;
  branch: string;
  commit: string;
  configFile: string | null;
  settings: RolloutSettings;
  testStopAfter: number;
  /** `types` defaults to `[type]`; `path`: the server's own hops (undo), else set by the plan */
  servers: Array<Omit<ServerSpec, 'types'> & Partial<Pick<ServerSpec, 'types'>> & { path?: Hop[] | null }>;
  retryOf?: string | null;
  undoOf?: string | null;
  createdBy?: string | null;
}

type Row = Record<string, unknown>;

function toAutoRun(r: Row): AutoRun {
  return {
    id: r.id as number,
    configFile: r.config_file as string,
    startedAt: r.started_at as string,
    endedAt: (r.ended_at as string | null) ?? null,
    actor: r.actor as string,
    pid: r.pid as number,
    host: r.host as string,
    pidStart: (r.pid_start as string | null) ?? null,
    heartbeat: r.heartbeat as string,
    commit: (r.commit_sha as string | null) ?? null,
    updateName: (r.update_name as string | null) ?? null,
    outcome: (r.outcome as string | null) ?? null,
    message: (r.message as string | null) ?? null,
  };
}

function toUpdate(r: Row): UpdateRecord {
  return {
    name: r.name as string,
    status: r.status as UpdateStatus,
    createdAt: r.created_at as string,
    startedAt: (r.started_at as string | null) ?? null,
    endedAt: (r.ended_at as string | null) ?? null,
    repo: r.repo as string,
    branch: r.branch as string,
    commit: r.commit_sha as string,
    batchOf: (r.batch_of as string | null) ?? null,
    configFile: (r.config_file as string | null) ?? null,
    settings: JSON.parse(r.settings_json as string) as RolloutSettings,
    testStopAfter: r.test_stop_after as number,
    pauseAtWorked: (r.pause_at_worked as number | null) ?? null,
    pauseBase: (r.pause_base as number | null) ?? null,
    pauseRequestedAt: (r.pause_requested_at as string | null) ?? null,
    pauseRequestedBy: (r.pause_requested_by as string | null) ?? null,
    reason: (r.reason as string | null) ?? null,
    lease: r.lease_token
      ? {
          token: r.lease_token as string,
          pid: r.lease_pid as number,
          host: r.lease_host as string,
          pidStart: (r.lease_pid_start as string | null) ?? null,
          since: r.lease_since as string,
          heartbeat: r.lease_heartbeat as string,
        }
      : null,
    retryOf: (r.retry_of as string | null | undefined) ?? null,
    undoOf: (r.undo_of as string | null | undefined) ?? null,
    createdBy: (r.created_by as string | null | undefined) ?? null,
  };
}

/** The `types` column (a JSON list), or just `type` for rows written before it existed. */
function typesOf(r: Row): string[] {
  if (typeof r.types === 'string') {
    try {
      const v = JSON.parse(r.types) as unknown;
      if (Array.isArray(v) && v.length > 0 && v.every((t) => typeof t === 'string')) return v as string[];
    } catch {
      // fall back to type
    }
  }
  return [r.type as string];
}

function toServer(r: Row): ServerRecord {
  const reach = typeof r.ssh_json === 'string' ? (JSON.parse(r.ssh_json) as ServerReach) : {};
  return {
    ...reach,
    id: r.id as number,
    updateName: r.update_name as string,
    position: r.position as number,
    name: r.name as string,
    host: r.host as string,
    port: r.port as number,
    user: r.user as string,
    type: r.type as string,
    types: typesOf(r),
    status: r.status as ServerStatus,
    step: (r.step as ServerStep | null) ?? null,
    fromCommit: (r.from_commit as string | null) ?? null,
    toCommit: (r.to_commit as string | null) ?? null,
    error: (r.error as string | null) ?? null,
    startedAt: (r.started_at as string | null) ?? null,
    endedAt: (r.ended_at as string | null) ?? null,
    lockHeld: r.lock_held === 1,
    agentVersion: (r.agent_version as string | null | undefined) ?? null,
    versionClass: (r.version_class as VersionClass | null | undefined) ?? null,
    path: typeof r.path_json === 'string' ? (JSON.parse(r.path_json) as Hop[]) : null,
    hop: (r.hop as number | null | undefined) ?? null,
  };
}

function toStep(r: Row): StepRecord {
  return {
    id: r.id as number,
    updateName: r.update_name as string,
    serverId: r.server_id as number,
    serverName: r.server_name as string,
    phase: r.phase as string,
    command: r.command as string,
    startedAt: r.started_at as string,
    endedAt: (r.ended_at as string | null) ?? null,
    exitCode: (r.exit_code as number | null) ?? null,
    stdout: (r.stdout as string | null) ?? null,
    stderr: (r.stderr as string | null) ?? null,
    error: (r.error as string | null) ?? null,
  };
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
  /** stored as path_json; null = one hop to the update's commit */
  path?: Hop[] | null;
  hop?: number | null;
}

export interface UpdateChange {
  startedAt?: string | null;
  endedAt?: string | null;
  pauseAtWorked?: number | null;
  pauseBase?: number | null;
  pauseRequestedAt?: string | null;
  pauseRequestedBy?: string | null;
  reason?: string | null;
}

const SERVER_COLUMNS: Record<keyof ServerChange, string> = {
  step: 'step',
  fromCommit: 'from_commit',
  toCommit: 'to_commit',
  error: 'error',
  startedAt: 'started_at',
  endedAt: 'ended_at',
  lockHeld: 'lock_held',
  agentVersion: 'agent_version',
  versionClass: 'version_class',
  path: 'path_json',
  hop: 'hop',
};
const UPDATE_COLUMNS: Record<keyof UpdateChange, string> = {
  startedAt: 'started_at',
  endedAt: 'ended_at',
  pauseAtWorked: 'pause_at_worked',
  pauseBase: 'pause_base',
  pauseRequestedAt: 'pause_requested_at',
  pauseRequestedBy: 'pause_requested_by',
  reason: 'reason',
};

function setClause<T extends object>(change: T, columns: Record<keyof T, string>): { sql: string; values: unknown[] } {
  const parts: string[] = [];
  const values: unknown[] = [];
  for (const [key, value] of Object.entries(change)) {
    if (value === undefined) continue;
    parts.push(`${columns[key as keyof T]} = ?`);
    values.push(typeof value === 'boolean' ? Number(value) : key === 'path' && value !== null ? JSON.stringify(value) : value);
  }
  return { sql: parts.map((p) => `, ${p}`).join(''), values };
}

/**
 * Open `path` as a plan database, or refuse it (exit 2) without having changed it: a folder that
 * does not exist, a file that is not SQLite, or another program's SQLite database (which
 * switching to WAL and adding our tables would alter).
 */
function openChecked(path: string): Database.Database {
  let db: Database.Database;
  try {
    // Loaded here, not imported: `--help` and the commands that never open a database do not
    // pay for the module (cold start).
    const open = createRequire(import.meta.url)('better-sqlite3') as typeof Database;
    db = new open(path, { timeout: 10_000 });
  } catch (e) {
    throw new UsageError(`cannot open the plan database ${path}: ${(e as Error).message}`);
  }
  try {
    // One read transaction, so both come from the same snapshot: another process may be creating
    // the tables of this new database right now, and its version and tables land together.
    const { version, tables } = db.transaction(() => ({
      version: db.pragma('user_version', { simple: true }) as number,
      tables: db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all() as string[],
    }))();
    if (version === 0 && tables.length > 0) {
      throw new UsageError(
        `${path} is a SQLite database of something else (tables: ${tables.slice(0, 5).join(', ')}${tables.length > 5 ? ', …' : ''}), ` +
          'not an agent-update plan; pass --db a new or agent-update file',
      );
    }
    return db;
  } catch (e) {
    db.close();
    if (e instanceof UsageError) throw e;
    const code = (e as { code?: string }).code;
    if (code === 'SQLITE_NOTADB') throw new UsageError(`${path} is not a SQLite database, so not an agent-update plan; check --db`);
    throw new UsageError(`cannot read the plan database ${path}: ${(e as Error).message}`);
  }
}

/**
 * Switch to WAL, unless it is already. Changing the journal mode does not wait on SQLite's busy
 * timeout: two processes opening a new database at once can get SQLITE_BUSY from it, so it is
 * tried again for a while (the other one is switching it itself).
 */
function useWal(db: Database.Database): void {
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (let attempt = 0; ; attempt++) {
    try {
      if (String(db.pragma('journal_mode', { simple: true })).toLowerCase() === 'wal') return;
      db.pragma('journal_mode = WAL');
      return;
    } catch (e) {
      if ((e as { code?: string }).code !== 'SQLITE_BUSY' || attempt >= 400) throw e;
      Atomics.wait(pause, 0, 0, 25);
    }
  }
}

/**
 * The plan database: one SQLite file in WAL mode, shared by every process working on it.
 * Every method that changes state is one transaction, so a crash leaves either the old or
 * the new state, never half of each. Status changes are checked against rollout/status.ts
 * inside the transaction that makes them.
 */
export class Store {
  readonly db: Database.Database;

  constructor(
    readonly path: string,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.db = openChecked(path);
    useWal(this.db);
    this.db.pragma('synchronous = FULL');
    this.db.pragma('foreign_keys = ON');
    this.migrate();
  }

  static openExisting(path: string): Store {
    return new Store(path);
  }

  close(): void {
    this.db.close();
  }

  /**
   * Bring the schema up to date. The version is read inside the write transaction that applies
   * the migrations: two processes opening a new database at once then run them one after the
   * other, and the second finds nothing left to do (reading it before, both would create the
   * tables and one would fail).
   */
  private migrate(): void {
    const current = () => this.db.pragma('user_version', { simple: true }) as number;
    const tooNew = (version: number) =>
      new UsageError(
        `${this.path} was written by a newer agent-update (schema ${version}, this one knows ${MIGRATIONS.length}); upgrade agent-update`,
      );
    // Up to date (the usual case): no write transaction, so readers never queue behind writers.
    const seen = current();
    if (seen > MIGRATIONS.length) throw tooNew(seen);
    if (seen === MIGRATIONS.length) return;
    this.db
      .transaction(() => {
        const version = current();
        if (version > MIGRATIONS.length) throw tooNew(version);
        for (let v = version; v < MIGRATIONS.length; v++) this.db.exec(MIGRATIONS[v]!);
        this.db.pragma(`user_version = ${MIGRATIONS.length}`);
      })
      .immediate();
  }

  /** This database's identity, named in the locks it puts on servers. */
  get dbId(): string {
    this.dbId_ ??= (this.stmt("SELECT value FROM meta WHERE key = 'db_id'").pluck().get() as string);
    return this.dbId_;
  }
  private dbId_: string | undefined;

  private iso(): string {
    return this.now().toISOString();
  }

  /**
   * The prepared statement for `sql`, compiled once per Store: a rollout journals every command
   * and a plan every probe, and a status of a big update runs the same few queries.
   */
  private stmt(sql: string): Database.Statement {
    let found = this.statements.get(sql);
    if (found === undefined) {
      found = this.db.prepare(sql);
      this.statements.set(sql, found);
    }
    return found;
  }
  private readonly statements = new Map<string, Database.Statement>();

  /** Run `fn` in one IMMEDIATE transaction (takes the write lock up front: no upgrade deadlocks). */
  tx<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  // ---- updates -------------------------------------------------------------------------------

  hasUpdate(name: string): boolean {
    return this.stmt('SELECT 1 FROM updates WHERE name = ?').get(name) !== undefined;
  }

  findUpdate(name: string): UpdateRecord | null {
    const row = this.stmt('SELECT * FROM updates WHERE name = ?').get(name) as Row | undefined;
    return row ? toUpdate(row) : null;
  }

  /** The update, or a UsageError (exit 2) that lists what exists. */
  getUpdate(name: string): UpdateRecord {
    const found = this.findUpdate(name);
    if (found) return found;
    const names = this.listUpdates().map((u) => u.name);
    const near = didYouMean(name, names);
    throw new UsageError(
      `no update named ${JSON.stringify(name)} in ${this.path}` +
        (near ||
          (names.length ? `; known updates: ${names.slice(-10).join(', ')}` : `; it holds no updates (run \`${suggest('plan -c FILE')}\`)`)),
    );
  }

  listUpdates(): UpdateRecord[] {
    return (this.stmt('SELECT * FROM updates ORDER BY created_at, name').all() as Row[]).map(toUpdate);
  }

  /** Insert an update as `planning` and its servers as `pending`, in one transaction. */
  createUpdate(u: NewUpdate): UpdateRecord {
    const at = this.iso();
    this.tx(() => {
      if (this.hasUpdate(u.name)) {
        throw new UsageError(`an update named ${u.name} already exists in ${this.path}; pass --name to choose another`);
      }
      this.db
        .prepare(
          `INSERT INTO updates (name, status, created_at, repo, branch, commit_sha, config_file, settings_json, test_stop_after,
                                retry_of, undo_of, created_by)
           VALUES (?, 'planning', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(u.name, at, u.repo, u.branch, u.commit, u.configFile, JSON.stringify(u.settings), u.testStopAfter,
          u.retryOf ?? null, u.undoOf ?? null, u.createdBy ?? null);
      const insert = this.stmt(
        `INSERT INTO servers (update_name, position, name, host, port, user, type, types, status, ssh_json, path_json)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)`,
      );
      u.servers.forEach((s, i) =>
        insert.run(u.name, i, s.name, s.host, s.port, s.user, s.type, JSON.stringify(s.types ?? [s.type]), reachJson(s),
          s.path ? JSON.stringify(s.path) : null),
      );
      this.addEvent(u.name, null, 'planning', `planning ${plural(u.servers.length, 'server')} to ${u.commit.slice(0, 12)}`);
    });
    return this.getUpdate(u.name);
  }

  /** Change an update's status, checked against the table, in one transaction. */
  setUpdateStatus(name: string, to: UpdateStatus, change: UpdateChange = {}): UpdateRecord {
    return this.tx(() => {
      const current = this.getUpdate(name);
      updateTransition(name, current.status, to);
      const { sql, values } = setClause(change, UPDATE_COLUMNS);
      this.stmt(`UPDATE updates SET status = ?${sql} WHERE name = ?`).run(to, ...values, name);
      if (current.status !== to) {
        this.addEvent(name, null, 'update-status', `${current.status} → ${to}${change.reason ? `: ${change.reason}` : ''}`);
      }
      return this.getUpdate(name);
    });
  }

  /** Change fields of an update without changing its status. */
  patchUpdate(name: string, change: UpdateChange): void {
    const { sql, values } = setClause(change, UPDATE_COLUMNS);
    if (!sql) return;
    this.stmt(`UPDATE updates SET ${sql.slice(2)} WHERE name = ?`).run(...values, name);
  }

  // ---- servers -------------------------------------------------------------------------------

  getServers(updateName: string): ServerRecord[] {
    return (
      this.stmt('SELECT * FROM servers WHERE update_name = ? ORDER BY position').all(updateName) as Row[]
    ).map(toServer);
  }

  /**
   * Each update's servers counted by status (`total` and one key per status present, as
   * countsOf makes them), in one query: what `status` lists without reading every server.
   */
  countsByUpdate(): Map<string, Record<string, number>> {
    const out = new Map<string, Record<string, number>>();
    for (const r of this.stmt('SELECT update_name, status, COUNT(*) AS n FROM servers GROUP BY update_name, status ORDER BY update_name, MIN(position)').all() as Row[]) {
      const name = r.update_name as string;
      const counts = out.get(name) ?? { total: 0 };
      counts[r.status as string] = r.n as number;
      counts.total! += r.n as number;
      out.set(name, counts);
    }
    return out;
  }

  getServer(id: number): ServerRecord {
    return toServer(this.stmt('SELECT * FROM servers WHERE id = ?').get(id) as Row);
  }

  /** Change a server's status (and step, commits, error), checked against the table. */
  setServerStatus(id: number, to: ServerStatus, change: ServerChange = {}): ServerRecord {
    return this.tx(() => {
      const current = this.getServer(id);
      serverTransition(current.updateName, current.name, current.status, to);
      const { sql, values } = setClause(change, SERVER_COLUMNS);
      this.stmt(`UPDATE servers SET status = ?${sql} WHERE id = ?`).run(to, ...values, id);
      const label = to === 'running' ? `running (${change.step ?? current.step})` : to;
      if (current.status !== to || current.step !== (change.step ?? current.step)) {
        this.addEvent(current.updateName, current.name, 'server-status', `${label}${change.error ? `: ${change.error}` : ''}`);
      }
      return this.getServer(id);
    });
  }

  /** Change fields of a server without changing its status (a refresh that found it unreachable again). */
  patchServer(id: number, change: ServerChange): void {
    const { sql, values } = setClause(change, SERVER_COLUMNS);
    if (!sql) return;
    this.stmt(`UPDATE servers SET ${sql.slice(2)} WHERE id = ?`).run(...values, id);
  }

  /** Whether our lock may be on the server (see `ServerRecord.lockHeld`); not a status change. */
  setLockHeld(id: number, held: boolean): void {
    this.stmt('UPDATE servers SET lock_held = ? WHERE id = ?').run(held ? 1 : 0, id);
  }

  /** The commit a pending server was found at while planning (its `fromCommit`). */
  setProbedCommit(id: number, commit: string | null): void {
    this.stmt("UPDATE servers SET from_commit = ? WHERE id = ? AND status = 'pending'").run(commit, id);
  }

  /** The version (and class) a server was found at while planning; not a status change. */
  setProbedVersion(id: number, version: string | null, cls: VersionClass | null): void {
    this.stmt('UPDATE servers SET agent_version = ?, version_class = ? WHERE id = ?').run(version, cls, id);
  }

  /**
   * `plan --only`: take servers out of an update being planned, as if the config had not selected
   * them: their rows, their probe's journal and events go; the others are numbered again from 0.
   * Their names are kept in the settings (`versions.leftOut`), with an event saying why.
   */
  leaveOut(updateName: string, ids: number[], why: string): void {
    if (ids.length === 0) return;
    this.tx(() => {
      const names: string[] = [];
      for (const id of ids) {
        const s = this.getServer(id);
        if (s.updateName !== updateName) throw new Error(`server ${id} is not in update ${updateName}`);
        names.push(s.name);
        this.stmt('DELETE FROM steps WHERE server_id = ?').run(id);
        this.stmt('DELETE FROM events WHERE update_name = ? AND server_name = ?').run(updateName, s.name);
        this.stmt('DELETE FROM servers WHERE id = ?').run(id);
      }
      this.getServers(updateName).forEach((s, i) => this.stmt('UPDATE servers SET position = ? WHERE id = ?').run(i, s.id));
      const u = this.getUpdate(updateName);
      const settings: RolloutSettings = { ...u.settings, versions: { ...(u.settings.versions ?? { only: null }), leftOut: names } };
      this.stmt('UPDATE updates SET settings_json = ? WHERE name = ?').run(JSON.stringify(settings), updateName);
      this.addEvent(updateName, null, 'left-out', `${plural(names.length, 'server')} left out (${why}): ${names.join(', ')}`);
    });
  }

  /** Move servers to another update (split). Their journal and their events move with them. */
  moveServers(ids: number[], toUpdate: string): void {
    const find = this.stmt('SELECT update_name, name FROM servers WHERE id = ?');
    const move = this.stmt('UPDATE servers SET update_name = ?, position = ? WHERE id = ?');
    const moveSteps = this.stmt('UPDATE steps SET update_name = ? WHERE server_id = ?');
    const moveEvents = this.stmt('UPDATE events SET update_name = ? WHERE update_name = ? AND server_name = ?');
    ids.forEach((id, i) => {
      const from = find.get(id) as { update_name: string; name: string };
      move.run(toUpdate, i, id);
      moveSteps.run(toUpdate, id);
      if (from.update_name !== toUpdate) moveEvents.run(toUpdate, from.update_name, from.name);
    });
  }

  /**
   * The server of another update on the same account (`user@host:port`, the host compared
   * without case) that is `running` now, if any: whoever holds it is working on that agent.
   */
  busyAccount(server: Pick<ServerRecord, 'host' | 'port' | 'user' | 'updateName'>): BusyAccount | null {
    const row = this.db
      .prepare(
        `SELECT servers.update_name, servers.name, servers.step FROM servers
         WHERE servers.status = 'running' AND servers.port = ? AND servers.user = ? AND servers.host = ? COLLATE NOCASE
           AND servers.update_name != ?
         LIMIT 1`,
      )
      .get(server.port, server.user, server.host, server.updateName) as Row | undefined;
    if (!row) return null;
    const update = this.getUpdate(row.update_name as string);
    return { update: update.name, server: row.name as string, lease: update.lease, step: (row.step as ServerStep | null) ?? null };
  }

  /**
   * The servers of other updates that are not finished (their update is planning, pending,
   * running or paused, the server pending or running) on any of these accounts.
   */
  overlappingUpdates(updateName: string): Array<{ update: string; status: UpdateStatus; servers: string[] }> {
    const rows = this.db
      .prepare(
        `SELECT other.update_name AS update_name, updates.status AS status, mine.name AS name
         FROM servers AS mine
         JOIN servers AS other ON other.port = mine.port AND other.user = mine.user AND other.host = mine.host COLLATE NOCASE
                              AND other.update_name != mine.update_name AND other.status IN (${sqlList(ACTIVE_SERVER)})
         JOIN updates ON updates.name = other.update_name AND updates.status IN (${sqlList(ACTIVE_UPDATE)})
         WHERE mine.update_name = ? AND mine.status IN (${sqlList(ACTIVE_SERVER)})
         ORDER BY updates.created_at, other.update_name, mine.position`,
      )
      .all(updateName) as Row[];
    const out = new Map<string, { update: string; status: UpdateStatus; servers: string[] }>();
    for (const r of rows) {
      const key = r.update_name as string;
      const entry = out.get(key) ?? { update: key, status: r.status as UpdateStatus, servers: [] };
      if (!entry.servers.includes(r.name as string)) entry.servers.push(r.name as string);
      out.set(key, entry);
    }
    return [...out.values()];
  }

  /** The failure budget's use for the group of `update` (itself and the batches split from it, or its original's). */
  budgetUse(update: UpdateRecord): { used: number; total: number; updates: string[] } {
    // The root of the split: a batch split again names its batch as batchOf.
    let group = update.name;
    for (let next = update.batchOf, hops = 0; next !== null && hops < 100; hops++) {
      group = next;
      next = this.findUpdate(next)?.batchOf ?? null;
    }
    const updates = this.stmt('SELECT name FROM updates WHERE name = ? OR batch_of = ? ORDER BY created_at, name').pluck().all(group, group) as string[];
    const row = this.db
      .prepare(
        `SELECT COUNT(*) AS total, COALESCE(SUM(status IN (${sqlList(BUDGETED_SERVER)})), 0) AS used FROM servers
         WHERE update_name IN (SELECT name FROM updates WHERE name = ? OR batch_of = ?)`,
      )
      .get(group, group) as { total: number; used: number };
    return { used: row.used, total: row.total, updates };
  }

  /** The servers, across all updates, on the account of `user@host:port` or named `name`, newest update first. */
  findServers(name: string): ServerRecord[] {
    const account = /^([^@\s]+)@(.+):(\d+)$/.exec(name);
    const rows = account
      ? this.db
          .prepare(
            `SELECT servers.* FROM servers JOIN updates ON updates.name = servers.update_name
             WHERE servers.user = ? AND servers.host = ? COLLATE NOCASE AND servers.port = ? ORDER BY updates.created_at DESC, servers.id DESC`,
          )
          .all(account[1], account[2], Number(account[3]))
      : this.db
          .prepare(
            `SELECT servers.* FROM servers JOIN updates ON updates.name = servers.update_name
             WHERE servers.name = ? ORDER BY updates.created_at DESC, servers.id DESC`,
          )
          .all(name);
    return (rows as Row[]).map(toServer);
  }

  /** A batch split from `from`: pending, or paused (never started) with a reason when split from a paused update. */
  insertBatch(from: UpdateRecord, name: string, testStopAfter: number, as: { status: 'paused'; reason: string } | undefined = undefined): void {
    this.db
      .prepare(
        `INSERT INTO updates (name, status, created_at, repo, branch, commit_sha, batch_of, config_file, settings_json, test_stop_after, reason,
                              retry_of, undo_of, created_by)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(name, as?.status ?? 'pending', this.iso(), from.repo, from.branch, from.commit, from.name, from.configFile, JSON.stringify(from.settings), testStopAfter, as?.reason ?? null,
        from.retryOf, from.undoOf, from.createdBy);
  }

  // ---- journal -------------------------------------------------------------------------------

  /** Record that a command is about to run; committed before it runs. */
  beginStep(server: ServerRecord, phase: string, command: string): number {
    const info = this.db
      .prepare('INSERT INTO steps (update_name, server_id, phase, command, started_at) VALUES (?, ?, ?, ?, ?)')
      .run(server.updateName, server.id, phase, command, this.iso());
    return Number(info.lastInsertRowid);
  }

  /** Record a command's result; committed as soon as it is known. */
  endStep(id: number, r: { code: number | null; stdout: string; stderr: string; error: string | null }): void {
    this.db
      .prepare('UPDATE steps SET ended_at = ?, exit_code = ?, stdout = ?, stderr = ?, error = ? WHERE id = ?')
      .run(this.iso(), r.code, r.stdout, r.stderr, r.error, id);
  }

  /**
   * Cut a recorded command's output down to its first and last `keep` characters each, saying how
   * much was left out: health attempts between the first and the last are kept this short, so a
   * long verify does not store megabytes per server.
   */
  summarizeStep(id: number, keep: number): void {
    const row = this.stmt('SELECT stdout, stderr FROM steps WHERE id = ?').get(id) as Row | undefined;
    if (!row) return;
    const cut = (s: string | null): string | null => {
      if (s === null || s.length <= keep * 2 + 64) return s;
      return `${s.slice(0, keep)}\n[… ${s.length - keep * 2} characters of this attempt's output not kept …]\n${s.slice(-keep)}`;
    };
    const stdout = cut(row.stdout as string | null);
    const stderr = cut(row.stderr as string | null);
    if (stdout !== row.stdout || stderr !== row.stderr) {
      this.stmt('UPDATE steps SET stdout = ?, stderr = ? WHERE id = ?').run(stdout, stderr, id);
    }
  }

  getSteps(updateName: string, serverName?: string): StepRecord[] {
    const sql = `SELECT steps.*, servers.name AS server_name FROM steps JOIN servers ON servers.id = steps.server_id
                 WHERE steps.update_name = ? ${serverName !== undefined ? 'AND servers.name = ?' : ''}
                 ORDER BY servers.position, steps.id`;
    const args = serverName !== undefined ? [updateName, serverName] : [updateName];
    return (this.stmt(sql).all(...args) as Row[]).map(toStep);
  }

  /** `actor`: the person (`user@host`) whose command this records; null for the engine's own. */
  addEvent(updateName: string, serverName: string | null, kind: string, message: string, actor: string | null = null): void {
    this.db
      .prepare('INSERT INTO events (update_name, server_name, at, kind, message, actor) VALUES (?, ?, ?, ?, ?, ?)')
      .run(updateName, serverName, this.iso(), kind, message, actor);
  }

  getEvents(updateName: string): EventRecord[] {
    return (
      this.stmt('SELECT * FROM events WHERE update_name = ? ORDER BY id').all(updateName) as Row[]
    ).map((r) => ({
      id: r.id as number,
      updateName: r.update_name as string,
      serverName: (r.server_name as string | null) ?? null,
      at: r.at as string,
      kind: r.kind as string,
      message: r.message as string,
      actor: (r.actor as string | null) ?? null,
    }));
  }

  // ---- lease ---------------------------------------------------------------------------------

  /**
   * Take the update's lease unless a live holder has it. `isDead` decides about a holder that
   * is not us; the decision and the write are one transaction, so two processes racing for the
   * same update cannot both win.
   */
  acquireLease(name: string, me: Omit<Lease, 'since' | 'heartbeat'>, isDead: (holder: Lease) => boolean):
    | { ok: true; previous: Lease | null }
    | { ok: false; holder: Lease } {
    return this.tx(() => {
      const u = this.getUpdate(name);
      const holder = u.lease;
      if (holder && holder.token !== me.token && !isDead(holder)) return { ok: false as const, holder };
      const at = this.iso();
      this.db
        .prepare(
          `UPDATE updates SET lease_token = ?, lease_pid = ?, lease_host = ?, lease_pid_start = ?, lease_since = ?, lease_heartbeat = ?
           WHERE name = ?`,
        )
        .run(me.token, me.pid, me.host, me.pidStart, at, at, name);
      if (holder && holder.token !== me.token) {
        this.addEvent(name, null, 'takeover', `took over from pid ${holder.pid} on ${holder.host} (since ${holder.since})`);
      }
      return { ok: true as const, previous: holder && holder.token !== me.token ? holder : null };
    });
  }

  /** The token of the update's lease as committed now, or null when nobody holds it. */
  leaseToken(name: string): string | null {
    const row = this.stmt('SELECT lease_token FROM updates WHERE name = ?').get(name) as Row | undefined;
    return (row?.lease_token as string | null | undefined) ?? null;
  }

  /** Refresh our lease; false when it is no longer ours (someone took it over). */
  heartbeat(name: string, token: string): boolean {
    return (
      this.stmt('UPDATE updates SET lease_heartbeat = ? WHERE name = ? AND lease_token = ?').run(this.iso(), name, token)
        .changes === 1
    );
  }

  releaseLease(name: string, token: string): void {
    this.db
      .prepare(
        `UPDATE updates SET lease_token = NULL, lease_pid = NULL, lease_host = NULL, lease_pid_start = NULL,
         lease_since = NULL, lease_heartbeat = NULL WHERE name = ? AND lease_token = ?`,
      )
      .run(name, token);
  }

  // ---- drop, history -------------------------------------------------------------------------

  /**
   * `drop`: a pending server becomes `excluded` (checked against the table), `error` saying who
   * dropped it and why; the status event carries the actor, as the events of a person's command do.
   */
  dropServer(id: number, error: string, at: string, actor: string): ServerRecord {
    return this.tx(() => {
      const current = this.getServer(id);
      serverTransition(current.updateName, current.name, current.status, 'excluded');
      this.stmt("UPDATE servers SET status = 'excluded', step = NULL, error = ?, ended_at = ? WHERE id = ?").run(error, at, id);
      this.addEvent(current.updateName, current.name, 'server-status', `excluded: ${error}`, actor);
      return this.getServer(id);
    });
  }

  /**
   * `history`: the server rows of every update (batches included) in one of `statuses`, those
   * named `server` only when given (a name, or `user@host:port`). A full read of the servers
   * table, as a report over the whole database is.
   */
  historyServers(server?: string): ServerRecord[] {
    const rows = `SELECT * FROM servers WHERE status IN (${sqlList(HISTORY_SERVER)})`;
    const account = server === undefined ? null : /^([^@\s]+)@(.+):(\d+)$/.exec(server);
    const found =
      server === undefined
        ? this.stmt(`${rows} ORDER BY id`).all()
        : account
          ? this.stmt(`${rows} AND user = ? AND host = ? COLLATE NOCASE AND port = ? ORDER BY id`).all(account[1], account[2], Number(account[3]))
          : this.stmt(`${rows} AND name = ? ORDER BY id`).all(server);
    return (found as Row[]).map(toServer);
  }

  /** Every server name in the database, for a did-you-mean. */
  serverNames(): string[] {
    return this.stmt('SELECT DISTINCT name FROM servers ORDER BY name').pluck().all() as string[];
  }

  /** Whether any server row (any status) is named `server`, or is on the account `user@host:port`. */
  hasServer(server: string): boolean {
    const account = /^([^@\s]+)@(.+):(\d+)$/.exec(server);
    return account
      ? this.stmt('SELECT 1 FROM servers WHERE user = ? AND host = ? COLLATE NOCASE AND port = ? LIMIT 1').get(account[1], account[2], Number(account[3])) !== undefined
      : this.stmt('SELECT 1 FROM servers WHERE name = ? LIMIT 1').get(server) !== undefined;
  }

  /** The runs of an update by a person (`start`, `resume`, `takeover` events with their actor), in order. */
  runEvents(updateName: string): Array<{ at: string; kind: string; actor: string }> {
    return this.stmt(
      "SELECT at, kind, actor FROM events WHERE update_name = ? AND kind IN ('start', 'resume', 'takeover') AND actor IS NOT NULL ORDER BY id",
    ).all(updateName) as Array<{ at: string; kind: string; actor: string }>;
  }

  // ---- auto, retry ---------------------------------------------------------------------------

  /** The updates planned from this config file (its absolute path, as `auto` identifies "this config's update"), newest first. */
  updatesOfConfig(configFile: string): UpdateRecord[] {
    return (this.stmt('SELECT * FROM updates WHERE config_file = ? ORDER BY created_at DESC, name DESC').all(configFile) as Row[]).map(toUpdate);
  }

  /** The batches split from `name`, and theirs, in creation order. */
  batchesOf(name: string): UpdateRecord[] {
    const out: UpdateRecord[] = [];
    const queue = [name];
    for (let hops = 0; queue.length > 0 && hops < 10_000; hops++) {
      const next = queue.shift()!;
      for (const r of this.stmt('SELECT * FROM updates WHERE batch_of = ? ORDER BY created_at, name').all(next) as Row[]) {
        const u = toUpdate(r);
        out.push(u);
        queue.push(u.name);
      }
    }
    return out;
  }

  /** The updates `retry` made from `name`, in creation order. */
  retriesOf(name: string): UpdateRecord[] {
    return (this.stmt('SELECT * FROM updates WHERE retry_of = ? ORDER BY created_at, name').all(name) as Row[]).map(toUpdate);
  }

  /** The `auto` runs of this config not ended yet (claims), newest first. */
  openAutoRuns(configFile: string): AutoRun[] {
    return (this.stmt('SELECT * FROM auto_runs WHERE config_file = ? AND ended_at IS NULL ORDER BY id DESC').all(configFile) as Row[]).map(toAutoRun);
  }

  /** Every `auto` run recorded (of one config when given), oldest first: the audit of what each found. */
  autoRuns(configFile?: string): AutoRun[] {
    const rows = configFile === undefined
      ? this.stmt('SELECT * FROM auto_runs ORDER BY id').all()
      : this.stmt('SELECT * FROM auto_runs WHERE config_file = ? ORDER BY id').all(configFile);
    return (rows as Row[]).map(toAutoRun);
  }

  /** Record an `auto` run as begun (its claim); the caller's transaction makes the check and this one write. */
  beginAutoRun(r: { configFile: string; actor: string; pid: number; host: string; pidStart: string | null; commit: string | null }): number {
    const at = this.iso();
    const info = this.stmt(
      `INSERT INTO auto_runs (config_file, started_at, actor, pid, host, pid_start, heartbeat, commit_sha) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(r.configFile, at, r.actor, r.pid, r.host, r.pidStart, at, r.commit);
    return Number(info.lastInsertRowid);
  }

  /** Refresh an open `auto` run's heartbeat (its claim is judged like a lease). */
  autoHeartbeat(id: number): void {
    this.stmt('UPDATE auto_runs SET heartbeat = ? WHERE id = ? AND ended_at IS NULL').run(this.iso(), id);
  }

  /** Link the update an `auto` run made or started to it (while it is still open). */
  setAutoRunUpdate(id: number, updateName: string): void {
    this.stmt('UPDATE auto_runs SET update_name = ? WHERE id = ?').run(updateName, id);
  }

  /** End an `auto` run with what it came to; its row stays as the audit record. */
  endAutoRun(id: number, outcome: string, message: string, updateName?: string | null): void {
    const at = this.iso();
    if (updateName === undefined) {
      this.stmt('UPDATE auto_runs SET ended_at = ?, outcome = ?, message = ? WHERE id = ? AND ended_at IS NULL').run(at, outcome, message, id);
    } else {
      this.stmt('UPDATE auto_runs SET ended_at = ?, outcome = ?, message = ?, update_name = ? WHERE id = ? AND ended_at IS NULL').run(at, outcome, message, updateName, id);
    }
  }

  /**
   * Remove a `planning` update and everything recorded for it (its probes' journal, its events),
   * in one transaction: `auto` found nothing to do, and leaves only its audit record.
   */
  discardPlan(name: string): void {
    this.tx(() => {
      const u = this.getUpdate(name);
      if (u.status !== 'planning') throw new Error(`discardPlan: update ${name} is ${u.status}, not planning`);
      this.stmt('DELETE FROM steps WHERE update_name = ?').run(name);
      this.stmt('DELETE FROM events WHERE update_name = ?').run(name);
      this.stmt('DELETE FROM servers WHERE update_name = ?').run(name);
      this.stmt('DELETE FROM updates WHERE name = ?').run(name);
    });
  }

  // ---- undo ----------------------------------------------------------------------------------

  /** The updates `undo` made from `name`, in creation order. */
  undosOf(name: string): UpdateRecord[] {
    return (this.stmt('SELECT * FROM updates WHERE undo_of = ? ORDER BY created_at, name').all(name) as Row[]).map(toUpdate);
  }

  /**
   * Server rows of any update on the same account (`user@host:port`, the host without case) that
   * were worked on after `since`: running, or ended success, rolled-back, failed or fatal (the
   * caller tells whether a rollback put back what it found). Oldest first.
   */
  laterWorkOn(s: Pick<ServerRecord, 'user' | 'host' | 'port' | 'id'>, since: string): ServerRecord[] {
    return (
      this.stmt(
        `SELECT * FROM servers WHERE user = ? AND host = ? COLLATE NOCASE AND port = ? AND id != ?
           AND started_at > ? AND status IN (${sqlList(TOUCHED_SERVER)}) ORDER BY started_at`,
      ).all(s.user, s.host, s.port, s.id, since) as Row[]
    ).map(toServer);
  }
}
