/** The journal: one row per remote command, begun (committed) before it runs, ended once its result is known. */
import type { ServerRecord, JournalEntry } from '../../model/records.js';
import type { CommandResult } from '../port.js';
import type { Db } from './db.js';
import { cutOutput, toJournalEntry, type Row } from '../rows.js';

/** Record that a command is about to run; committed before it runs. */
export function beginCommand(db: Db, server: Pick<ServerRecord, 'updateName' | 'id'>, phase: string, command: string): number {
  const info = db.stmt('INSERT INTO steps (update_name, server_id, phase, command, started_at) VALUES (?, ?, ?, ?, ?)')
    .run(server.updateName, server.id, phase, command, db.iso());
  return Number(info.lastInsertRowid);
}

export function beginCommandIfLeased(db: Db, server: Pick<ServerRecord, 'updateName' | 'id'>, phase: string, command: string, token: string): number | null {
  const info = db.stmt(
    `INSERT INTO steps (update_name, server_id, phase, command, started_at)
     SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM updates WHERE name = ? AND lease_token = ?)`,
  ).run(server.updateName, server.id, phase, command, db.iso(), server.updateName, token);
  return info.changes === 1 ? Number(info.lastInsertRowid) : null;
}

/** Record a command's result; committed as soon as it is known. */
export function endCommand(db: Db, id: number, r: CommandResult): void {
  db.stmt('UPDATE steps SET ended_at = ?, exit_code = ?, stdout = ?, stderr = ?, error = ? WHERE id = ?')
    .run(db.iso(), r.code, r.stdout, r.stderr, r.error, id);
}

/**
 * Cut a recorded command's output down to its first and last `keep` characters each, saying how
 * much was left out: health attempts between the first and the last are kept this short, so a
 * long verify does not store megabytes per server.
 */
export function summarizeCommand(db: Db, id: number, keep: number): void {
  const row = db.stmt('SELECT stdout, stderr FROM steps WHERE id = ?').get(id) as Row | undefined;
  if (!row) return;
  const stdout = cutOutput(row.stdout as string | null, keep);
  const stderr = cutOutput(row.stderr as string | null, keep);
  if (stdout !== row.stdout || stderr !== row.stderr) {
    db.stmt('UPDATE steps SET stdout = ?, stderr = ? WHERE id = ?').run(stdout, stderr, id);
  }
}

/** An update's journal (one server's when named), server by server in plan order. */
export function getJournal(db: Db, updateName: string, serverName?: string): JournalEntry[] {
  const sql = `SELECT steps.*, servers.name AS server_name FROM steps JOIN servers ON servers.id = steps.server_id
               WHERE steps.update_name = ? ${serverName !== undefined ? 'AND servers.name = ?' : ''}
               ORDER BY servers.position, steps.id`;
  const args = serverName !== undefined ? [updateName, serverName] : [updateName];
  return (db.stmt(sql).all(...args) as Row[]).map(toJournalEntry);
}
