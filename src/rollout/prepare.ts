/**
 * What runs ahead of a server's turn, for one run: connections opened early and agent.prepare on
 * the next servers (the Ahead of ahead.ts, given these two actions).
 */
import { AppError } from '../errors.js';
import type { Session } from '../ssh/transport.js';
import { specOf, type ServerRecord } from '../model/records.js';
import { Ahead } from './ahead.js';
import { phaseValues } from './phases.js';
import { acquireScript, describeOwner, parseOwner, splitLockOutput } from './remote-lock.js';
import { type ServerContext, checkStillOurs, guarded } from './engine.js';
import { ServerRun, describeInFlight } from './server-run.js';
import { describeFailure } from './read-commit.js';

/**
 * What runs ahead of the servers' turns, for one run of `ctx`'s update: connections opened
 * early, agent.prepare on the next servers. `stop` ends it (with the run's own signal).
 */
export function startAhead(ctx: ServerContext, stop: AbortSignal): Ahead {
  const { store, transport } = ctx.deps;
  const signal = AbortSignal.any([ctx.signal, stop]);
  const aheadCtx: ServerContext = {
    deps: ctx.deps,
    lease: ctx.lease,
    signal,
    get update() {
      return ctx.update;
    },
  };
  return new Ahead({
    connect: async (server) => {
      await checkStillOurs(aheadCtx);
      const session = await transport.connect(specOf(server), ctx.update.settings.ssh, signal);
      // The command loop too (ssh/channel.ts): it only waits for commands, and starting it costs
      // a session, its handshake and, often, a delayed ACK (about 40 ms) off the critical path.
      await session.warm?.(signal).catch(() => undefined);
      await store.addEvent(server.updateName, server.name, 'connection', 'connected ahead of its turn (nothing run)');
      return session;
    },
    prepare: (server, session) => prepareServer(aheadCtx, server, session),
  });
}

/**
 * agent.prepare on a server ahead of its turn (it is `pending`, and stays so), under our lock:
 * taken first (the server's flag set before, as for a claim), skipped when somebody else holds
 * it. Every command is journalled in phase `prepare`; the first that fails ends the prepare and
 * the server is updated normally on its turn. The lock stays until then (its re-check re-enters
 * it), or is released when the update pauses or ends first (releaseLeftoverLocks).
 */
export async function prepareServer(ctx: ServerContext, server: ServerRecord, session: Session): Promise<Session | null> {
  const { store } = ctx.deps;
  const run = new ServerRun(ctx, server);
  run.adopt(session);
  const note = (message: string) => store.addEvent(server.updateName, server.name, 'prepare', message);
  try {
    const other = await store.busyAccount(server);
    if (other) {
      await note(`prepare skipped: the account is in flight in update ${other.update}`);
      return run.detach();
    }
    await guarded(ctx, (t) => t.setLockHeld(server.id, true));
    run.server = { ...run.server, lockHeld: true };
    const r = await run.exec('prepare', acquireScript(run.lockOwner()), undefined, '(take the agent-update lock)', { lockScript: true });
    const { verdict } = splitLockOutput(r.stdout);
    if (verdict?.kind === 'held' || verdict?.kind === 'error') {
      // certainly not taken: the flag goes (a lost reply keeps it, and the release sorts it out)
      await guarded(ctx, (t) => t.setLockHeld(server.id, false));
      await note(`prepare skipped: ${verdict.kind === 'held' ? `locked by ${describeOwner(parseOwner(verdict.owner))}` : verdict.message}`);
      return run.detach();
    }
    if (verdict?.kind === 'inflight') {
      // the lock is ours now; the server's turn waits for that command before anything runs
      await note(`prepare skipped: ${describeInFlight(verdict.inflight, ctx.lease.token)} is still running on it`);
      return run.detach();
    }
    if (verdict?.kind !== 'acquired' && verdict?.kind !== 'reentered' && verdict?.kind !== 'cleared-stale') {
      await note(`prepare skipped: the lock could not be taken (${describeFailure(r)})`);
      return run.detach();
    }
    // a server walking stepping stones prepares for its first hop
    const values = phaseValues(run.settings, 'prepare', { target: server.path?.[0]?.commit ?? ctx.update.commit, from: server.fromCommit })!;
    for (const command of ctx.update.settings.agent.prepare ?? []) {
      const c = await run.execTemplate('prepare', command, values);
      if (c.code !== 0) {
        await note(`prepare failed (${describeFailure(c)}); the server is updated normally on its turn`);
        return run.detach();
      }
    }
    await note('prepared ahead of its turn');
    return run.detach();
  } catch (e) {
    // the lease was lost or the run stopped: nothing more runs here; the lock flag stays for whoever continues
    run.close();
    if (e instanceof AppError) return null;
    throw e;
  }
}
