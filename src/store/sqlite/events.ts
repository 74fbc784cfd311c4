/** The event log: every status change, pause request, split, takeover, wait, unlock and drop, for `logs`. */
import type { EventRecord } from '../../model/records.js';
import type { RunEvent } from '../port.js';
import type { Db } from './db.js';
import { toEvent, type Row } from '../rows.js';

/** `actor`: the person (`user@host`) whose command this records; null for the engine's own. */
export function addEvent(db: Db, updateName: string, serverName: string | null, kind: string, message: string, actor: string | null = null): void {
  db.stmt('INSERT INTO events (update_name, server_name, at, kind, message, actor) VALUES (?, ?, ?, ?, ?, ?)')
    .run(updateName, serverName, db.iso(), kind, message, actor);
}

export function getEvents(db: Db, updateName: string): EventRecord[] {
  return (db.stmt('SELECT * FROM events WHERE update_name = ? ORDER BY id').all(updateName) as Row[]).map(toEvent);
}

/** The runs of an update by a person (`start`, `resume`, `takeover` events with their actor), in order. */
export function runEvents(db: Db, updateName: string): RunEvent[] {
  return db.stmt(
    "SELECT at, kind, actor FROM events WHERE update_name = ? AND kind IN ('start', 'resume', 'takeover') AND actor IS NOT NULL ORDER BY id",
  ).all(updateName) as RunEvent[];
}
