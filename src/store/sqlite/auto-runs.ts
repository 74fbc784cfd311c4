/** `auto` runs (table auto_runs): an open row is a run's claim on its config, an ended one its audit record. */
import type { AutoRun } from '../../model/records.js';
import type { UpdateStatus } from '../../model/lifecycle.js';
import type { NewAutoRun } from '../port.js';
import type { Db } from './db.js';
import { toAutoRun, type Row } from '../rows.js';
import { getUpdate } from './updates.js';

/** The `auto` runs of this config not ended yet (claims), newest first. */
export function openAutoRuns(db: Db, configFile: string): AutoRun[] {
  return (db.stmt('SELECT * FROM auto_runs WHERE config_file = ? AND ended_at IS NULL ORDER BY id DESC').all(configFile) as Row[]).map(toAutoRun);
}

/** Every `auto` run recorded (of one config when given), oldest first: the audit of what each found. */
export function autoRuns(db: Db, configFile?: string): AutoRun[] {
  const rows = configFile === undefined
    ? db.stmt('SELECT * FROM auto_runs ORDER BY id').all()
    : db.stmt('SELECT * FROM auto_runs WHERE config_file = ? ORDER BY id').all(configFile);
  return (rows as Row[]).map(toAutoRun);
}

/** Record an `auto` run as begun (its claim); the caller's transaction makes the check and this one write. */
export function beginAutoRun(db: Db, r: NewAutoRun): number {
  const at = db.iso();
  const info = db.stmt(
    `INSERT INTO auto_runs (config_file, started_at, actor, pid, host, pid_start, heartbeat, commit_sha) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
  ).run(r.configFile, at, r.actor, r.pid, r.host, r.pidStart, at, r.commit);
  return Number(info.lastInsertRowid);
}

/** Refresh an open `auto` run's heartbeat (its claim is judged like a lease). */
export function autoHeartbeat(db: Db, id: number): void {
  db.stmt('UPDATE auto_runs SET heartbeat = ? WHERE id = ? AND ended_at IS NULL').run(db.iso(), id);
}

/** Link the update an `auto` run made or started to it (while it is still open). */
export function setAutoRunUpdate(db: Db, id: number, updateName: string): void {
  db.stmt('UPDATE auto_runs SET update_name = ? WHERE id = ?').run(updateName, id);
}

/** End an `auto` run with what it came to; its row stays as the audit record. */
export function endAutoRun(db: Db, id: number, outcome: string, message: string, updateName?: string | null): void {
  const at = db.iso();
  if (updateName === undefined) {
    db.stmt('UPDATE auto_runs SET ended_at = ?, outcome = ?, message = ? WHERE id = ? AND ended_at IS NULL').run(at, outcome, message, id);
  } else {
    db.stmt('UPDATE auto_runs SET ended_at = ?, outcome = ?, message = ?, update_name = ? WHERE id = ? AND ended_at IS NULL').run(at, outcome, message, updateName, id);
  }
}

/**
 * Remove an update that never started (`planning`, or one of `statuses`) and everything recorded
 * for it (its probes' journal, its events), in one transaction: `auto` found nothing to do, a
 * plan was interrupted, or `forget`.
 */
export function discardPlan(db: Db, name: string, statuses: readonly UpdateStatus[] = ['planning']): void {
  db.tx(() => {
    const u = getUpdate(db, name);
    if (!statuses.includes(u.status)) throw new Error(`discardPlan: update ${name} is ${u.status}, not ${statuses.join(' or ')}`);
    if (u.startedAt !== null) throw new Error(`discardPlan: update ${name} was started`);
    db.stmt('DELETE FROM steps WHERE update_name = ?').run(name);
    db.stmt('DELETE FROM events WHERE update_name = ?').run(name);
    db.stmt('DELETE FROM servers WHERE update_name = ?').run(name);
    db.stmt('DELETE FROM updates WHERE name = ?').run(name);
  });
}
