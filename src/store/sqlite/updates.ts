/** The updates table: reading, creating, status changes (checked against the table), batches. */
import { UsageError } from '../../errors.js';
import { updateTransition, type UpdateStatus } from '../../model/lifecycle.js';
import type { UpdateRecord } from '../../model/records.js';
import type { NewUpdate, UpdateChange } from '../port.js';
import type { Db } from './db.js';
import { addEvent } from './events.js';
import { planningMessage, reachJson, setClause, toUpdate, unknownUpdate, UPDATE_COLUMNS, type Row } from '../rows.js';

export function hasUpdate(db: Db, name: string): boolean {
  return db.stmt('SELECT 1 FROM updates WHERE name = ?').get(name) !== undefined;
}

export function findUpdate(db: Db, name: string): UpdateRecord | null {
  const row = db.stmt('SELECT * FROM updates WHERE name = ?').get(name) as Row | undefined;
  return row ? toUpdate(row) : null;
}

/** The update, or a UsageError (exit 2) that lists what exists. */
export function getUpdate(db: Db, name: string): UpdateRecord {
  const found = findUpdate(db, name);
  if (found) return found;
  throw unknownUpdate(name, db.path, listUpdates(db).map((u) => u.name));
}

export function listUpdates(db: Db): UpdateRecord[] {
  return (db.stmt('SELECT * FROM updates ORDER BY created_at, name').all() as Row[]).map(toUpdate);
}

/** Insert an update as `planning` and its servers as `pending`, in one transaction. */
export function createUpdate(db: Db, u: NewUpdate): UpdateRecord {
  const at = db.iso();
  db.tx(() => {
    if (hasUpdate(db, u.name)) {
      throw new UsageError(`an update named ${u.name} already exists in ${db.path}; pass --name to choose another`);
    }
    db.stmt(
      `INSERT INTO updates (name, status, created_at, repo, branch, commit_sha, config_file, settings_json, test_stop_after,
                            retry_of, undo_of, created_by)
       VALUES (?, 'planning', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(u.name, at, u.repo, u.branch, u.commit, u.configFile, JSON.stringify(u.settings), u.testStopAfter,
      u.retryOf ?? null, u.undoOf ?? null, u.createdBy ?? null);
    const insert = db.stmt(
      `INSERT INTO servers (update_name, position, name, host, port, user, type, types, status, ssh_json, path_json)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)`,
    );
    u.servers.forEach((s, i) =>
      insert.run(u.name, i, s.name, s.host, s.port, s.user, s.type, JSON.stringify(s.types ?? [s.type]), reachJson(s),
        s.path ? JSON.stringify(s.path) : null),
    );
    addEvent(db, u.name, null, 'planning', planningMessage(u));
  });
  return getUpdate(db, u.name);
}

/** Change an update's status, checked against the table, in one transaction. */
export function setUpdateStatus(db: Db, name: string, to: UpdateStatus, change: UpdateChange = {}): UpdateRecord {
  return db.tx(() => {
    const current = getUpdate(db, name);
    updateTransition(name, current.status, to);
    const { sql, values } = setClause(change, UPDATE_COLUMNS);
    db.stmt(`UPDATE updates SET status = ?${sql} WHERE name = ?`).run(to, ...values, name);
    if (current.status !== to) {
      addEvent(db, name, null, 'update-status', `${current.status} → ${to}${change.reason ? `: ${change.reason}` : ''}`);
    }
    return getUpdate(db, name);
  });
}

/** Change fields of an update without changing its status. */
export function patchUpdate(db: Db, name: string, change: UpdateChange): void {
  const { sql, values } = setClause(change, UPDATE_COLUMNS);
  if (!sql) return;
  db.stmt(`UPDATE updates SET ${sql.slice(2)} WHERE name = ?`).run(...values, name);
}

/** A batch split from `from`: pending, or paused (never started) with a reason when split from a paused update. */
export function insertBatch(db: Db, from: UpdateRecord, name: string, testStopAfter: number, as?: { status: 'paused'; reason: string }): void {
  db.stmt(
    `INSERT INTO updates (name, status, created_at, repo, branch, commit_sha, batch_of, config_file, settings_json, test_stop_after, reason,
                          retry_of, undo_of, created_by)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  ).run(name, as?.status ?? 'pending', db.iso(), from.repo, from.branch, from.commit, from.name, from.configFile, JSON.stringify(from.settings), testStopAfter, as?.reason ?? null,
    from.retryOf, from.undoOf, from.createdBy);
}

/** The batches split from `name`, and theirs, in creation order. */
export function batchesOf(db: Db, name: string): UpdateRecord[] {
  const out: UpdateRecord[] = [];
  const queue = [name];
  for (let hops = 0; queue.length > 0 && hops < 10_000; hops++) {
    const next = queue.shift()!;
    for (const r of db.stmt('SELECT * FROM updates WHERE batch_of = ? ORDER BY created_at, name').all(next) as Row[]) {
      const u = toUpdate(r);
      out.push(u);
      queue.push(u.name);
    }
  }
  return out;
}

/** The updates `retry` made from `name`, in creation order. */
export function retriesOf(db: Db, name: string): UpdateRecord[] {
  return (db.stmt('SELECT * FROM updates WHERE retry_of = ? ORDER BY created_at, name').all(name) as Row[]).map(toUpdate);
}

/** The updates `undo` made from `name`, in creation order. */
export function undosOf(db: Db, name: string): UpdateRecord[] {
  return (db.stmt('SELECT * FROM updates WHERE undo_of = ? ORDER BY created_at, name').all(name) as Row[]).map(toUpdate);
}

/** The updates planned from this config file (its absolute path, as `auto` identifies "this config's update"), newest first. */
export function updatesOfConfig(db: Db, configFile: string): UpdateRecord[] {
  return (db.stmt('SELECT * FROM updates WHERE config_file = ? ORDER BY created_at DESC, name DESC').all(configFile) as Row[]).map(toUpdate);
}
