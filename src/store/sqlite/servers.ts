/** The servers table: reading, status changes (checked against the table), the plan's probe results, moves, who holds an account. */
import type { RolloutSettings, VersionClass } from '../../config/types.js';
import { serverTransition, TOUCHED_SERVER, sqlList, type ServerStatus, type ServerStep } from '../../model/lifecycle.js';
import type { BusyAccount, ServerRecord } from '../../model/records.js';
import { plural } from '../../util/plural.js';
import type { ServerChange } from '../port.js';
import type { Db } from './db.js';
import { addEvent } from './events.js';
import { SERVER_COLUMNS, setClause, toServer, type Row } from '../rows.js';
import { getUpdate } from './updates.js';

export function getServers(db: Db, updateName: string): ServerRecord[] {
  return (db.stmt('SELECT * FROM servers WHERE update_name = ? ORDER BY position').all(updateName) as Row[]).map(toServer);
}

export function getServer(db: Db, id: number): ServerRecord {
  return toServer(db.stmt('SELECT * FROM servers WHERE id = ?').get(id) as Row);
}

/** Change a server's status (and step, commits, error), checked against the table. */
export function setServerStatus(db: Db, id: number, to: ServerStatus, change: ServerChange = {}): ServerRecord {
  return db.tx(() => {
    const current = getServer(db, id);
    serverTransition(current.updateName, current.name, current.status, to);
    const { sql, values } = setClause(change, SERVER_COLUMNS);
    db.stmt(`UPDATE servers SET status = ?${sql} WHERE id = ?`).run(to, ...values, id);
    const label = to === 'running' ? `running (${change.step ?? current.step})` : to;
    if (current.status !== to || current.step !== (change.step ?? current.step)) {
      addEvent(db, current.updateName, current.name, 'server-status', `${label}${change.error ? `: ${change.error}` : ''}`);
    }
    return getServer(db, id);
  });
}

/** Change fields of a server without changing its status (a refresh that found it unreachable again). */
export function patchServer(db: Db, id: number, change: ServerChange): void {
  const { sql, values } = setClause(change, SERVER_COLUMNS);
  if (!sql) return;
  db.stmt(`UPDATE servers SET ${sql.slice(2)} WHERE id = ?`).run(...values, id);
}

/** Whether our lock may be on the server (see `ServerRecord.lockHeld`); not a status change. */
export function setLockHeld(db: Db, id: number, held: boolean): void {
  db.stmt('UPDATE servers SET lock_held = ? WHERE id = ?').run(held ? 1 : 0, id);
}

/** The commit a pending server was found at while planning (its `fromCommit`). */
export function setProbedCommit(db: Db, id: number, commit: string | null): void {
  db.stmt("UPDATE servers SET from_commit = ? WHERE id = ? AND status = 'pending'").run(commit, id);
}

/** The version (and class) a server was found at while planning; not a status change. */
export function setProbedVersion(db: Db, id: number, version: string | null, cls: VersionClass | null): void {
  db.stmt('UPDATE servers SET agent_version = ?, version_class = ? WHERE id = ?').run(version, cls, id);
}

/**
 * `plan --only`: take servers out of an update being planned, as if the config had not selected
 * them: their rows, their probe's journal and events go; the others are numbered again from 0.
 * Their names are kept in the settings (`versions.leftOut`), with an event saying why.
 */
export function leaveOut(db: Db, updateName: string, ids: number[], why: string): void {
  if (ids.length === 0) return;
  db.tx(() => {
    const names: string[] = [];
    for (const id of ids) {
      const s = getServer(db, id);
      if (s.updateName !== updateName) throw new Error(`server ${id} is not in update ${updateName}`);
      names.push(s.name);
      db.stmt('DELETE FROM steps WHERE server_id = ?').run(id);
      db.stmt('DELETE FROM events WHERE update_name = ? AND server_name = ?').run(updateName, s.name);
      db.stmt('DELETE FROM servers WHERE id = ?').run(id);
    }
    getServers(db, updateName).forEach((s, i) => db.stmt('UPDATE servers SET position = ? WHERE id = ?').run(i, s.id));
    const u = getUpdate(db, updateName);
    const settings: RolloutSettings = { ...u.settings, versions: { ...(u.settings.versions ?? { only: null }), leftOut: names } };
    db.stmt('UPDATE updates SET settings_json = ? WHERE name = ?').run(JSON.stringify(settings), updateName);
    addEvent(db, updateName, null, 'left-out', `${plural(names.length, 'server')} left out (${why}): ${names.join(', ')}`);
  });
}

/** Move servers to another update (split). Their journal and their events move with them. */
export function moveServers(db: Db, ids: number[], toUpdate: string): void {
  const find = db.stmt('SELECT update_name, name FROM servers WHERE id = ?');
  const move = db.stmt('UPDATE servers SET update_name = ?, position = ? WHERE id = ?');
  const moveSteps = db.stmt('UPDATE steps SET update_name = ? WHERE server_id = ?');
  const moveEvents = db.stmt('UPDATE events SET update_name = ? WHERE update_name = ? AND server_name = ?');
  ids.forEach((id, i) => {
    const from = find.get(id) as { update_name: string; name: string };
    move.run(toUpdate, i, id);
    moveSteps.run(toUpdate, id);
    if (from.update_name !== toUpdate) moveEvents.run(toUpdate, from.update_name, from.name);
  });
}

/**
 * `drop`: a pending server becomes `excluded` (checked against the table), `error` saying who
 * dropped it and why; the status event carries the actor, as the events of a person's command do.
 */
export function dropServer(db: Db, id: number, error: string, at: string, actor: string): ServerRecord {
  return db.tx(() => {
    const current = getServer(db, id);
    serverTransition(current.updateName, current.name, current.status, 'excluded');
    db.stmt("UPDATE servers SET status = 'excluded', step = NULL, error = ?, ended_at = ? WHERE id = ?").run(error, at, id);
    addEvent(db, current.updateName, current.name, 'server-status', `excluded: ${error}`, actor);
    return getServer(db, id);
  });
}

/**
 * The server of another update on the same account (`user@host:port`, the host compared
 * without case) that is `running` now, if any: whoever holds it is working on that agent.
 */
export function busyAccount(db: Db, server: Pick<ServerRecord, 'host' | 'port' | 'user' | 'updateName'>): BusyAccount | null {
  const row = db.stmt(
    `SELECT servers.update_name, servers.name, servers.step FROM servers
     WHERE servers.status = 'running' AND servers.port = ? AND servers.user = ? AND servers.host = ? COLLATE NOCASE
       AND servers.update_name != ?
     LIMIT 1`,
  ).get(server.port, server.user, server.host, server.updateName) as Row | undefined;
  if (!row) return null;
  const update = getUpdate(db, row.update_name as string);
  return { update: update.name, server: row.name as string, lease: update.lease, step: (row.step as ServerStep | null) ?? null };
}

/** The servers, across all updates, on the account of `user@host:port` or named `name`, newest update first. */
export function findServers(db: Db, name: string): ServerRecord[] {
  const account = /^([^@\s]+)@(.+):(\d+)$/.exec(name);
  const rows = account
    ? db.stmt(
        `SELECT servers.* FROM servers JOIN updates ON updates.name = servers.update_name
         WHERE servers.user = ? AND servers.host = ? COLLATE NOCASE AND servers.port = ? ORDER BY updates.created_at DESC, servers.id DESC`,
      ).all(account[1], account[2], Number(account[3]))
    : db.stmt(
        `SELECT servers.* FROM servers JOIN updates ON updates.name = servers.update_name
         WHERE servers.name = ? ORDER BY updates.created_at DESC, servers.id DESC`,
      ).all(name);
  return (rows as Row[]).map(toServer);
}

/**
 * Server rows of any update on the same account (`user@host:port`, the host without case) that
 * were worked on after `since`: running, or ended success, rolled-back, failed or fatal (the
 * caller tells whether a rollback put back what it found). Oldest first.
 */
export function laterWorkOn(db: Db, s: Pick<ServerRecord, 'user' | 'host' | 'port' | 'id'>, since: string): ServerRecord[] {
  return (
    db.stmt(
      `SELECT * FROM servers WHERE user = ? AND host = ? COLLATE NOCASE AND port = ? AND id != ?
         AND started_at > ? AND status IN (${sqlList(TOUCHED_SERVER)}) ORDER BY started_at`,
    ).all(s.user, s.host, s.port, s.id, since) as Row[]
  ).map(toServer);
}
