/** One executor per update: the lease columns of the updates table. */
import type { Lease } from '../../model/records.js';
import type { LeaseClaim, LeaseResult } from '../port.js';
import type { Db } from './db.js';
import { addEvent } from './events.js';
import type { Row } from '../rows.js';
import { getUpdate } from './updates.js';

/**
 * Take the update's lease unless a live holder has it. `isDead` decides about a holder that
 * is not us; the decision and the write are one transaction, so two processes racing for the
 * same update cannot both win.
 */
export function acquireLease(db: Db, name: string, me: LeaseClaim, isDead: (holder: Lease) => boolean): LeaseResult {
  return db.tx((): LeaseResult => {
    const u = getUpdate(db, name);
    const holder = u.lease;
    if (holder && holder.token !== me.token && !isDead(holder)) return { ok: false, holder };
    const at = db.iso();
    db.stmt(
      `UPDATE updates SET lease_token = ?, lease_pid = ?, lease_host = ?, lease_pid_start = ?, lease_since = ?, lease_heartbeat = ?
       WHERE name = ?`,
    ).run(me.token, me.pid, me.host, me.pidStart, at, at, name);
    if (holder && holder.token !== me.token) {
      addEvent(db, name, null, 'takeover', `took over from pid ${holder.pid} on ${holder.host} (since ${holder.since})`);
    }
    return { ok: true, previous: holder && holder.token !== me.token ? holder : null };
  });
}

/** The token of the update's lease as committed now, or null when nobody holds it. */
export function leaseToken(db: Db, name: string): string | null {
  const row = db.stmt('SELECT lease_token FROM updates WHERE name = ?').get(name) as Row | undefined;
  return (row?.lease_token as string | null | undefined) ?? null;
}

/** Refresh our lease; false when it is no longer ours (someone took it over). */
export function heartbeat(db: Db, name: string, token: string): boolean {
  return db.stmt('UPDATE updates SET lease_heartbeat = ? WHERE name = ? AND lease_token = ?').run(db.iso(), name, token).changes === 1;
}

export function releaseLease(db: Db, name: string, token: string): void {
  db.stmt(
    `UPDATE updates SET lease_token = NULL, lease_pid = NULL, lease_host = NULL, lease_pid_start = NULL,
     lease_since = NULL, lease_heartbeat = NULL WHERE name = ? AND lease_token = ?`,
  ).run(name, token);
}
