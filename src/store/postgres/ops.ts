/**
 * Every operation of the port on PostgreSQL, each as the SQLite store's module of the same area
 * does it (store/sqlite/*.ts), with the same records (store/rows.ts maps the rows: the
 * columns are the same). Status changes read the row FOR UPDATE inside the transaction that
 * writes, and are checked against model/lifecycle.ts there.
 */
import type { RolloutSettings, VersionClass } from '../../config/types.js';
import { UsageError } from '../../errors.js';
import {
  ACTIVE_SERVER, ACTIVE_UPDATE, BUDGETED_SERVER, HISTORY_SERVER, TOUCHED_SERVER, serverStatusesBefore, serverTransition, sqlList, updateTransition,
  type ServerStatus, type ServerStep, type UpdateStatus,
} from '../../model/lifecycle.js';
import type { AutoRun, BusyAccount, EventRecord, FreezeRecord, JournalEntry, Lease, ServerRecord, UpdateRecord } from '../../model/records.js';
import { plural } from '../../util/plural.js';
import type { BudgetUse, CommandResult, LeaseClaim, LeaseResult, NewAutoRun, NewFreeze, NewUpdate, Overlap, RunEvent, ServerChange, UpdateChange } from '../port.js';
import { countsOfRows, cutOutput, overlapsOf, planningMessage, reachJson, SERVER_COLUMNS, setClause, toAutoRun, toEvent, toFreeze, toJournalEntry, toServer, toUpdate, unknownUpdate, UPDATE_COLUMNS } from '../rows.js';
import type { Q } from './conn.js';

const ACCOUNT = /^([^@\s]+)@(.+):(\d+)$/;

// ── updates ──────────────────────────────────────────────────────────────────────────────────

export async function hasUpdate(q: Q, name: string): Promise<boolean> {
  return (await q.rows('SELECT 1 FROM updates WHERE name = ?', [name])).length > 0;
}

export async function findUpdate(q: Q, name: string, forUpdate = false): Promise<UpdateRecord | null> {
  const [row] = await q.rows(`SELECT * FROM updates WHERE name = ?${forUpdate ? ' FOR UPDATE' : ''}`, [name]);
  return row ? toUpdate(row) : null;
}

export async function getUpdate(q: Q, name: string, forUpdate = false): Promise<UpdateRecord> {
  const found = await findUpdate(q, name, forUpdate);
  if (found) return found;
  throw unknownUpdate(name, q.location, (await listUpdates(q)).map((u) => u.name));
}

export async function listUpdates(q: Q): Promise<UpdateRecord[]> {
  return (await q.rows('SELECT * FROM updates ORDER BY created_at, name')).map(toUpdate);
}

/** How many servers createUpdate inserts with one statement. */
const SERVERS_A_STATEMENT = 500;

export function createUpdate(q: Q, u: NewUpdate): Promise<UpdateRecord> {
  const at = q.iso();
  return q.atomic(async (t) => {
    if (await hasUpdate(t, u.name)) {
      throw new UsageError(`an update named ${u.name} already exists in ${t.location}; pass --name to choose another`);
    }
    await t.run(
      `INSERT INTO updates (name, status, created_at, repo, branch, commit_sha, config_file, settings_json, test_stop_after, retry_of, undo_of, created_by)
       VALUES (?, 'planning', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [u.name, at, u.repo, u.branch, u.commit, u.configFile, JSON.stringify(u.settings), u.testStopAfter, u.retryOf ?? null, u.undoOf ?? null, u.createdBy ?? null],
    );
    // many rows a statement (a round trip each, not one a server), well under PostgreSQL's 65,535 parameters
    for (let from = 0; from < u.servers.length; from += SERVERS_A_STATEMENT) {
      const rows = u.servers.slice(from, from + SERVERS_A_STATEMENT);
      await t.run(
        `INSERT INTO servers (update_name, position, name, host, port, "user", type, types, status, ssh_json, path_json)
         VALUES ${rows.map(() => "(?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)").join(', ')}`,
        rows.flatMap((s, i) => [u.name, from + i, s.name, s.host, s.port, s.user, s.type, JSON.stringify(s.types ?? [s.type]), reachJson(s), s.path ? JSON.stringify(s.path) : null]),
      );
    }
    await addEvent(t, u.name, null, 'planning', planningMessage(u));
    return getUpdate(t, u.name);
  });
}

export function setUpdateStatus(q: Q, name: string, to: UpdateStatus, change: UpdateChange = {}): Promise<UpdateRecord> {
  return q.atomic(async (t) => {
    const current = await getUpdate(t, name, true);
    updateTransition(name, current.status, to);
    const { sql, values } = setClause(change, UPDATE_COLUMNS);
    const event = current.status !== to ? `${current.status} → ${to}${change.reason ? `: ${change.reason}` : ''}` : null;
    const [row] = await t.rows(...withEvent(`UPDATE updates SET status = ?${sql} WHERE name = ? RETURNING *`, [to, ...values, name], t, name, null, 'update-status', event));
    return toUpdate(row!);
  });
}

export async function patchUpdate(q: Q, name: string, change: UpdateChange): Promise<void> {
  const { sql, values } = setClause(change, UPDATE_COLUMNS);
  if (!sql) return;
  await q.run(`UPDATE updates SET ${sql.slice(2)} WHERE name = ?`, [...values, name]);
}

export function insertBatch(q: Q, from: UpdateRecord, name: string, testStopAfter: number, as?: { status: 'paused'; reason: string }): Promise<void> {
  return q.atomic(async (t) => {
    await t.run(
      `INSERT INTO updates (name, status, created_at, repo, branch, commit_sha, batch_of, config_file, settings_json, test_stop_after, reason, retry_of, undo_of, created_by)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [name, as?.status ?? 'pending', t.iso(), from.repo, from.branch, from.commit, from.name, from.configFile, JSON.stringify(from.settings), testStopAfter,
        as?.reason ?? null, from.retryOf, from.undoOf, from.createdBy],
    );
  });
}

export async function batchesOf(q: Q, name: string): Promise<UpdateRecord[]> {
  const out: UpdateRecord[] = [];
  const queue = [name];
  for (let hops = 0; queue.length > 0 && hops < 10_000; hops++) {
    const next = queue.shift()!;
    for (const r of await q.rows('SELECT * FROM updates WHERE batch_of = ? ORDER BY created_at, name', [next])) {
      const u = toUpdate(r);
      out.push(u);
      queue.push(u.name);
    }
  }
  return out;
}

export async function retriesOf(q: Q, name: string): Promise<UpdateRecord[]> {
  return (await q.rows('SELECT * FROM updates WHERE retry_of = ? ORDER BY created_at, name', [name])).map(toUpdate);
}

export async function undosOf(q: Q, name: string): Promise<UpdateRecord[]> {
  return (await q.rows('SELECT * FROM updates WHERE undo_of = ? ORDER BY created_at, name', [name])).map(toUpdate);
}

export async function updatesOfConfig(q: Q, configFile: string): Promise<UpdateRecord[]> {
  return (await q.rows('SELECT * FROM updates WHERE config_file = ? ORDER BY created_at DESC, name DESC', [configFile])).map(toUpdate);
}

// ── servers ──────────────────────────────────────────────────────────────────────────────────

export async function getServers(q: Q, updateName: string): Promise<ServerRecord[]> {
  return (await q.rows('SELECT * FROM servers WHERE update_name = ? ORDER BY position', [updateName])).map(toServer);
}

export async function getServer(q: Q, id: number, forUpdate = false): Promise<ServerRecord> {
  const [row] = await q.rows(`SELECT * FROM servers WHERE id = ?${forUpdate ? ' FOR UPDATE' : ''}`, [id]);
  if (!row) throw new Error(`no server with id ${id} in ${q.location}`);
  return toServer(row);
}

/**
 * The change, its check against the table and its event in one statement (a round trip, where a
 * read FOR UPDATE and then the write would be two): the row is locked and read as it is, changed
 * only when its status may become `to`, and the event written with the change, its text as
 * setServerStatusChecked makes it. No row changed: the slow way, which names what is wrong.
 */
export function setServerStatus(q: Q, id: number, to: ServerStatus, change: ServerChange = {}): Promise<ServerRecord> {
  return q.atomic(async (t) => {
    const { sql, values } = setClause(change, SERVER_COLUMNS);
    const step = change.step ?? null;
    const suffix = change.error ? `: ${change.error}` : '';
    const [row] = await t.rows(
      `WITH old AS (SELECT id, status, step FROM servers WHERE id = ? FOR UPDATE),
       changed AS (
         UPDATE servers SET status = ?${sql} FROM old WHERE servers.id = old.id AND old.status = ANY(?::text[])
         RETURNING servers.*, old.status AS old_status, old.step AS old_step
       ),
       said AS (
         INSERT INTO events (update_name, server_name, at, kind, message, actor)
         SELECT update_name, name, ?, 'server-status',
                (CASE WHEN ? = 'running' THEN 'running (' || COALESCE(?::text, old_step, 'null') || ')' ELSE ? END) || ?, NULL
         FROM changed WHERE old_status <> ? OR (?::text IS NOT NULL AND old_step IS DISTINCT FROM ?::text)
       )
       SELECT * FROM changed`,
      [id, to, ...values, serverStatusesBefore(to), t.iso(), to, step, to, suffix, to, step, step],
    );
    if (row) return toServer(row);
    return setServerStatusChecked(t, id, to, change);
  });
}

/** The same change read first and checked in code: a status the table refuses throws its TransitionError. */
function setServerStatusChecked(q: Q, id: number, to: ServerStatus, change: ServerChange): Promise<ServerRecord> {
  return q.atomic(async (t) => {
    const current = await getServer(t, id, true);
    serverTransition(current.updateName, current.name, current.status, to);
    const { sql, values } = setClause(change, SERVER_COLUMNS);
    const label = to === 'running' ? `running (${change.step ?? current.step})` : to;
    const event = current.status !== to || current.step !== (change.step ?? current.step) ? `${label}${change.error ? `: ${change.error}` : ''}` : null;
    const [row] = await t.rows(...withEvent(`UPDATE servers SET status = ?${sql} WHERE id = ? RETURNING *`, [to, ...values, id], t, current.updateName, current.name, 'server-status', event));
    return toServer(row!);
  });
}

export async function patchServer(q: Q, id: number, change: ServerChange): Promise<void> {
  const { sql, values } = setClause(change, SERVER_COLUMNS);
  if (!sql) return;
  await q.run(`UPDATE servers SET ${sql.slice(2)} WHERE id = ?`, [...values, id]);
}

export async function setLockHeld(q: Q, id: number, held: boolean): Promise<void> {
  await q.run('UPDATE servers SET lock_held = ? WHERE id = ?', [held ? 1 : 0, id]);
}

/** Carried (carried.ts), as setProbedVersion: `plan`'s probes write them, and its end carries them. */
export async function setProbedCommit(q: Q, id: number, commit: string | null): Promise<void> {
  await q.later("UPDATE servers SET from_commit = ? WHERE id = ? AND status = 'pending'", [commit, id]);
}

export async function setProbedVersion(q: Q, id: number, version: string | null, cls: VersionClass | null): Promise<void> {
  await q.later('UPDATE servers SET agent_version = ?, version_class = ? WHERE id = ?', [version, cls, id]);
}

export async function leaveOut(q: Q, updateName: string, ids: number[], why: string): Promise<void> {
  if (ids.length === 0) return;
  await q.atomic(async (t) => {
    const names: string[] = [];
    for (const id of ids) {
      const s = await getServer(t, id, true);
      if (s.updateName !== updateName) throw new Error(`server ${id} is not in update ${updateName}`);
      names.push(s.name);
      await t.run('DELETE FROM steps WHERE server_id = ?', [id]);
      await t.run('DELETE FROM events WHERE update_name = ? AND server_name = ?', [updateName, s.name]);
      await t.run('DELETE FROM servers WHERE id = ?', [id]);
    }
    for (const [i, s] of (await getServers(t, updateName)).entries()) await t.run('UPDATE servers SET position = ? WHERE id = ?', [i, s.id]);
    const u = await getUpdate(t, updateName, true);
    const settings: RolloutSettings = { ...u.settings, versions: { ...(u.settings.versions ?? { only: null }), leftOut: names } };
    await t.run('UPDATE updates SET settings_json = ? WHERE name = ?', [JSON.stringify(settings), updateName]);
    await addEvent(t, updateName, null, 'left-out', `${plural(names.length, 'server')} left out (${why}): ${names.join(', ')}`);
  });
}

export function moveServers(q: Q, ids: number[], toUpdate: string): Promise<void> {
  return q.atomic(async (t) => {
    for (const [i, id] of ids.entries()) {
      const [from] = await t.rows('SELECT update_name, name FROM servers WHERE id = ? FOR UPDATE', [id]);
      await t.run('UPDATE servers SET update_name = ?, position = ? WHERE id = ?', [toUpdate, i, id]);
      await t.run('UPDATE steps SET update_name = ? WHERE server_id = ?', [toUpdate, id]);
      if (from && from.update_name !== toUpdate) {
        await t.run('UPDATE events SET update_name = ? WHERE update_name = ? AND server_name = ?', [toUpdate, from.update_name, from.name]);
      }
    }
  });
}

export function dropServer(q: Q, id: number, error: string, at: string, actor: string): Promise<ServerRecord> {
  return q.atomic(async (t) => {
    const current = await getServer(t, id, true);
    serverTransition(current.updateName, current.name, current.status, 'excluded');
    await t.run("UPDATE servers SET status = 'excluded', step = NULL, error = ?, ended_at = ? WHERE id = ?", [error, at, id]);
    await addEvent(t, current.updateName, current.name, 'server-status', `excluded: ${error}`, actor);
    return getServer(t, id);
  });
}

export async function busyAccount(q: Q, server: Pick<ServerRecord, 'host' | 'port' | 'user' | 'updateName'>): Promise<BusyAccount | null> {
  const [row] = await q.rows(
    `SELECT update_name, name, step FROM servers
     WHERE status = 'running' AND port = ? AND "user" = ? AND lower(host) = lower(?) AND update_name != ?
     LIMIT 1`,
    [server.port, server.user, server.host, server.updateName],
  );
  if (!row) return null;
  const update = await getUpdate(q, row.update_name as string);
  return { update: update.name, server: row.name as string, lease: update.lease, step: (row.step as ServerStep | null) ?? null };
}

export async function findServers(q: Q, name: string): Promise<ServerRecord[]> {
  const account = ACCOUNT.exec(name);
  const rows = account
    ? await q.rows(
        `SELECT servers.* FROM servers JOIN updates ON updates.name = servers.update_name
         WHERE servers."user" = ? AND lower(servers.host) = lower(?) AND servers.port = ? ORDER BY updates.created_at DESC, servers.id DESC`,
        [account[1], account[2], Number(account[3])],
      )
    : await q.rows(
        `SELECT servers.* FROM servers JOIN updates ON updates.name = servers.update_name
         WHERE servers.name = ? ORDER BY updates.created_at DESC, servers.id DESC`,
        [name],
      );
  return rows.map(toServer);
}

export async function laterWorkOn(q: Q, s: Pick<ServerRecord, 'user' | 'host' | 'port' | 'id'>, since: string): Promise<ServerRecord[]> {
  return (
    await q.rows(
      `SELECT * FROM servers WHERE "user" = ? AND lower(host) = lower(?) AND port = ? AND id != ?
         AND started_at > ? AND status IN (${sqlList(TOUCHED_SERVER)}) ORDER BY started_at`,
      [s.user, s.host, s.port, s.id, since],
    )
  ).map(toServer);
}

// ── the journal ──────────────────────────────────────────────────────────────────────────────

export async function beginCommand(q: Q, server: Pick<ServerRecord, 'updateName' | 'id'>, phase: string, command: string): Promise<number> {
  const [row] = await q.rows('INSERT INTO steps (update_name, server_id, phase, command, started_at) VALUES (?, ?, ?, ?, ?) RETURNING id', [
    server.updateName, server.id, phase, command, q.iso(),
  ]);
  return row!.id as number;
}

export async function beginCommandIfLeased(q: Q, server: Pick<ServerRecord, 'updateName' | 'id'>, phase: string, command: string, token: string): Promise<number | null> {
  const [row] = await q.rows(
    `INSERT INTO steps (update_name, server_id, phase, command, started_at)
     SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM updates WHERE name = ? AND lease_token = ?) RETURNING id`,
    [server.updateName, server.id, phase, command, q.iso(), server.updateName, token],
  );
  return row ? (row.id as number) : null;
}

/** Carried (carried.ts): committed with the next statement, before anything it announces runs. */
export async function endCommand(q: Q, id: number, r: CommandResult): Promise<void> {
  await q.later('UPDATE steps SET ended_at = ?, exit_code = ?, stdout = ?, stderr = ?, error = ? WHERE id = ?', [q.iso(), r.code, r.stdout, r.stderr, r.error, id]);
}

export function summarizeCommand(q: Q, id: number, keep: number): Promise<void> {
  return q.atomic(async (t) => {
    const [row] = await t.rows('SELECT stdout, stderr FROM steps WHERE id = ? FOR UPDATE', [id]);
    if (!row) return;
    const stdout = cutOutput(row.stdout as string | null, keep);
    const stderr = cutOutput(row.stderr as string | null, keep);
    if (stdout !== row.stdout || stderr !== row.stderr) await t.run('UPDATE steps SET stdout = ?, stderr = ? WHERE id = ?', [stdout, stderr, id]);
  });
}

export async function getJournal(q: Q, updateName: string, serverName?: string): Promise<JournalEntry[]> {
  const sql = `SELECT steps.*, servers.name AS server_name FROM steps JOIN servers ON servers.id = steps.server_id
               WHERE steps.update_name = ? ${serverName !== undefined ? 'AND servers.name = ?' : ''}
               ORDER BY servers.position, steps.id`;
  return (await q.rows(sql, serverName !== undefined ? [updateName, serverName] : [updateName])).map(toJournalEntry);
}

// ── events ───────────────────────────────────────────────────────────────────────────────────

/**
 * `update` (an UPDATE … RETURNING *) and, when `message` is not null, the event that says so, as
 * one statement (a round trip, not two): the event's row is written with the change or not at all.
 */
function withEvent(update: string, params: unknown[], q: Q, updateName: string, serverName: string | null, kind: string, message: string | null): [string, unknown[]] {
  if (message === null) return [update, params];
  return [
    `WITH changed AS (${update}), said AS (INSERT INTO events (update_name, server_name, at, kind, message, actor) VALUES (?, ?, ?, ?, ?, NULL)) SELECT * FROM changed`,
    [...params, updateName, serverName, q.iso(), kind, message],
  ];
}

export async function addEvent(q: Q, updateName: string, serverName: string | null, kind: string, message: string, actor: string | null = null): Promise<void> {
  await q.run('INSERT INTO events (update_name, server_name, at, kind, message, actor) VALUES (?, ?, ?, ?, ?, ?)', [updateName, serverName, q.iso(), kind, message, actor]);
}

export async function getEvents(q: Q, updateName: string): Promise<EventRecord[]> {
  return (await q.rows('SELECT * FROM events WHERE update_name = ? ORDER BY id', [updateName])).map(toEvent);
}

export async function runEvents(q: Q, updateName: string): Promise<RunEvent[]> {
  return (await q.rows(
    "SELECT at, kind, actor FROM events WHERE update_name = ? AND kind IN ('start', 'resume', 'takeover') AND actor IS NOT NULL ORDER BY id",
    [updateName],
  )) as unknown as RunEvent[];
}

// ── the lease ────────────────────────────────────────────────────────────────────────────────

export function acquireLease(q: Q, name: string, me: LeaseClaim, isDead: (holder: Lease) => boolean): Promise<LeaseResult> {
  return q.atomic(async (t): Promise<LeaseResult> => {
    const u = await getUpdate(t, name, true);
    const holder = u.lease;
    if (holder && holder.token !== me.token && !isDead(holder)) return { ok: false, holder };
    const at = t.iso();
    await t.run(
      `UPDATE updates SET lease_token = ?, lease_pid = ?, lease_host = ?, lease_pid_start = ?, lease_since = ?, lease_heartbeat = ? WHERE name = ?`,
      [me.token, me.pid, me.host, me.pidStart, at, at, name],
    );
    if (holder && holder.token !== me.token) {
      await addEvent(t, name, null, 'takeover', `took over from pid ${holder.pid} on ${holder.host} (since ${holder.since})`);
    }
    return { ok: true, previous: holder && holder.token !== me.token ? holder : null };
  });
}

export async function leaseToken(q: Q, name: string): Promise<string | null> {
  const [row] = await q.rows('SELECT lease_token FROM updates WHERE name = ?', [name]);
  return (row?.lease_token as string | null | undefined) ?? null;
}

export async function heartbeat(q: Q, name: string, token: string): Promise<boolean> {
  return (await q.run('UPDATE updates SET lease_heartbeat = ? WHERE name = ? AND lease_token = ?', [q.iso(), name, token])) === 1;
}

/** Clear the lease if `token` holds it; whether it did. */
export async function releaseLease(q: Q, name: string, token: string): Promise<boolean> {
  return (await q.run(
    `UPDATE updates SET lease_token = NULL, lease_pid = NULL, lease_host = NULL, lease_pid_start = NULL, lease_since = NULL, lease_heartbeat = NULL
     WHERE name = ? AND lease_token = ?`,
    [name, token],
  )) === 1;
}

// ── auto runs ────────────────────────────────────────────────────────────────────────────────

export async function openAutoRuns(q: Q, configFile: string): Promise<AutoRun[]> {
  return (await q.rows('SELECT * FROM auto_runs WHERE config_file = ? AND ended_at IS NULL ORDER BY id DESC', [configFile])).map(toAutoRun);
}

export async function autoRuns(q: Q, configFile?: string): Promise<AutoRun[]> {
  const rows = configFile === undefined
    ? await q.rows('SELECT * FROM auto_runs ORDER BY id')
    : await q.rows('SELECT * FROM auto_runs WHERE config_file = ? ORDER BY id', [configFile]);
  return rows.map(toAutoRun);
}

export async function beginAutoRun(q: Q, r: NewAutoRun): Promise<number> {
  const at = q.iso();
  const [row] = await q.rows(
    'INSERT INTO auto_runs (config_file, started_at, actor, pid, host, pid_start, heartbeat, commit_sha) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id',
    [r.configFile, at, r.actor, r.pid, r.host, r.pidStart, at, r.commit],
  );
  return row!.id as number;
}

export async function autoHeartbeat(q: Q, id: number): Promise<void> {
  await q.run('UPDATE auto_runs SET heartbeat = ? WHERE id = ? AND ended_at IS NULL', [q.iso(), id]);
}

export async function setAutoRunUpdate(q: Q, id: number, updateName: string): Promise<void> {
  await q.run('UPDATE auto_runs SET update_name = ? WHERE id = ?', [updateName, id]);
}

export async function endAutoRun(q: Q, id: number, outcome: string, message: string, updateName?: string | null): Promise<void> {
  const at = q.iso();
  if (updateName === undefined) {
    await q.run('UPDATE auto_runs SET ended_at = ?, outcome = ?, message = ? WHERE id = ? AND ended_at IS NULL', [at, outcome, message, id]);
  } else {
    await q.run('UPDATE auto_runs SET ended_at = ?, outcome = ?, message = ?, update_name = ? WHERE id = ? AND ended_at IS NULL', [at, outcome, message, updateName, id]);
  }
}

// ── freezes ──────────────────────────────────────────────────────────────────────────────────

export async function activeFreeze(q: Q, repoKey: string): Promise<FreezeRecord | null> {
  const [row] = await q.rows('SELECT * FROM freezes WHERE repo_key = ? AND unfrozen_at IS NULL', [repoKey]);
  return row ? toFreeze(row) : null;
}

export async function freezes(q: Q, repoKey?: string): Promise<FreezeRecord[]> {
  const rows = repoKey === undefined
    ? await q.rows('SELECT * FROM freezes ORDER BY id')
    : await q.rows('SELECT * FROM freezes WHERE repo_key = ? ORDER BY id', [repoKey]);
  return rows.map(toFreeze);
}

/** As store/sqlite/freezes.ts: under the writers' lock, so two freezes of one repo at once make one. */
export function freeze(q: Q, f: NewFreeze): Promise<{ freeze: FreezeRecord; created: boolean }> {
  return q.atomic(async (t) => {
    const active = await activeFreeze(t, f.repoKey);
    if (active) return { freeze: active, created: false };
    const [row] = await t.rows(
      'INSERT INTO freezes (repo_key, repo, config_file, reason, frozen_by, frozen_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING *',
      [f.repoKey, f.repo, f.configFile, f.reason, f.frozenBy, t.iso()],
    );
    return { freeze: toFreeze(row!), created: true };
  });
}

export function unfreeze(q: Q, repoKey: string, by: string): Promise<FreezeRecord | null> {
  return q.atomic(async (t) => {
    const [row] = await t.rows(
      'UPDATE freezes SET unfrozen_by = ?, unfrozen_at = ? WHERE repo_key = ? AND unfrozen_at IS NULL RETURNING *',
      [by, t.iso(), repoKey],
    );
    return row ? toFreeze(row) : null;
  });
}

export function discardPlan(q: Q, name: string, statuses: readonly UpdateStatus[] = ['planning']): Promise<void> {
  return q.atomic(async (t) => {
    const u = await getUpdate(t, name, true);
    if (!statuses.includes(u.status)) throw new Error(`discardPlan: update ${name} is ${u.status}, not ${statuses.join(' or ')}`);
    if (u.startedAt !== null) throw new Error(`discardPlan: update ${name} was started`);
    await t.run('DELETE FROM steps WHERE update_name = ?', [name]);
    await t.run('DELETE FROM events WHERE update_name = ?', [name]);
    await t.run('DELETE FROM servers WHERE update_name = ?', [name]);
    await t.run('DELETE FROM updates WHERE name = ?', [name]);
  });
}

// ── reports ──────────────────────────────────────────────────────────────────────────────────

export async function countsByUpdate(q: Q): Promise<Map<string, Record<string, number>>> {
  return countsOfRows(await q.rows('SELECT update_name, status, COUNT(*)::int AS n FROM servers GROUP BY update_name, status ORDER BY update_name, MIN(position)'));
}

export async function budgetUse(q: Q, update: UpdateRecord): Promise<BudgetUse> {
  let group = update.name;
  for (let next = update.batchOf, hops = 0; next !== null && hops < 100; hops++) {
    group = next;
    next = (await findUpdate(q, next))?.batchOf ?? null;
  }
  const updates = (await q.rows('SELECT name FROM updates WHERE name = ? OR batch_of = ? ORDER BY created_at, name', [group, group])).map((r) => r.name as string);
  const [row] = await q.rows(
    `SELECT COUNT(*)::int AS total, (COUNT(*) FILTER (WHERE status IN (${sqlList(BUDGETED_SERVER)})))::int AS used FROM servers
     WHERE update_name IN (SELECT name FROM updates WHERE name = ? OR batch_of = ?)`,
    [group, group],
  );
  return { used: row!.used as number, total: row!.total as number, updates };
}

export async function overlappingUpdates(q: Q, updateName: string): Promise<Overlap[]> {
  const rows = await q.rows(
    `SELECT other.update_name AS update_name, updates.status AS status, mine.name AS name
     FROM servers AS mine
     JOIN servers AS other ON other.port = mine.port AND other."user" = mine."user" AND lower(other.host) = lower(mine.host)
                          AND other.update_name != mine.update_name AND other.status IN (${sqlList(ACTIVE_SERVER)})
     JOIN updates ON updates.name = other.update_name AND updates.status IN (${sqlList(ACTIVE_UPDATE)})
     WHERE mine.update_name = ? AND mine.status IN (${sqlList(ACTIVE_SERVER)})
     ORDER BY updates.created_at, other.update_name, mine.position`,
    [updateName],
  );
  return overlapsOf(rows);
}

export async function historyServers(q: Q, server?: string): Promise<ServerRecord[]> {
  const rows = `SELECT * FROM servers WHERE status IN (${sqlList(HISTORY_SERVER)})`;
  const account = server === undefined ? null : ACCOUNT.exec(server);
  const found =
    server === undefined
      ? await q.rows(`${rows} ORDER BY id`)
      : account
        ? await q.rows(`${rows} AND "user" = ? AND lower(host) = lower(?) AND port = ? ORDER BY id`, [account[1], account[2], Number(account[3])])
        : await q.rows(`${rows} AND name = ? ORDER BY id`, [server]);
  return found.map(toServer);
}

export async function serverNames(q: Q): Promise<string[]> {
  return (await q.rows('SELECT DISTINCT name FROM servers ORDER BY name')).map((r) => r.name as string);
}

export async function hasServer(q: Q, server: string): Promise<boolean> {
  const account = ACCOUNT.exec(server);
  const rows = account
    ? await q.rows('SELECT 1 FROM servers WHERE "user" = ? AND lower(host) = lower(?) AND port = ? LIMIT 1', [account[1], account[2], Number(account[3])])
    : await q.rows('SELECT 1 FROM servers WHERE name = ? LIMIT 1', [server]);
  return rows.length > 0;
}
