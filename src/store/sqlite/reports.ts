/** Reads over many rows: each update's counts, the failure budget, overlapping updates, `history`. */
import { ACTIVE_SERVER, ACTIVE_UPDATE, BUDGETED_SERVER, HISTORY_SERVER, sqlList } from '../../model/lifecycle.js';
import type { ServerRecord, UpdateRecord } from '../../model/records.js';
import type { BudgetUse, Overlap } from '../port.js';
import type { Db } from './db.js';
import { countsOfRows, overlapsOf, toServer, type Row } from '../rows.js';
import { findUpdate } from './updates.js';

/**
 * Each update's servers counted by status (`total` and one key per status present, as
 * countsOf makes them), in one query: what `status` lists without reading every server.
 */
export function countsByUpdate(db: Db): Map<string, Record<string, number>> {
  return countsOfRows(db.stmt('SELECT update_name, status, COUNT(*) AS n FROM servers GROUP BY update_name, status ORDER BY update_name, MIN(position)').all() as Row[]);
}

/** The failure budget's use for the group of `update` (itself and the batches split from it, or its original's). */
export function budgetUse(db: Db, update: UpdateRecord): BudgetUse {
  // The root of the split: a batch split again names its batch as batchOf.
  let group = update.name;
  for (let next = update.batchOf, hops = 0; next !== null && hops < 100; hops++) {
    group = next;
    next = findUpdate(db, next)?.batchOf ?? null;
  }
  const updates = db.stmt('SELECT name FROM updates WHERE name = ? OR batch_of = ? ORDER BY created_at, name').pluck().all(group, group) as string[];
  const row = db.stmt(
    `SELECT COUNT(*) AS total, COALESCE(SUM(status IN (${sqlList(BUDGETED_SERVER)})), 0) AS used FROM servers
     WHERE update_name IN (SELECT name FROM updates WHERE name = ? OR batch_of = ?)`,
  ).get(group, group) as { total: number; used: number };
  return { used: row.used, total: row.total, updates };
}

/**
 * The servers of other updates that are not finished (their update is planning, pending,
 * running or paused, the server pending or running) on any of these accounts.
 */
export function overlappingUpdates(db: Db, updateName: string): Overlap[] {
  const rows = db.stmt(
    `SELECT other.update_name AS update_name, updates.status AS status, mine.name AS name
     FROM servers AS mine
     JOIN servers AS other ON other.port = mine.port AND other.user = mine.user AND other.host = mine.host COLLATE NOCASE
                          AND other.update_name != mine.update_name AND other.status IN (${sqlList(ACTIVE_SERVER)})
     JOIN updates ON updates.name = other.update_name AND updates.status IN (${sqlList(ACTIVE_UPDATE)})
     WHERE mine.update_name = ? AND mine.status IN (${sqlList(ACTIVE_SERVER)})
     ORDER BY updates.created_at, other.update_name, mine.position`,
  ).all(updateName) as Row[];
  return overlapsOf(rows);
}

/**
 * `history`: the server rows of every update (batches included) in one of `statuses`, those
 * named `server` only when given (a name, or `user@host:port`). A full read of the servers
 * table, as a report over the whole database is.
 */
export function historyServers(db: Db, server?: string): ServerRecord[] {
  const rows = `SELECT * FROM servers WHERE status IN (${sqlList(HISTORY_SERVER)})`;
  const account = server === undefined ? null : /^([^@\s]+)@(.+):(\d+)$/.exec(server);
  const found =
    server === undefined
      ? db.stmt(`${rows} ORDER BY id`).all()
      : account
        ? db.stmt(`${rows} AND user = ? AND host = ? COLLATE NOCASE AND port = ? ORDER BY id`).all(account[1], account[2], Number(account[3]))
        : db.stmt(`${rows} AND name = ? ORDER BY id`).all(server);
  return (found as Row[]).map(toServer);
}

/** Every server name in the database, for a did-you-mean. */
export function serverNames(db: Db): string[] {
  return db.stmt('SELECT DISTINCT name FROM servers ORDER BY name').pluck().all() as string[];
}

/** Whether any server row (any status) is named `server`, or is on the account `user@host:port`. */
export function hasServer(db: Db, server: string): boolean {
  const account = /^([^@\s]+)@(.+):(\d+)$/.exec(server);
  return account
    ? db.stmt('SELECT 1 FROM servers WHERE user = ? AND host = ? COLLATE NOCASE AND port = ? LIMIT 1').get(account[1], account[2], Number(account[3])) !== undefined
    : db.stmt('SELECT 1 FROM servers WHERE name = ? LIMIT 1').get(server) !== undefined;
}
