/**
 * Whose lock is on a server, and may it be cleared: judgeLock (only when its holder is proven
 * gone), lockedBy (why another's lock keeps us off a server, and what the operator can do).
 */
import type { ServerRecord } from '../model/records.js';
import { suggest } from '../util/suggest.js';
import { holderIsDead } from './lease.js';
import { describeOwner, parseOwner } from './remote-lock.js';
import type { ServerContext, ServerOutcome } from './engine.js';

export function accountOf(s: Pick<ServerRecord, 'user' | 'host' | 'port'>): string {
  return `${s.user}@${s.host}:${s.port}`;
}

/**
 * Whether the lock another holds on a server may be cleared: only when its holder is proven
 * gone, never because the database shows nobody on the account (the same machine may be in
 * the plan under two names, a prepare holds locks of servers still pending, a copy of the
 * database runs the same update).
 * - another database's lock: never (`unlock` is for a person who checked);
 * - on this host: its process is gone (pid and start time), whatever the database says; a live
 *   one is busy, even a stopped one (but this update's lock from this very process is an
 *   earlier executor's, ended: the lease this one holds excludes it);
 * - on another host, nothing there can be looked at: this update's own lock is stale, since this
 *   executor holds the update's lease (the holder lost it); another update's is stale when that
 *   update's lease is released or dead by its heartbeat. A wrong guess is harmless: the holder's
 *   next command is fenced, and one in flight is waited for before anything runs.
 */
export async function judgeLock(ctx: ServerContext, holder: ReturnType<typeof parseOwner>): Promise<'stale' | 'busy'> {
  const { store, clock, liveness } = ctx.deps;
  if (holder.db !== store.dbId || !holder.update) return 'busy';
  if (holder.token !== undefined && holder.token === ctx.lease.token) return 'busy';
  if (holder.host === oneLine(liveness.host)) {
    if (holder.pid === undefined) return 'busy';
    // an earlier executor of this update in this very process: its lease is ours now, so it has ended
    if (holder.pid === liveness.pid && holder.update === ctx.update.name) return 'stale';
    return liveness.isAlive(holder.pid, holder.pidStart ?? null) ? 'busy' : 'stale';
  }
  if (holder.update === ctx.update.name) return 'stale';
  const u = await store.findUpdate(holder.update);
  if (!u) return 'busy';
  return u.lease === null || holderIsDead(u.lease, clock.now(), liveness) ? 'stale' : 'busy';
}

/** A field of the lock file on one line (no control characters). */
// eslint-disable-next-line no-control-regex
export const oneLine = (s: string) => s.replace(/[\x00-\x1f\x7f]/g, '?');

/** Why another update's lock on a server keeps us off it, and what the operator can do. */
export function lockedBy(ctx: ServerContext, s: ServerRecord, owner: ReturnType<typeof parseOwner>): Extract<ServerOutcome, { kind: 'busy' }> {
  const ownDb = owner.db === ctx.deps.store.dbId;
  return {
    kind: 'busy',
    serverId: s.id,
    server: s.name,
    holder: owner.raw,
    dead: false,
    remote: true,
    reason:
      `server ${s.name} (${accountOf(s)}) is locked by ${describeOwner(owner)}` +
      (!ownDb ? ', from another plan database' : owner.update === s.updateName ? ', another executor of this same update (a copy of this plan database?), still alive' : '') +
      `; if that executor is gone, clear the lock with \`${suggest(`unlock ${s.name} --yes`)}\``,
  };
}
