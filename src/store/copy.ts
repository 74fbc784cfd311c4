/**
 * A whole plan store as plain rows, the same for SQLite and PostgreSQL (`db copy`): every table's
 * rows with every column, ids and all, and the store's identity. `Store.exportAll()` reads one
 * (in one snapshot), `Store.importAll()` writes one into a store that holds nothing yet (in one
 * transaction). The implementations are store/sqlite/copy.ts and store/postgres/copy.ts; the
 * tables and columns are the same on both (store/sqlite/schema.ts, store/postgres/schema.ts), and
 * test/store/copy.test.ts checks that this list still names every column of both.
 *
 * The identity (`meta.db_id`) goes with the rows: the lock an executor puts on a server
 * (rollout/remote-lock.ts) names the database it works for, and the engine and `unlock` tell
 * "our own lock, left by an executor of this plan that died" from "another database's lock" by
 * that id. A copy with an identity of its own would take every lock its original left on a
 * server for a stranger's and refuse the server; with the same identity it recognises them and
 * takes over as the original would. The schema version is not copied: each store keeps its own.
 */
import { UsageError } from '../errors.js';
import { plural } from '../util/plural.js';

/** Each table, in the order its rows are written (a row's references before it), with its columns. */
export const COPY_TABLES = {
  updates: [
    'name', 'status', 'created_at', 'started_at', 'ended_at', 'repo', 'branch', 'commit_sha', 'batch_of', 'config_file',
    'settings_json', 'test_stop_after', 'pause_at_worked', 'pause_requested_at', 'reason', 'lease_token', 'lease_pid',
    'lease_host', 'lease_pid_start', 'lease_since', 'lease_heartbeat', 'pause_requested_by', 'pause_base', 'retry_of',
    'undo_of', 'created_by', 'steps_promoted', 'bake_step', 'bake_left_ms', 'guard_checked_at', 'guard_summary',
  ],
  servers: [
    'id', 'update_name', 'position', 'name', 'host', 'port', 'user', 'type', 'status', 'step', 'from_commit', 'to_commit',
    'error', 'started_at', 'ended_at', 'lock_held', 'types', 'ssh_json', 'agent_version', 'version_class', 'path_json', 'hop',
  ],
  steps: ['id', 'update_name', 'server_id', 'phase', 'command', 'started_at', 'ended_at', 'exit_code', 'stdout', 'stderr', 'error'],
  events: ['id', 'update_name', 'server_name', 'at', 'kind', 'message', 'actor'],
  auto_runs: [
    'id', 'config_file', 'started_at', 'ended_at', 'actor', 'pid', 'host', 'pid_start', 'heartbeat', 'commit_sha',
    'update_name', 'outcome', 'message',
  ],
  freezes: ['id', 'repo_key', 'repo', 'config_file', 'reason', 'frozen_by', 'frozen_at', 'unfrozen_by', 'unfrozen_at'],
} as const satisfies Record<string, readonly string[]>;

export type CopyTable = keyof typeof COPY_TABLES;

/** The tables in the order they are written. */
export const COPY_ORDER = Object.keys(COPY_TABLES) as CopyTable[];

/** The tables with an id of their own (an identity column on PostgreSQL, whose next value follows the largest copied). */
export const ID_TABLES: readonly CopyTable[] = ['servers', 'steps', 'events', 'auto_runs', 'freezes'];

/** What a column holds on both: text, a whole number, or nothing. */
export type CopyValue = string | number | null;
export type CopyRow = Record<string, CopyValue>;

/** A whole plan store. */
export interface StoreDump {
  /** The store's identity (`meta.db_id`), named in the locks its executors put on servers. */
  dbId: string;
  /** Every row of each table, each with every column of COPY_TABLES, in primary key order. */
  tables: Record<CopyTable, CopyRow[]>;
}

/** How many rows of each kind a dump holds, as `db copy` reports them. */
export interface DumpCounts {
  updates: number;
  servers: number;
  journal: number;
  events: number;
  autoRuns: number;
  freezes: number;
}

export function countsOf(d: StoreDump): DumpCounts {
  return {
    updates: d.tables.updates.length,
    servers: d.tables.servers.length,
    journal: d.tables.steps.length,
    events: d.tables.events.length,
    autoRuns: d.tables.auto_runs.length,
    freezes: d.tables.freezes.length,
  };
}

/** `SELECT` of every column of `table`, in primary key order (quoted: `user` is a keyword on PostgreSQL). */
export function selectAll(table: CopyTable): string {
  const key = table === 'updates' ? 'name' : 'id';
  return `SELECT ${COPY_TABLES[table].map((c) => `"${c}"`).join(', ')} FROM ${table} ORDER BY ${key}`;
}

/** `INSERT` of `rows` rows of `table`, every column, `?` placeholders. */
export function insertRows(table: CopyTable, rows: number): string {
  const one = `(${COPY_TABLES[table].map(() => '?').join(', ')})`;
  return `INSERT INTO ${table} (${COPY_TABLES[table].map((c) => `"${c}"`).join(', ')}) VALUES ${Array.from({ length: rows }, () => one).join(', ')}`;
}

/** The values of `row` in column order, for insertRows. */
export function valuesOf(table: CopyTable, row: CopyRow): CopyValue[] {
  return COPY_TABLES[table].map((c) => row[c] ?? null);
}

/** A row as a database driver returned it, as a CopyRow: exactly the table's columns, each text, a number or null. */
export function plainRow(table: CopyTable, raw: Record<string, unknown>): CopyRow {
  const out: CopyRow = {};
  for (const c of COPY_TABLES[table]) {
    const v = raw[c];
    if (v === null || v === undefined) out[c] = null;
    else if (typeof v === 'string' || typeof v === 'number') out[c] = v;
    else if (typeof v === 'bigint') out[c] = Number(v);
    else throw new Error(`${table}.${c} holds a ${typeof v}, not text or a number: cannot copy it`);
  }
  return out;
}

/** What a store already holds, counted per table (for "TO is not empty"). */
export type TableCounts = Record<CopyTable, number>;

const ROW_NAME: Record<CopyTable, [string, string]> = {
  updates: ['update', 'updates'],
  servers: ['server row', 'server rows'],
  steps: ['journal entry', 'journal entries'],
  events: ['event', 'events'],
  auto_runs: ['auto run', 'auto runs'],
  freezes: ['freeze', 'freezes'],
};

/** The refusal to write into a store that holds anything (`db copy` never merges), or null when it is empty. */
export function notEmpty(location: string, counts: TableCounts): UsageError | null {
  const held = COPY_ORDER.filter((t) => counts[t] > 0);
  if (held.length === 0) return null;
  const what = counts.updates > 0 ? plural(counts.updates, 'update') : held.map((t) => plural(counts[t], ...ROW_NAME[t])).join(', ');
  return new UsageError(`${location} already holds a plan store with ${what}: db copy writes only into a new or empty one (it never merges); nothing was written`);
}

/** The check of a dump before it is written: the identity is there, each table's rows have their keys. */
export function checkDump(d: StoreDump): void {
  if (typeof d.dbId !== 'string' || d.dbId === '') throw new Error('a store dump without its identity (db_id)');
  for (const t of COPY_ORDER) {
    const key = t === 'updates' ? 'name' : 'id';
    if (!Array.isArray(d.tables[t])) throw new Error(`a store dump without its ${t}`);
    for (const r of d.tables[t]) if (r[key] === null || r[key] === undefined) throw new Error(`a row of ${t} without its ${key}`);
  }
}
