/**
 * Who may work on a server now: claimServer (one transaction: no other update of this database
 * has the account in flight, then it is ours and `running`), and the release of the locks a crash
 * or a prepare left behind.
 */
import type { ServerRecord } from '../model/records.js';
import { suggest } from '../util/suggest.js';
import { finalTarget } from '../model/hops.js';
import { describeHolder, holderIsDead } from './lease.js';
import { type ServerContext, type ServerOutcome, guarded } from './engine.js';
import { accountOf } from './locks.js';
import { ServerRun } from './server-run.js';

/**
 * Mark the next server `running` unless another update of this database is working on the same
 * account (`user@host:port`, however it is named) right now: the check and the write are one
 * transaction, so two executors (in one process or several) never both have it.
 */
export function claimServer(ctx: ServerContext, server: ServerRecord): Promise<{ ok: true; server: ServerRecord } | { ok: false; busy: Extract<ServerOutcome, { kind: 'busy' }> }> {
  const { clock, liveness } = ctx.deps;
  return guarded(ctx, async (t) => {
    const other = await t.busyAccount(server);
    if (other) {
      const alive = other.lease !== null && !holderIsDead(other.lease, clock.now(), liveness);
      const where = `server ${server.name} (${accountOf(server)}) is in flight in update ${other.update} (as ${other.server}, step ${other.step ?? '?'})`;
      return {
        ok: false as const,
        busy: {
          kind: 'busy' as const,
          serverId: server.id,
          server: server.name,
          holder: `${other.update}/${other.server}`,
          remote: false,
          dead: !alive,
          reason: alive
            ? `${where}, executed by ${describeHolder(other.lease!)}`
            : `${where}, whose executor is gone: take it over first with \`${suggest(`start ${other.update}`)}\` ` +
              `(or end it with \`${suggest(`cancel ${other.update}`)}\`), then \`${suggest(`resume ${ctx.update.name}`)}\``,
        },
      };
    }
    const claimed = await t.setServerStatus(server.id, 'running', {
      step: 'update',
      startedAt: clock.now().toISOString(),
      toCommit: finalTarget(server, ctx.update.commit),
      hop: null,
      // cleared until the re-check reads it again: a takeover that finds it null knows no
      // update command has run, whatever the server was at when the plan was made.
      fromCommit: null,
      error: null,
      // before the command that takes the lock: a crash after it must still release it
      lockHeld: true,
    });
    return { ok: true as const, server: claimed };
  });
}

/**
 * Release the locks a crash (or a lost reply) left on this update's finished servers, and those
 * a prepare took on servers whose turn has not come (`pending`).
 */
export async function releaseLeftoverLocks(ctx: ServerContext): Promise<void> {
  for (const s of await ctx.deps.store.getServers(ctx.update.name)) {
    if (!s.lockHeld || s.status === 'running') continue;
    const run = new ServerRun(ctx, s);
    try {
      if ((await run.connect()).ok) await run.releaseLock();
    } finally {
      run.close();
    }
  }
}
