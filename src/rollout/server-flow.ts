/**
 * The work on one server: its own turn (runServer: the re-check under the lock, then what
 * recoveryOf decides from FRESH), a takeover of one left in flight (recoverServer: the same with
 * what was recorded), the walk of its hops (update, restart, verify), and the rollback.
 */
import { AppError, EXIT } from '../errors.js';
import type { ServerRecord } from '../model/records.js';
import { suggest } from '../util/suggest.js';
import { diagnoseServer } from './diagnose.js';
import { phaseValues, rollbackTarget } from './phases.js';
import { finalTarget, hopLabel, type Hop } from '../model/hops.js';
import { FRESH, recoveryOf, type Found, type Recovery } from './recover.js';
import { describeOwner } from './remote-lock.js';
import { STEP_TABLE } from '../model/lifecycle.js';
import { DONE, type ServerContext, type ServerOutcome, checkNotStopped, guarded } from './engine.js';
import { verifyHealth } from './health.js';
import { lockedBy } from './locks.js';
import { ServerRun } from './server-run.js';
import { describeFailure } from './read-commit.js';
import { recoverRestart, restartServer } from './restart-flow.js';

/** One claimed server (`running`, see claimServer): re-check under the lock, update, verify. */
export async function runServer(ctx: ServerContext, s: ServerRecord, plannedFrom: string | null, index: number, total: number): Promise<ServerOutcome> {
  const { emit } = ctx.deps;
  const target = finalTarget(s, ctx.update.commit);
  // its claim was written under the lease a moment ago; every command's journal row asks again
  checkNotStopped(ctx);
  emit({
    type: 'server-started',
    update: s.updateName,
    server: s.name,
    index,
    total,
    host: s.host,
    port: s.port,
    user: s.user,
    fromCommit: plannedFrom,
    toCommit: target,
  });
  const run = new ServerRun(ctx, s);
  try {
    const early = await ctx.ahead?.take(s.id);
    if (early) run.adopt(early);
    const conn = await run.connectRetrying();
    if (!conn.ok) {
      // nothing was run in its turn; a prepare before it may have taken the lock, released then
      const preparedLock = ctx.ahead?.preparedOn(s.id) ?? false;
      await run.finish('unreachable', { fromCommit: plannedFrom, error: `could not connect, nothing was run: ${conn.error}`, lockHeld: preparedLock });
      return DONE;
    }
    const current = await run.recheck('recheck');
    if (current.kind === 'busy') {
      const busy = lockedBy(ctx, s, current.owner);
      await run.yieldServer(plannedFrom, busy.reason);
      return busy;
    }
    // Its turn is recovery from FRESH (nothing has run): at the target → skipped; unreadable →
    // unreachable, untouched (the plan's commit kept); else begin from what was found. A rolling
    // restart is never skipped: restart-flow.ts.
    const found: Found = current.kind === 'ok' ? { ok: true, commit: current.commit } : { ok: false, error: current.error };
    if (run.settings.restartOnly) await restartServer(run, found, plannedFrom);
    else await carryOut(run, recoveryOf(FRESH, run.hop, target, found, 'turn'), plannedFrom);
    return DONE;
  } finally {
    run.close();
  }
}

/**
 * Take over a server left `running` by an executor that died: read what is really on it, then
 * do what recoveryOf (rollout/recover.ts) decides from that and what was recorded: finish the hop
 * it was on (at the hop's commit: restart if needed, verify) and walk the rest of its path, run
 * the hop again (still at the commit before it), or roll the hop back (anything else, or it died
 * while rolling back).
 */
export async function recoverServer(ctx: ServerContext, server: ServerRecord): Promise<ServerOutcome> {
  const { emit, store } = ctx.deps;
  const run = new ServerRun(ctx, server);
  // the hop it was on (the only one without stepping stones): its (from, to) is all that is compared
  const hop = run.hop;
  emit({ type: 'takeover', update: server.updateName, server: server.name, message: `re-checking ${server.name}, left in step ${server.step}` });
  await store.addEvent(server.updateName, server.name, 'takeover', `re-checking; it was in step ${server.step}${hop.count > 1 ? ` of ${hopLabel(hop)}` : ''}`);
  try {
    const early = await ctx.ahead?.take(server.id);
    if (early) run.adopt(early);
    const conn = await run.connectRetrying();
    if (!conn.ok) {
      throw new AppError(
        `cannot reach ${server.name} to re-check it after a crash (${conn.error}); it stays running: ` +
          `run \`${suggest(`start ${server.updateName}`)}\` again when it is reachable, or, if it will not come back, ` +
          `end the update with \`${suggest(`cancel ${server.updateName}`)}\` (the server is then marked fatal, for a person)`,
        EXIT.failure,
      );
    }
    // Before the command that takes (or re-takes) the lock: whatever happens next, it is released.
    await guarded(ctx, (t) => t.setLockHeld(server.id, true));
    run.server = { ...run.server, lockHeld: true };
    const found = await run.recheck('takeover');
    if (found.kind === 'busy') {
      const busy = lockedBy(ctx, server, found.owner);
      if (server.fromCommit === null) {
        // No update command had run: it is still the plan's, and waits for its turn.
        await run.yieldServer(null, busy.reason);
        return busy;
      }
      throw new AppError(
        `${server.name} was in flight in ${server.updateName} (step ${server.step}) when its executor died, and is now locked by ` +
          `${describeOwner(found.owner)}: somebody else is working on it. It stays running here; once they are done, ` +
          `\`${suggest(`start ${server.updateName}`)}\` re-checks it`,
        EXIT.failure,
      );
    }
    const v: Found = found.kind === 'ok' ? { ok: true, commit: found.commit } : { ok: false, error: found.error };
    if (run.settings.restartOnly) await recoverRestart(run, v);
    else await carryOut(run, recoveryOf(server, hop, finalTarget(server, ctx.update.commit), v));
    return DONE;
  } finally {
    run.close();
  }
}

/**
 * A server that passed, then turned unhealthy (the guard, a bake) and is rolled back
 * (execution.guard.rollback): already `running` in step `diagnose` (tripServer wrote it), it is
 * connected to, locked, and rolled back and verified as any failure is. Not reachable, or held by
 * another: `failed`, not rolled back, saying why.
 */
export async function rollBackPassed(ctx: ServerContext, server: ServerRecord, reason: string): Promise<void> {
  const run = new ServerRun(ctx, server);
  try {
    const conn = await run.connectRetrying();
    if (!conn.ok) return await run.finish('failed', { error: `${reason}; not rolled back: could not connect (${conn.error})` });
    // Before the command that takes the lock: whatever happens next, it is released.
    await guarded(ctx, (t) => t.setLockHeld(server.id, true));
    run.server = { ...run.server, lockHeld: true };
    const found = await run.recheck('recheck');
    if (found.kind === 'busy') return await run.finish('failed', { error: `${reason}; not rolled back: ${lockedBy(ctx, server, found.owner).reason}` });
    await rollbackServer(run, reason);
  } finally {
    run.close();
  }
}

/**
 * Do what recoveryOf decided, for a server's own turn (from FRESH: `plannedFrom` is the commit the
 * plan probed, kept on a server left untouched) or a takeover.
 */
export async function carryOut(run: ServerRun, next: Recovery, plannedFrom?: string | null): Promise<void> {
  switch (next.kind) {
    case 'rollback':
      return rollbackServer(run, next.reason, next.diagnosed);
    case 'unreachable':
      return run.finish('unreachable', { error: next.reason, ...(plannedFrom !== undefined ? { fromCommit: plannedFrom } : {}) });
    case 'skipped':
      return run.finish('skipped', { fromCommit: next.commit });
    case 'begin':
      // Committed before any update command runs: a takeover needs to know what to roll back to.
      await run.setStep('update', { fromCommit: next.from, hop: 0 });
      return updateAndVerify(run, { skipUpdate: false });
    case 'finish-hop':
      return updateAndVerify(run, { skipUpdate: next.skipUpdate });
    case 'redo-hop':
      await run.setStep('update');
      return updateAndVerify(run, { skipUpdate: false });
  }
}

/**
 * Walk the server's hops from the one it is on: each a full update (update, restart, verify at
 * that hop's commit); the next hop's index is committed before its first command. On any failure,
 * roll the hop back. `skipUpdate`: the current hop's commit is already on the server (takeover).
 */
export async function updateAndVerify(run: ServerRun, opts: { skipUpdate: boolean }): Promise<void> {
  let skipUpdate = opts.skipUpdate;
  for (;;) {
    const hop = run.hop;
    if (!(await walkHop(run, hop, skipUpdate))) return;
    if (hop.index + 1 >= hop.count) return run.finish('success', { error: null });
    await run.ctx.deps.store.addEvent(run.server.updateName, run.server.name, 'hop', `${hopLabel(hop)} verified; on to the next`);
    await run.setStep('update', { hop: hop.index + 1 });
    skipUpdate = false;
  }
}

/** One hop: update (unless already done), restart and verify; false when it failed (and was rolled back). */
export async function walkHop(run: ServerRun, hop: Hop, skipUpdate: boolean): Promise<boolean> {
  const { agent, restart } = run.settings;
  const target = hop.to;
  const fail = async (reason: string) => {
    await rollbackServer(run, reason);
    return false;
  };
  const values = phaseValues(run.settings, 'update', { target, from: hop.from })!;
  if (!skipUpdate) {
    for (const command of agent.update) {
      const r = await run.execTemplate('update', command, values);
      if (r.code !== 0) return fail(`update command ${describeFailure(r)}`);
    }
    const v = await run.version('update');
    if (!v.ok) return fail(`after updating, ${v.error}`);
    if (v.commit !== target) {
      return fail(`after updating, version_command prints ${v.commit.slice(0, 12)}, not the target ${target.slice(0, 12)}`);
    }
  }
  // a takeover of a server whose restarts ran (step verify) only verifies it
  if (!(run.server.step !== null && STEP_TABLE[run.server.step].restarted)) {
    await run.setStep('restart');
    for (const name of restart) {
      const r = await run.execTemplate('restart', agent.restart[name]!, values);
      if (r.code !== 0) return fail(`restart ${name} ${describeFailure(r)}`);
    }
    await run.setStep('verify');
  }
  const health = await verifyHealth(run, 'verify', hop);
  if (health.ok) return true;
  return fail(health.error);
}

/**
 * Put the commit before the hop back and verify it: rolled-back, or fatal. The first hop goes
 * back to rollback.commit or the server's previous commit; a later one to the stepping stone the
 * server was verified at, and the reason says where it now stands. First agent.diagnose
 * (diagnose.ts), unless `diagnosed` (a takeover of a server past it).
 */
export async function rollbackServer(run: ServerRun, failure: string, diagnosed = false): Promise<void> {
  const { rollback, agent, restart } = run.settings;
  const hop = run.hop;
  const label = hopLabel(hop);
  // A takeover passes the reason recorded when the rollback began, which already names the hop.
  const reason = label && !failure.startsWith(label) ? `${label}: ${failure}` : failure;
  if (!diagnosed) await diagnoseServer(run, reason);
  if (!rollback.enabled) return run.finish('failed', { error: reason });
  const to = rollbackTarget(run.settings, hop.from, hop.stone);
  if (!to) {
    return run.finish('fatal', { error: `${reason}; no previous commit is known to roll back to (set rollback.commit)` });
  }
  await run.setStep('rollback', { error: reason });
  const values = phaseValues(run.settings, 'rollback', { target: hop.to, from: hop.from, stone: hop.stone })!;
  const fatal = (why: string) => run.finish('fatal', { error: `${reason}; rollback to ${to.slice(0, 12)} failed: ${why}` });
  for (const command of agent.update) {
    const r = await run.execTemplate('rollback', command, values);
    if (r.code !== 0) return fatal(`update command ${describeFailure(r)}`);
  }
  const v = await run.version('rollback');
  if (!v.ok) return fatal(v.error);
  if (v.commit !== to) return fatal(`version_command prints ${v.commit.slice(0, 12)}`);
  for (const name of restart) {
    const r = await run.execTemplate('rollback', agent.restart[name]!, values);
    if (r.code !== 0) return fatal(`restart ${name} ${describeFailure(r)}`);
  }
  await run.setStep('verify-rollback');
  const health = await verifyHealth(run, 'verify-rollback', hop);
  if (!health.ok) return fatal(health.error);
  const stands = hop.stone
    ? `; rolled back to the stepping stone ${hop.fromVersion ?? to.slice(0, 12)} (${to.slice(0, 12)}), verified: it runs ${hop.fromVersion ?? 'that'} now, not the target`
    : '';
  return run.finish('rolled-back', { error: `${reason}${stands}` });
}
