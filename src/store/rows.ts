/**
 * Rows of the plan database's tables (SQLite and PostgreSQL alike) ↔ the records of
 * model/records.ts and the changes of store/port.ts.
 */
import type { RolloutSettings, VersionClass } from '../config/types.js';
import type { ServerStatus, ServerStep, UpdateStatus } from '../model/lifecycle.js';
import type { AutoRun, EventRecord, FreezeRecord, PathStop, ServerReach, ServerRecord, JournalEntry, UpdateRecord } from '../model/records.js';
import type { NewUpdate, Overlap, ServerChange, UpdateChange } from './port.js';
import { plural } from '../util/plural.js';
import { UsageError } from '../errors.js';
import { didYouMean } from '../util/did-you-mean.js';
import { suggest } from '../util/suggest.js';

export type Row = Record<string, unknown>;

/** How many of the known updates an unknown name's error lists (the newest), before `… and N more`. */
export const KNOWN_UPDATES_SHOWN = 10;

/**
 * The error of getUpdate for a name no update has (exit 2), the same in both stores: the closest
 * names, else the newest KNOWN_UPDATES_SHOWN of `names` (oldest first) and how many more there
 * are, with the command that lists them all; or that there are none.
 */
export function unknownUpdate(name: string, location: string, names: readonly string[]): UsageError {
  const near = didYouMean(name, names);
  let rest: string;
  if (near) rest = near;
  else if (names.length === 0) rest = `; it holds no updates (run \`${suggest('plan -c FILE')}\`)`;
  else {
    const more = names.length - KNOWN_UPDATES_SHOWN;
    rest =
      more > 0
        ? `; known updates (the ${KNOWN_UPDATES_SHOWN} newest): ${names.slice(-KNOWN_UPDATES_SHOWN).join(', ')}, …and ${more} more (\`${suggest('status')}\` lists them all)`
        : `; known updates: ${names.join(', ')}`;
  }
  return new UsageError(`no update named ${JSON.stringify(name)} in ${location}${rest}`);
}

/** What `servers.ssh_json` holds for a server: how it is reached when not as its update says; null for nothing of its own. */
export function reachJson(s: ServerReach): string | null {
  const r: ServerReach = {};
  if (s.identityFiles !== undefined) r.identityFiles = s.identityFiles;
  if (s.knownHosts !== undefined) r.knownHosts = s.knownHosts;
  if (s.identitiesOnly !== undefined) r.identitiesOnly = s.identitiesOnly;
  if (s.identityAgent !== undefined) r.identityAgent = s.identityAgent;
  if (s.certificateFiles !== undefined) r.certificateFiles = s.certificateFiles;
  if (s.jump !== undefined && s.jump.length > 0) r.jump = s.jump;
  return Object.keys(r).length ? JSON.stringify(r) : null;
}

export function toAutoRun(r: Row): AutoRun {
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

export function toFreeze(r: Row): FreezeRecord {
  return {
    id: r.id as number,
    repoKey: r.repo_key as string,
    repo: r.repo as string,
    configFile: (r.config_file as string | null) ?? null,
    reason: r.reason as string,
    frozenBy: r.frozen_by as string,
    frozenAt: r.frozen_at as string,
    unfrozenBy: (r.unfrozen_by as string | null) ?? null,
    unfrozenAt: (r.unfrozen_at as string | null) ?? null,
  };
}

export function toUpdate(r: Row): UpdateRecord {
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
    stopAtWorked: (r.pause_at_worked as number | null) ?? null,
    stopFromWorked: (r.pause_base as number | null) ?? null,
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
    stepsPromoted: (r.steps_promoted as number | null | undefined) ?? 0,
    bake: r.bake_step === null || r.bake_step === undefined ? null : { step: r.bake_step as number, leftMs: r.bake_left_ms as number },
    guard: r.guard_checked_at ? { checkedAt: r.guard_checked_at as string, summary: (r.guard_summary as string | null) ?? '' } : null,
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

export function toServer(r: Row): ServerRecord {
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
    path: typeof r.path_json === 'string' ? (JSON.parse(r.path_json) as PathStop[]) : null,
    hop: (r.hop as number | null | undefined) ?? null,
  };
}

export function toJournalEntry(r: Row): JournalEntry {
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

export function toEvent(r: Row): EventRecord {
  return {
    id: r.id as number,
    updateName: r.update_name as string,
    serverName: (r.server_name as string | null) ?? null,
    at: r.at as string,
    kind: r.kind as string,
    message: r.message as string,
    actor: (r.actor as string | null) ?? null,
  };
}

export const SERVER_COLUMNS: Record<keyof ServerChange, string> = {
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

export const UPDATE_COLUMNS: Record<keyof UpdateChange, string> = {
  commit: 'commit_sha',
  startedAt: 'started_at',
  endedAt: 'ended_at',
  stopAtWorked: 'pause_at_worked',
  stopFromWorked: 'pause_base',
  pauseRequestedAt: 'pause_requested_at',
  pauseRequestedBy: 'pause_requested_by',
  reason: 'reason',
  stepsPromoted: 'steps_promoted',
  bakeStep: 'bake_step',
  bakeLeftMs: 'bake_left_ms',
  guardCheckedAt: 'guard_checked_at',
  guardSummary: 'guard_summary',
};

/** `, col = ?` for each field of `change` given (booleans as 0/1, a path as JSON), and their values. */
export function setClause<T extends object>(change: T, columns: Record<keyof T, string>): { sql: string; values: unknown[] } {
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
 * The rows of the overlap query (one per other update × server of mine on a shared account, in
 * the query's order) as one Overlap per other update, each server named once.
 */
export function overlapsOf(rows: readonly Row[]): Overlap[] {
  const out = new Map<string, Overlap>();
  for (const r of rows) {
    const key = r.update_name as string;
    const entry = out.get(key) ?? { update: key, status: r.status as UpdateStatus, servers: [] };
    if (!entry.servers.includes(r.name as string)) entry.servers.push(r.name as string);
    out.set(key, entry);
  }
  return [...out.values()];
}

/**
 * A recorded command's output cut down to its first and last `keep` characters, saying how much
 * was left out (summarizeCommand: the health attempts between the first and the last).
 */
export function cutOutput(s: string | null, keep: number): string | null {
  if (s === null || s.length <= keep * 2 + 64) return s;
  return `${s.slice(0, keep)}\n[… ${s.length - keep * 2} characters of this attempt's output not kept …]\n${s.slice(-keep)}`;
}

/**
 * The rows of the count query (update_name, status, n; in the query's order) as each update's
 * counts: `total` and one key per status present, as countsOf makes them from the servers.
 */
export function countsOfRows(rows: readonly Row[]): Map<string, Record<string, number>> {
  const out = new Map<string, Record<string, number>>();
  for (const r of rows) {
    const name = r.update_name as string;
    const counts = out.get(name) ?? { total: 0 };
    counts[r.status as string] = r.n as number;
    counts.total! += r.n as number;
    out.set(name, counts);
  }
  return out;
}

/** The `planning` event a new update starts its record with (both implementations). */
export function planningMessage(u: Pick<NewUpdate, 'servers' | 'commit' | 'settings'>): string {
  return u.settings.restartOnly
    ? `planning a rolling restart of ${plural(u.servers.length, 'server')}, each at the commit it runs`
    : `planning ${plural(u.servers.length, 'server')} to ${u.commit.slice(0, 12)}`;
}
