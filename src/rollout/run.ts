/**
 * The executor loop of one update (runUpdate): decide → record intent → act over SSH → record
 * the result, one server at a time, until decide() says pause or finish.
 */
import { actor } from '../util/actor.js';
import type { RolloutSettings, ServerSpec } from '../config/types.js';
import { StoreError } from '../errors.js';
import { checkLocalSsh } from '../ssh/transport.js';
import type { ReportStore } from '../store/port.js';
import { specOf, type ServerRecord, type UpdateRecord } from '../model/records.js';
import { suggest } from '../util/suggest.js';
import { Ahead, prepareAheadOf, upcoming } from './ahead.js';
import { budgetOf, countWorked, decide } from './decide.js';
import { acquireLease } from './lease.js';
import { ACTIVE_SERVER, checkRunnable, countsOf, worksOn, type UpdateStatus } from '../model/lifecycle.js';
import { busyStep, testModeLimit, type Waiting } from './rules.js';
import { claimServer, releaseLeftoverLocks } from './claims.js';
import { DONE, type EngineDeps, type RunOptions, type RunResult, type ServerContext, type ServerOutcome, checkNotStopped, checkStillOurs, guarded } from './engine.js';
import { startAhead } from './prepare.js';
import { recoverServer, runServer } from './server-flow.js';
import { endStep } from './bake.js';
import { describeStep, stepProgress, stepsOf } from '../model/steps.js';
import { Guard, tripServer } from './guard.js';
import { WINDOW_POLL_MS, windowStep } from './window.js';
import { freezePauseReason, repoKey } from '../model/freeze.js';
import { exitCodeFor, failedInRun } from './outcome.js';

/**
 * The servers whose connections a start or resume may open (those not finished yet), for the
 * preflight: an identity file of a server long done need not exist any more.
 */
export function serversToReach(servers: readonly ServerRecord[]): ServerSpec[] {
  return servers.filter((s) => ACTIVE_SERVER.has(s.status) || s.lockHeld).map(specOf);
}

/** Throws before anything is written when `mode` cannot apply to the update (exit 2). */
export async function assertRunnable(store: ReportStore, name: string, mode: RunOptions['mode']): Promise<void> {
  checkRunnable(await store.getUpdate(name), mode);
}

/** How long to wait for a server another update is working on (execution.busy_wait). */
export const DEFAULT_BUSY_WAIT_MS = 600_000;

export function busyWaitOf(settings: RolloutSettings): number {
  return settings.execution?.busyWaitMs ?? DEFAULT_BUSY_WAIT_MS;
}


/**
 * Execute one update to its end or its next pause, strictly one server at a time:
 * decide → record intent → act over SSH → record result, until decide() says pause or finish.
 * The plan database failing under it (StoreError: gone for longer than the store waits for it)
 * stops it where it is, as a crash would, with what to run once the database is back.
 */
export async function runUpdate(deps: EngineDeps, name: string, opts: RunOptions): Promise<RunResult> {
  try {
    return await execute(deps, name, opts);
  } catch (e) {
    if (!(e instanceof StoreError)) throw e;
    // Every remote command is recorded before it is sent (ServerRun.execOnce): a write that
    // failed stopped the run before anything it would have recorded was sent.
    throw new StoreError(
      `${e.message}. Update ${name} stopped: nothing was run on a server without being recorded first; once the database ` +
        `answers again, \`${suggest(`${opts.mode} ${name}`)}\` goes on from where it stopped (a server left in flight is re-checked first)`,
    );
  }
}

async function execute(deps: EngineDeps, name: string, opts: RunOptions): Promise<RunResult> {
  const { store, clock, emit } = deps;
  const update = await store.getUpdate(name);
  checkRunnable(update, opts.mode);
  await checkLocalSsh(deps.transport, update.settings.ssh, `cannot ${opts.mode} ${name}`, serversToReach(await store.getServers(name)));
  const lost = new AbortController();
  const lease = await acquireLease(store, name, () => lost.abort(), deps.liveness, () => clock.now());
  const abort = opts.signal ? AbortSignal.any([opts.signal, lost.signal]) : lost.signal;
  // stops what runs ahead of its turn (ahead.ts) when the run ends by an error or a hard stop
  const aheadStop = new AbortController();
  let ahead: Ahead | null = null;
  let guard: Guard | null = null;
  let failed = false;
  try {
    // Re-read under the lease, and write in the same transaction: a pause asked from another
    // terminal in between is then either seen here or lands after, never overwritten.
    const begun = await store.tx(async (t) => {
      const before = await t.getUpdate(name);
      checkRunnable(before, opts.mode);
      const servers = await t.getServers(name);
      const worked = countWorked(servers);
      const { stopAtWorked, stopFromWorked } = testModeLimit(before, worked, opts.stopAfter);
      const keepPause = before.status === 'running';
      const after = await t.setUpdateStatus(name, 'running', {
        startedAt: before.startedAt ?? clock.now().toISOString(),
        stopAtWorked,
        stopFromWorked,
        // A takeover keeps a pause that was asked of the dead executor; a fresh start or resume clears it.
        pauseRequestedAt: keepPause ? before.pauseRequestedAt : null,
        pauseRequestedBy: keepPause ? before.pauseRequestedBy : null,
        reason: null,
      });
      const how = before.status === 'running' ? 'takeover' : before.status === 'paused' ? 'resume' : 'start';
      await t.addEvent(name, null, how, `${how} by ${opts.actor ?? actor()} (pid ${deps.liveness.pid})`, opts.actor ?? actor());
      return { before, after, servers };
    });
    const { servers } = begun;
    let u = begun.after;
    const takeover = begun.before.status === 'running';
    const resumed = begun.before.status === 'paused';
    if (takeover) {
      const from = lease.previous ? `pid ${lease.previous.pid} on ${lease.previous.host}` : 'a process that left no lease';
      await store.addEvent(name, null, 'takeover', `taking over from ${from}`);
      emit({ type: 'takeover', update: name, server: null, message: `taking over update ${name} from ${from}` });
    }
    emit({
      type: 'update-started',
      update: name,
      takeover,
      resumed,
      pending: servers.filter((s) => ACTIVE_SERVER.has(s.status)).length,
      total: servers.length,
      counts: countsOf(servers),
      pausesAt: u.stopAtWorked,
    });
    // A required hook's failure on update-started asks for a pause, seen by the first decide()
    // below: before any server is touched, or, on a takeover, once the server in flight is done.
    await deps.hooks?.beforeRun(name);

    const ctx: ServerContext = { deps, update: u, lease, signal: abort };
    ahead = startAhead(ctx, aheadStop.signal);
    ctx.ahead = ahead;
    // execution.guard: the servers that passed, re-checked in the background while this run lasts
    const guardConfig = u.settings.execution?.guard ?? null;
    guard = guardConfig ? new Guard(ctx, guardConfig) : null;
    // `testMode`: the test-mode limit to keep (a pause for the window stops short of it); else cleared
    // How the run ends: its status and exit code, and the servers that failed in it (a pause after one is exit 5)
    const ended = (status: UpdateStatus, reason: string, after: readonly ServerRecord[]): RunResult => {
      const failed = failedInRun(servers, after);
      return { update: name, status, reason, exitCode: exitCodeFor(status, failed), failedInRun: failed.map((s) => ({ server: s.name, status: s.status })) };
    };
    const pause = async (reason: string, testMode?: Pick<typeof u, 'stopAtWorked' | 'stopFromWorked'>): Promise<RunResult> => {
      await ahead?.close();
      await releaseLeftoverLocks(ctx);
      const limit = { stopAtWorked: testMode?.stopAtWorked ?? null, stopFromWorked: testMode?.stopFromWorked ?? null };
      await guarded(ctx, (t) => t.setUpdateStatus(name, 'paused', { reason, pauseRequestedAt: null, pauseRequestedBy: null, ...limit }), opts);
      const after = await store.getServers(name);
      emit({ type: 'update-finished', update: name, status: 'paused', reason, counts: countsOf(after) });
      return ended('paused', reason, after);
    };
    // execution.steps: the step a server about to start is in, said once when it begins
    let announced = 0;
    const announceStep = async (cur: UpdateRecord, all: readonly ServerRecord[]) => {
      const { total } = stepProgress(all);
      const plan = stepsOf(cur.settings.execution?.steps, total);
      const step = plan[cur.stepsPromoted];
      if (plan.length < 2 || !step || announced === step.index) return;
      announced = step.index;
      await store.addEvent(name, null, 'step', `${describeStep(plan, step.index, total)} begins`);
      emit({ type: 'step-started', update: name, step: step.index, steps: plan.length, through: step.through, total });
    };
    // The server we are waiting for because another update holds it, and since when.
    let waiting: Waiting | null = null;
    // The opening of execution.window being waited for (ms), once announced.
    let windowWait: number | null = null;
    for (;;) {
      // What the turn needs, read at once (each read a round trip on PostgreSQL: side by side,
      // they take one's time): the update, its servers, and a deploy freeze of its repo.
      const [read, all, frozen] = await Promise.all([store.getUpdate(name), store.getServers(name), store.activeFreeze(repoKey(u.repo))]);
      u = read;
      // the lease as the row read says (checkStillOurs without a read of its own)
      ctx.lease.heldPer(u);
      checkNotStopped(ctx, opts);
      ctx.update = u;
      // A server that passed turned unhealthy (the guard): deal with it before the next server.
      const trip = guard?.tripped;
      if (trip) {
        guard!.handled();
        return await pause(await tripServer(ctx, trip, 'guard'));
      }
      // the group's failures are counted only when the update has a budget (a query over all its batches)
      const budget = budgetOf(u) !== null ? await store.budgetUse(u) : undefined;
      const d = decide(u, all, budget);
      let outcome: ServerOutcome = DONE;
      // While this server is worked on: connect to the next one, prepare the next ones (up to
      // one another update is working on: each is looked at in the order upcoming() takes them).
      const workAhead = async (current: ServerRecord) => {
        const count = prepareAheadOf(u);
        const busy = new Set<number>();
        for (const s of upcoming(u, all, current, Math.max(1, count), budget)) {
          if ((await store.busyAccount(s)) === null) continue;
          busy.add(s.id);
          break;
        }
        ahead?.plan(current.id, upcoming(u, all, current, Math.max(1, count), budget, (s) => busy.has(s.id)), count);
      };
      if (d.kind === 'recover') {
        await workAhead(d.server);
        outcome = await recoverServer(ctx, d.server);
      } else if (d.kind === 'run') {
        // a deploy freeze of the repo (`freeze`, from any machine on this store): pause before a new server
        if (frozen) {
          const reason = freezePauseReason(frozen);
          await store.addEvent(name, null, 'frozen', reason, frozen.frozenBy);
          return await pause(reason, u);
        }
        // execution.window: checked before a new server is claimed, never while one is in flight
        const w = windowStep(clock.now(), u.settings.execution?.window, opts.waitForWindow === true, windowWait);
        if (w.kind === 'pause') {
          await store.addEvent(name, null, 'window', w.reason);
          return await pause(w.reason, u);
        }
        if (w.kind === 'wait') {
          if (w.announce) {
            // nothing of ours stays on a server while we wait: connections and prepares ahead closed, their locks released
            await ahead?.close();
            await releaseLeftoverLocks(ctx);
            await store.addEvent(name, null, 'window', w.message);
            const timezone = u.settings.execution!.window!.timezone;
            emit({ type: 'window-waiting', update: name, window: w.window, timezone, opensAt: w.opensAt.toISOString(), waitMs: w.waitMs, message: w.message });
          }
          windowWait = w.opensAt.getTime();
          // until it opens, looking every WINDOW_POLL_MS for a pause asked (then decide() pauses) and at the lease
          for (let left = w.waitMs; left > 0; left = windowWait - clock.now().getTime()) {
            await clock.sleep(Math.min(WINDOW_POLL_MS, left), abort);
            await checkStillOurs(ctx, opts);
            if ((await store.getUpdate(name)).pauseRequestedAt) break;
          }
          continue;
        }
        windowWait = null;
        await announceStep(u, all);
        const claim = await claimServer(ctx, d.server);
        const worked = all.filter(worksOn);
        if (claim.ok) {
          // the next servers looked at while this one starts (its first command waits for no read of theirs)
          const planned = workAhead(claim.server).then(() => null, (e: unknown) => ({ e }));
          outcome = await runServer(ctx, claim.server, d.server.fromCommit, worked.indexOf(d.server) + 1, worked.length);
          const failed = await planned;
          if (failed) throw failed.e;
        } else {
          outcome = claim.busy;
        }
      } else if (d.kind === 'pause') {
        return await pause(d.reason);
      } else if (d.kind === 'step-end') {
        const end = await endStep(ctx, d, { ...opts, resumed, guard });
        if (end.kind === 'pause') return await pause(end.reason);
        continue;
      } else {
        // guard.after_finish: the servers that passed are watched a while more before the end
        if (guard && guard.config.afterFinishMs > 0 && d.status !== 'failure') {
          const late = await guard.watchAfterFinish();
          if (late) {
            guard.handled();
            return await pause(await tripServer(ctx, late, 'guard'));
          }
        }
        await ahead?.close();
        await releaseLeftoverLocks(ctx);
        await guarded(ctx, (t) => t.setUpdateStatus(name, d.status, { endedAt: clock.now().toISOString(), reason: d.reason, pauseRequestedAt: null, pauseRequestedBy: null }), opts);
        const after = await store.getServers(name);
        emit({ type: 'update-finished', update: name, status: d.status, reason: d.reason, counts: countsOf(after) });
        return ended(d.status, d.reason, after);
      }
      if (outcome.kind === 'done') {
        waiting = null;
        continue;
      }
      // Another update holds the server: wait for it (bounded), or pause with its name.
      const limit = busyWaitOf(u.settings);
      const next = busyStep(outcome, waiting, clock.now().getTime(), limit);
      if (next.kind === 'pause') {
        await store.addEvent(name, outcome.server, 'busy', next.why);
        return await pause(next.why);
      }
      waiting = next.waiting;
      if (next.announce) await store.addEvent(name, outcome.server, 'busy', `waiting: ${outcome.reason}`);
      emit({ type: 'server-waiting', update: name, server: outcome.server, holder: outcome.reason, waitedMs: next.waitedMs, limitMs: limit });
      await clock.sleep(next.sleepMs, abort);
    }
  } catch (e) {
    failed = true;
    throw e;
  } finally {
    aheadStop.abort();
    await guard?.close();
    await ahead?.close();
    // after a failure, one of the database too, the lease left behind is taken over by the next run (its process is gone)
    if (failed) await lease.release().catch(() => undefined);
    else await lease.release();
  }
}
