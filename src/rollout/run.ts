import { actor } from '../util/actor.js';
import type { RolloutSettings, ServerSpec } from '../config/types.js';
import type { Clock } from '../clock.js';
import type { Liveness } from '../liveness.js';
import { AppError, BusyError, EXIT, InterruptedError, TransitionError } from '../errors.js';
import { checkLocalSsh, connectionGone, TransportError, type Session, type Transport, type ExecResult } from '../ssh/transport.js';
import type { EngineStore, ReportStore } from '../store/port.js';
import { specOf, type ServerRecord, type UpdateRecord } from '../model/records.js';
import { expandCommand, expandText, type PlaceholderValues } from '../util/shell.js';
import { isFullCommit } from '../util/commit.js';
import { formatDuration } from '../util/duration.js';
import { suggest } from '../util/suggest.js';
import { Ahead, prepareAheadOf, upcoming } from './ahead.js';
import { diagnoseServer } from './diagnose.js';
import { finalTarget, hopLabel, hopOf, phaseValues, rollbackTarget, type HopView } from './phases.js';
import { FRESH, recoveryOf, type Found, type Recovery } from './recover.js';
import { budgetOf, countWorked, decide } from './decide.js';
import type { EventSink } from './events.js';
import { acquireLease, describeHolder, describeLiveHolder, holderIsDead, type HeldLease } from './lease.js';
import {
  acquireScript,
  clearScript,
  describeOwner,
  notRunOf,
  parseOwner,
  releaseScript,
  splitLockOutput,
  waitScript,
  type InFlight,
  type LockOwner,
} from './remote-lock.js';
import { ACTIVE_SERVER, allows, checkRunnable, countsOf, itIs, RETRIED_AFTER_LOST, STEP_TABLE, whatYouCanDo, worksOn, type JournalPhase, type ServerStatus, type ServerStep, type UpdateStatus } from '../model/lifecycle.js';
import { busyStep, testModeLimit, type Busy, type Waiting } from './rules.js';

export interface EngineDeps {
  store: EngineStore;
  transport: Transport;
  clock: Clock;
  /** this process and the others of this host: the lease, the locks' owners, dead-holder detection */
  liveness: Liveness;
  emit: EventSink;
}

export interface RunOptions {
  /** `start` runs a pending update (or takes over a running one); `resume` a paused one (or takes over). */
  mode: 'start' | 'resume';
  /** pause after this many more servers finished with work (test mode); 0 = no limit */
  stopAfter?: number;
  /** aborting it stops at once: remote commands are abandoned, the server in flight stays recorded */
  signal?: AbortSignal;
  /** who runs it (`user@host`), for the audit trail; default this process's user */
  actor?: string;
}

export interface RunResult {
  update: string;
  status: UpdateStatus;
  reason: string;
  exitCode: number;
}


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

/** ssh.reconnect_for when an update was planned before it existed. */
export const DEFAULT_RECONNECT_FOR_MS = 30_000;
/** The waits between tries of a lost connection. */
const RECONNECT_BACKOFF_MS = [250, 500, 1_000, 2_000, 4_000, 5_000];

/** How long to wait for a server another update is working on (execution.busy_wait). */
export const DEFAULT_BUSY_WAIT_MS = 600_000;
export function busyWaitOf(settings: RolloutSettings): number {
  return settings.execution?.busyWaitMs ?? DEFAULT_BUSY_WAIT_MS;
}

/**
 * What working on one server came to: done (whatever its status), or not touched because another
 * update holds it (rules.ts Busy; `dead`: that update's executor is gone, so waiting cannot help).
 */
type ServerOutcome = { kind: 'done' } | ({ kind: 'busy' } & Busy);
const DONE: ServerOutcome = { kind: 'done' };

export function exitCodeFor(status: UpdateStatus): number {
  if (status === 'success') return EXIT.ok;
  if (status === 'paused') return EXIT.paused;
  return EXIT.failure;
}

/**
 * Execute one update to its end or its next pause, strictly one server at a time:
 * decide → record intent → act over SSH → record result, until decide() says pause or finish.
 */
export async function runUpdate(deps: EngineDeps, name: string, opts: RunOptions): Promise<RunResult> {
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
  try {
    // Re-read under the lease, and write in the same transaction: a pause asked from another
    // terminal in between is then either seen here or lands after, never overwritten.
    const begun = await store.tx(async (t) => {
      const before = await t.getUpdate(name);
      checkRunnable(before, opts.mode);
      const servers = await t.getServers(name);
      const worked = countWorked(servers);
      const { pauseAtWorked, pauseBase } = testModeLimit(before, worked, opts.stopAfter);
      const keepPause = before.status === 'running';
      const after = await t.setUpdateStatus(name, 'running', {
        startedAt: before.startedAt ?? clock.now().toISOString(),
        pauseAtWorked,
        pauseBase,
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
    });

    const ctx: ServerContext = { deps, update: u, lease, signal: abort };
    ahead = startAhead(ctx, aheadStop.signal);
    ctx.ahead = ahead;
    const pause = async (reason: string): Promise<RunResult> => {
      await ahead?.close();
      await releaseLeftoverLocks(ctx);
      await guarded(ctx, (t) => t.setUpdateStatus(name, 'paused', { reason, pauseRequestedAt: null, pauseRequestedBy: null, pauseAtWorked: null, pauseBase: null }), opts);
      emit({ type: 'update-finished', update: name, status: 'paused', reason, counts: countsOf(await store.getServers(name)) });
      return { update: name, status: 'paused', reason, exitCode: EXIT.paused };
    };
    // The server we are waiting for because another update holds it, and since when.
    let waiting: Waiting | null = null;
    for (;;) {
      await checkStillOurs(ctx, opts);
      u = await store.getUpdate(name);
      ctx.update = u;
      const all = await store.getServers(name);
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
        const claim = await claimServer(ctx, d.server);
        if (claim.ok) await workAhead(claim.server);
        const worked = all.filter(worksOn);
        outcome = claim.ok ? await runServer(ctx, claim.server, d.server.fromCommit, worked.indexOf(d.server) + 1, worked.length) : claim.busy;
      } else if (d.kind === 'pause') {
        return await pause(d.reason);
      } else {
        await ahead?.close();
        await releaseLeftoverLocks(ctx);
        await guarded(ctx, (t) => t.setUpdateStatus(name, d.status, { endedAt: clock.now().toISOString(), reason: d.reason, pauseRequestedAt: null, pauseRequestedBy: null }), opts);
        emit({ type: 'update-finished', update: name, status: d.status, reason: d.reason, counts: countsOf(await store.getServers(name)) });
        return { update: name, status: d.status, reason: d.reason, exitCode: exitCodeFor(d.status) };
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
  } finally {
    aheadStop.abort();
    await ahead?.close();
    await lease.release();
  }
}

interface ServerContext {
  deps: EngineDeps;
  update: UpdateRecord;
  lease: HeldLease;
  signal: AbortSignal;
  /** connections and prepares made ahead of their servers' turns (ahead.ts) */
  ahead?: Ahead;
}

/**
 * What runs ahead of the servers' turns, for one run of `ctx`'s update: connections opened
 * early, agent.prepare on the next servers. `stop` ends it (with the run's own signal).
 */
function startAhead(ctx: ServerContext, stop: AbortSignal): Ahead {
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
async function prepareServer(ctx: ServerContext, server: ServerRecord, session: Session): Promise<Session | null> {
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

/**
 * Throws when the lease is no longer ours or the run was stopped hard. `via`: the store, or the
 * transaction a write is about to be made in.
 */
async function checkStillOurs(ctx: ServerContext, opts?: RunOptions, via: ReportStore = ctx.deps.store): Promise<void> {
  if (!(await ctx.lease.stillHeld(via))) {
    throw new BusyError(`lost the lease on update ${ctx.update.name}: another process took it over; stopping without touching anything more`);
  }
  if ((opts?.signal ?? ctx.signal).aborted) {
    throw new InterruptedError(`interrupted: update ${ctx.update.name} stays running; \`${suggest(`start ${ctx.update.name}`)}\` takes it over`);
  }
}

/** A state write made only while the lease is ours, checked in the transaction that writes. */
function guarded<T>(ctx: ServerContext, write: (t: EngineStore) => Promise<T>, opts?: RunOptions): Promise<T> {
  return ctx.deps.store.tx(async (t) => {
    await checkStillOurs(ctx, opts, t);
    return write(t);
  });
}

/** One server's connection and journal: every command is recorded before it runs and after it ends. */
class ServerRun {
  private session: Session | null = null;
  private readonly started: number;
  /** the journal row of the last command run */
  lastStepId = 0;

  constructor(
    readonly ctx: ServerContext,
    public server: ServerRecord,
  ) {
    this.started = ctx.deps.clock.now().getTime();
  }

  /** Use a connection opened before (ahead of this server's turn). */
  adopt(session: Session): void {
    this.session?.close();
    this.session = session;
  }

  /** Hand the connection over (null when it was lost), leaving this run without one. */
  detach(): Session | null {
    const s = this.session;
    this.session = null;
    return s;
  }

  get settings(): RolloutSettings {
    return this.ctx.update.settings;
  }

  elapsed(): number {
    return this.ctx.deps.clock.now().getTime() - this.started;
  }

  /** Open the connection once; `transient`: a network problem a retry may cure (not a host key or a refused key). */
  async connect(): Promise<{ ok: true } | { ok: false; error: string; transient: boolean }> {
    if (this.session) return { ok: true };
    try {
      this.session = await this.ctx.deps.transport.connect(specOf(this.server), this.settings.ssh, this.ctx.signal);
      return { ok: true };
    } catch (e) {
      const transient = e instanceof TransportError && (e.kind === 'network' || e.kind === 'timeout');
      return { ok: false, error: (e as Error).message, transient };
    }
  }

  /** How long a lost connection is retried (ssh.reconnect_for). */
  private get reconnectFor(): number {
    return this.settings.ssh.reconnectForMs ?? DEFAULT_RECONNECT_FOR_MS;
  }

  /**
   * Wait for the connection to come back: retry with backoff while the outage lasts less than
   * ssh.reconnect_for. Returns false when it is over (or was never a network problem).
   */
  private async backoff(outage: { since: number | null; tries: number }, error: string): Promise<boolean> {
    const { clock, emit, store } = this.ctx.deps;
    const now = clock.now().getTime();
    const limit = this.reconnectFor;
    if (limit <= 0 || this.ctx.signal.aborted) return false;
    if (outage.since === null) {
      outage.since = now;
      await store.addEvent(this.server.updateName, this.server.name, 'connection', `connection lost (${error}); retrying for up to ${formatDuration(limit)}`);
    }
    const lost = now - outage.since;
    if (lost >= limit) return false;
    emit({ type: 'reconnecting', update: this.server.updateName, server: this.server.name, attempt: outage.tries + 1, lostMs: lost, limitMs: limit, error });
    await clock.sleep(Math.min(RECONNECT_BACKOFF_MS[Math.min(outage.tries, RECONNECT_BACKOFF_MS.length - 1)]!, limit - lost), this.ctx.signal);
    outage.tries++;
    return !this.ctx.signal.aborted;
  }

  private async recovered(outage: { since: number | null }): Promise<void> {
    if (outage.since === null) return;
    const { clock, store } = this.ctx.deps;
    await store.addEvent(this.server.updateName, this.server.name, 'connection', `connected again after ${formatDuration(clock.now().getTime() - outage.since)}`);
    outage.since = null;
  }

  /** connect(), retried like a command while a network problem lasts less than ssh.reconnect_for. */
  async connectRetrying(): Promise<{ ok: true } | { ok: false; error: string; transient: boolean }> {
    const outage = { since: null as number | null, tries: 0 };
    const c = await this.reconnect(outage);
    if (c.ok) await this.recovered(outage);
    return c;
  }

  /** connect(), tried again with backoff while a network problem lasts less than ssh.reconnect_for (counted in `outage`). */
  private async reconnect(outage: { since: number | null; tries: number }): Promise<{ ok: true } | { ok: false; error: string; transient: boolean }> {
    for (;;) {
      const c = await this.connect();
      if (c.ok || !c.transient || !(await this.backoff(outage, c.error))) return c;
    }
  }

  /**
   * Run one command, journalled. A lost connection (or a refused reconnect) is retried with
   * backoff for ssh.reconnect_for and the command run again, on a new journal row; see below
   * for when it is given up on. `shown`: what the journal and events say was run, when the
   * command is one of ours (the lock script) rather than the operator's.
   */
  async exec(phase: JournalPhase, command: string, timeoutMs?: number, shown = command, opts: { lockScript?: boolean } = {}): Promise<ExecResult> {
    // Which phases wait for a lost connection and run the command again: model/lifecycle.ts.
    const retry = RETRIED_AFTER_LOST.has(phase);
    const outage = { since: null as number | null, tries: 0 };
    let waits = 0;
    for (;;) {
      // No remote command after losing the lease or a hard stop: another executor may own the server now.
      await checkStillOurs(this.ctx);
      let result: ExecResult & { inflight?: InFlight[] };
      let transient: boolean;
      // A refused reconnect is retried without a journal row (nothing was sent); the last one is recorded.
      const conn = retry ? await this.reconnect(outage) : await this.connect();
      if (!conn.ok) {
        result = await this.record(phase, shown, { code: null, stdout: '', stderr: '', timedOut: false, ended: 'not-sent', error: `could not connect: ${conn.error}`, durationMs: 0 });
        transient = conn.transient;
      } else {
        ({ result, transient } = await this.execOnce(phase, command, timeoutMs, shown, !opts.lockScript));
        if (transient && retry && (await this.backoff(outage, result.error ?? 'connection lost'))) continue;
        if (result.inflight) {
          // An earlier run's command (ours, cut off by a lost connection, or another executor's)
          // is still running there: never beside it. Wait for it to end (or kill it), then again.
          if (waits++ < MAX_INFLIGHT_WAITS && (await this.waitForInFlight(phase, result.inflight))) continue;
          return result;
        }
      }
      if (!transient) {
        await this.recovered(outage);
        return result;
      }
      // Gone for longer than ssh.reconnect_for. Once something was changed on it, judging it
      // (rolling back, fatal) would be blind: stop, leaving it to `start` as after a crash.
      if (retry && outage.since !== null && this.server.fromCommit !== null && !this.ctx.signal.aborted) {
        throw new AppError(
          `${this.server.name} stopped answering during ${phase} (${result.error}) and did not come back within ` +
            `${formatDuration(this.reconnectFor)} (ssh.reconnect_for); something was changed on it, so it is not judged blind: ` +
            `it stays running (step ${this.server.step ?? phase}), and \`${suggest(`start ${this.server.updateName}`)}\` re-checks it ` +
            'once it is back, as after a crash',
          EXIT.failure,
        );
      }
      return result;
    }
  }

  /**
   * Run a command template with its placeholders filled in. A template that cannot be expanded
   * (a plan stored by an older version, with a placeholder where no quoting is certain) is not
   * run: the step fails with why, journalled, like any failed command.
   */
  async execTemplate(phase: JournalPhase, template: string, values: PlaceholderValues, timeoutMs?: number): Promise<ExecResult> {
    let command: string;
    try {
      command = expandCommand(template, values);
    } catch (e) {
      return this.record(phase, template, { code: null, stdout: '', stderr: '', timedOut: false, ended: 'refused', error: `not run: ${(e as Error).message}`, durationMs: 0 });
    }
    return this.exec(phase, command, timeoutMs);
  }

  /** Journal a command that could not be sent at all (its row begins and ends at once). */
  private async record(phase: JournalPhase, shown: string, result: ExecResult): Promise<ExecResult> {
    const { store } = this.ctx.deps;
    const stepId = await store.beginStep(this.server, phase, shown);
    this.lastStepId = stepId;
    await store.endStep(stepId, result);
    return result;
  }

  /**
   * One try of a command, journalled on its own row; `transient`: the connection failed, not the
   * command. `fence`: run it behind this executor's fencing token (ssh/fence.ts); the
   * lock scripts check the token themselves. A fenced command that was not run because the lock
   * holds another token throws (BusyError): this executor lost the server and stops.
   */
  private async execOnce(
    phase: JournalPhase,
    command: string,
    timeoutMs: number | undefined,
    shown: string,
    fence: boolean,
  ): Promise<{ result: ExecResult & { inflight?: InFlight[] }; transient: boolean }> {
    const { store, emit } = this.ctx.deps;
    // committed before the command is sent (intent before action)
    const stepId = await store.beginStep(this.server, phase, shown);
    this.lastStepId = stepId;
    let transient = false;
    const timeout = timeoutMs ?? this.settings.ssh.commandTimeoutMs;
    const token = this.ctx.lease.token;
    let result: ExecResult & { inflight?: InFlight[] } = await this.session!.exec(command, { timeoutMs: timeout, signal: this.ctx.signal, ...(fence ? { fence: token } : {}) });
    const notRun = fence ? notRunOf(result.stdout, result.code, token) : null;
    if (notRun?.kind === 'fenced') {
      await store.endStep(stepId, { ...result, code: null, error: 'not run: the agent-update lock on the server no longer holds this executor\'s token' });
      const owner = notRun.owner ? describeOwner(parseOwner(notRun.owner)) : 'nobody (the lock is gone)';
      const message =
        `lost ${this.server.name}: its agent-update lock no longer holds this executor's fencing token (it is now held by ${owner}), ` +
        'so another executor took it over; nothing more is run there, and this executor stops';
      await store.addEvent(this.server.updateName, this.server.name, 'fenced', message);
      throw new BusyError(`${message}. ${this.server.name} stays running in update ${this.server.updateName}; see \`${suggest(`status ${this.server.updateName}`)}\``);
    }
    if (notRun?.kind === 'inflight') result = { ...result, code: null, ended: 'refused', error: `not run: ${describeInFlight(notRun.inflight, token)} is still running on the server`, inflight: notRun.inflight };
    else if (notRun?.kind === 'error') result = { ...result, code: null, ended: 'refused', error: `not run: ${notRun.message}` };
    if (connectionGone(result)) {
      this.session?.close();
      this.session = null;
      transient = !this.ctx.signal.aborted;
    }
    await store.endStep(stepId, result);
    emit({
      type: 'command',
      update: this.server.updateName,
      server: this.server.name,
      phase,
      command: shown,
      code: result.code,
      error: result.error,
      durationMs: result.durationMs,
    });
    return { result, transient };
  }

  /** The installed commit per `agent.version_command`, or why it could not be read. */
  async version(phase: JournalPhase): Promise<{ ok: true; commit: string } | { ok: false; error: string }> {
    return parseVersion(await this.exec(phase, this.settings.agent.versionCommand));
  }

  /** Who we are, as the lock on the server says it. */
  lockOwner(): LockOwner {
    const { store, clock, liveness } = this.ctx.deps;
    return {
      update: this.server.updateName,
      db: store.dbId,
      token: this.ctx.lease.token,
      host: oneLine(liveness.host),
      pid: liveness.pid,
      pidStart: liveness.pidStart,
      since: clock.now().toISOString(),
      dbPath: oneLine(store.location),
    };
  }

  /**
   * The re-check: take the lock on the server and read its commit, in one remote command (the
   * version command runs only once the lock is ours). `busy` when another update holds the lock;
   * a lock of this database's that no update is working on any more is cleared and taken.
   */
  async recheck(phase: JournalPhase): Promise<{ kind: 'ok'; commit: string } | { kind: 'failed'; error: string } | { kind: 'busy'; owner: ReturnType<typeof parseOwner> }> {
    const { versionCommand } = this.settings.agent;
    const owner = this.lockOwner();
    let stale: string | undefined;
    let waits = 0;
    for (;;) {
      const shown = `${stale === undefined ? '(take the agent-update lock)' : '(clear a stale agent-update lock and take it)'} && ${versionCommand}`;
      const r = await this.exec(phase, `${acquireScript(owner, stale)}\n${versionCommand}`, undefined, shown, { lockScript: true });
      const { verdict, rest } = splitLockOutput(r.stdout);
      if (verdict?.kind === 'held') {
        const holder = parseOwner(verdict.owner);
        if (stale === undefined && (await judgeLock(this.ctx, holder)) === 'stale') {
          stale = verdict.owner;
          continue;
        }
        return { kind: 'busy', owner: holder };
      }
      if (verdict?.kind === 'inflight') {
        // The lock is ours now; a command of an earlier run is still running: never beside it.
        if (waits++ < MAX_INFLIGHT_WAITS && (await this.waitForInFlight(phase, verdict.inflight))) {
          stale = undefined;
          continue;
        }
        return { kind: 'failed', error: `${describeInFlight(verdict.inflight, owner.token)} is still running on the server, and could not be ended` };
      }
      if (verdict?.kind === 'error') return { kind: 'failed', error: `cannot take the lock on the server: ${verdict.message}` };
      const v = parseVersion({ ...r, stdout: rest });
      return v.ok ? { kind: 'ok', commit: v.commit } : { kind: 'failed', error: v.error };
    }
  }

  /**
   * Wait for commands of an earlier run still in flight on the server to end, at most their own
   * timeout (the supervisor's dead-man timer ends one whose executor went silent sooner), then
   * kill them with everything they started. Journalled (a step, an event). True when none is
   * left, so what was stopped may run now.
   */
  async waitForInFlight(phase: JournalPhase, inflight: InFlight[]): Promise<boolean> {
    const { store } = this.ctx.deps;
    const ownTimeout = Math.ceil(this.settings.ssh.commandTimeoutMs / 1000) || 600;
    const bound = Math.max(...inflight.map((f) => (f.seconds > 0 ? f.seconds : ownTimeout))) + INFLIGHT_GRACE_S;
    const what = describeInFlight(inflight, this.ctx.lease.token);
    await store.addEvent(this.server.updateName, this.server.name, 'in-flight', `${what} is still running on the server: waiting up to ${formatDuration(bound * 1000)} for it to end (then it is killed) before anything runs beside it`);
    const r = await this.exec(phase, waitScript(inflight, bound), (bound + 30) * 1000, `(wait for ${what} to end, up to ${formatDuration(bound * 1000)}, then kill it)`, { lockScript: true });
    const { verdict } = splitLockOutput(r.stdout);
    const done = verdict?.kind === 'ended' || verdict?.kind === 'killed';
    await store.addEvent(
      this.server.updateName,
      this.server.name,
      'in-flight',
      verdict?.kind === 'ended' ? `${what} ended` : verdict?.kind === 'killed' ? `${what} did not end in time: killed, with everything it started` : `${what}: could not be ended (${describeFailure(r)})`,
    );
    return done;
  }

  /** Remove our lock from the server (best effort: a lock left behind is cleared by the next of ours). */
  async releaseLock(): Promise<void> {
    try {
      const r = await this.exec('unlock', releaseScript(this.lockOwner()), undefined, '(release the agent-update lock)', { lockScript: true });
      let { verdict } = splitLockOutput(r.stdout);
      if (verdict?.kind === 'foreign') {
        // this update's lock under another executor's token: an earlier executor's, left by a
        // crash, is cleared once it is proven gone; a live one (a copy of this database) is not ours to clear
        if ((await judgeLock(this.ctx, parseOwner(verdict.owner))) === 'stale') {
          const c = await this.exec('unlock', clearScript(verdict.owner), undefined, '(clear a stale agent-update lock of this update)', { lockScript: true });
          verdict = splitLockOutput(c.stdout).verdict;
        } else verdict = { kind: 'not-ours' };
      }
      if (verdict?.kind === 'released' || verdict?.kind === 'not-ours' || verdict?.kind === 'cleared' || verdict?.kind === 'changed' || verdict?.kind === 'none') {
        await guarded(this.ctx, (t) => t.setLockHeld(this.server.id, false));
        this.server = { ...this.server, lockHeld: false };
      }
    } catch (e) {
      if (!(e instanceof AppError)) throw e;
      // lost the lease or stopped hard: the flag stays, and whoever continues releases it
    }
  }

  /** Leave the server to the update that holds it: nothing ran on it, it is pending again. */
  async yieldServer(plannedFrom: string | null, reason: string): Promise<void> {
    const { store } = this.ctx.deps;
    this.server = await guarded(this.ctx, (t) =>
      t.setServerStatus(this.server.id, 'pending', {
        step: null,
        startedAt: null,
        fromCommit: plannedFrom,
        toCommit: null,
        error: null,
        lockHeld: false,
        hop: null,
      }),
    );
    await store.addEvent(this.server.updateName, this.server.name, 'busy', reason);
  }


  /** The server's step (and what comes with it) committed; then the event saying so. */
  async setStep(step: ServerStep, change: { fromCommit?: string; error?: string | null; hop?: number } = {}): Promise<void> {
    this.server = await guarded(this.ctx, (t) => t.setServerStatus(this.server.id, 'running', { step, ...change }));
    const h = this.hop;
    this.ctx.deps.emit({
      type: 'server-step',
      update: this.server.updateName,
      server: this.server.name,
      step,
      ...(h.count > 1 ? { hop: h.index + 1, hops: h.count, hopTo: h.toVersion ?? h.to } : {}),
    });
  }

  /** The hop the server is on (its path's, or the one hop of an update without stepping stones). */
  get hop(): HopView {
    return hopOf(this.server, this.ctx.update.commit);
  }

  /** Record the server's outcome, then release our lock on it (after: the outcome comes first). */
  async finish(status: ServerStatus, change: { error?: string | null; fromCommit?: string | null; lockHeld?: boolean } = {}): Promise<void> {
    const { clock, emit } = this.ctx.deps;
    const hop = this.hop;
    this.server = await guarded(this.ctx, (t) =>
      t.setServerStatus(this.server.id, status, {
        step: null,
        endedAt: clock.now().toISOString(),
        ...change,
      }),
    );
    emit({
      type: 'server-finished',
      update: this.server.updateName,
      server: this.server.name,
      status,
      error: this.server.error,
      durationMs: this.elapsed(),
      fromCommit: this.server.fromCommit,
      toCommit: this.server.toCommit,
      atCommit:
        status === 'success'
          ? this.server.toCommit
          : status === 'rolled-back'
            ? rollbackTarget(this.settings, hop.from, hop.stone)
            : status === 'skipped'
              ? this.server.fromCommit
              : null,
    });
    if (this.server.lockHeld) await this.releaseLock();
  }

  close(): void {
    this.session?.close();
    this.session = null;
  }
}

function parseVersion(r: ExecResult): { ok: true; commit: string } | { ok: false; error: string } {
  if (r.code !== 0) return { ok: false, error: `version_command ${describeFailure(r)}` };
  const lines = r.stdout.trim().split('\n');
  const last = (lines[lines.length - 1] ?? '').trim().toLowerCase();
  if (!isFullCommit(last)) {
    return { ok: false, error: `version_command printed ${JSON.stringify(last.slice(0, 80))}, not a 40-hex commit` };
  }
  return { ok: true, commit: last };
}

function accountOf(s: Pick<ServerRecord, 'user' | 'host' | 'port'>): string {
  return `${s.user}@${s.host}:${s.port}`;
}

/** How many times a command waits for one of an earlier run in flight before it is given up on. */
const MAX_INFLIGHT_WAITS = 3;
/** Seconds waited for a command in flight beyond its own timeout, before it is killed. */
const INFLIGHT_GRACE_S = 5;

/** Whose command is in flight on a server, for the journal and the operator. */
function describeInFlight(list: readonly InFlight[], token: string): string {
  const pids = list.map((f) => f.pid).join(', ');
  return list.every((f) => f.token === token)
    ? `this executor's earlier try of a command, cut off by a lost connection (pid ${pids})`
    : `a command of another executor of this server (pid ${pids})`;
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
async function judgeLock(ctx: ServerContext, holder: ReturnType<typeof parseOwner>): Promise<'stale' | 'busy'> {
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
const oneLine = (s: string) => s.replace(/[\x00-\x1f\x7f]/g, '?');

/** Why another update's lock on a server keeps us off it, and what the operator can do. */
function lockedBy(ctx: ServerContext, s: ServerRecord, owner: ReturnType<typeof parseOwner>): Extract<ServerOutcome, { kind: 'busy' }> {
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

/**
 * Mark the next server `running` unless another update of this database is working on the same
 * account (`user@host:port`, however it is named) right now: the check and the write are one
 * transaction, so two executors (in one process or several) never both have it.
 */
function claimServer(ctx: ServerContext, server: ServerRecord): Promise<{ ok: true; server: ServerRecord } | { ok: false; busy: Extract<ServerOutcome, { kind: 'busy' }> }> {
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
async function releaseLeftoverLocks(ctx: ServerContext): Promise<void> {
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

function describeFailure(r: ExecResult): string {
  if (r.code === null) return `failed: ${r.error ?? 'no exit status'}`;
  const tail = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-1)[0] ?? '';
  return `exited ${r.code}${tail ? `: ${tail.slice(0, 200)}` : ''}`;
}

/** One claimed server (`running`, see claimServer): re-check under the lock, update, verify. */
async function runServer(ctx: ServerContext, s: ServerRecord, plannedFrom: string | null, index: number, total: number): Promise<ServerOutcome> {
  const { emit } = ctx.deps;
  const target = finalTarget(s, ctx.update.commit);
  await checkStillOurs(ctx);
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
    // unreachable, untouched (the plan's commit kept); else begin from what was found.
    const found: Found = current.kind === 'ok' ? { ok: true, commit: current.commit } : { ok: false, error: current.error };
    await carryOut(run, recoveryOf(FRESH, run.hop, target, found, 'turn'), plannedFrom);
    return DONE;
  } finally {
    run.close();
  }
}

/**
 * Walk the server's hops from the one it is on: each a full update (update, restart, verify at
 * that hop's commit); the next hop's index is committed before its first command. On any failure,
 * roll the hop back. `skipUpdate`: the current hop's commit is already on the server (takeover).
 */
async function updateAndVerify(run: ServerRun, opts: { skipUpdate: boolean }): Promise<void> {
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
async function walkHop(run: ServerRun, hop: HopView, skipUpdate: boolean): Promise<boolean> {
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
async function rollbackServer(run: ServerRun, failure: string, diagnosed = false): Promise<void> {
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

/** Characters kept at each end of a health attempt's output between the first and the last. */
export const HEALTH_KEEP_CHARS = 512;

/** Poll `agent.health.command` every interval until its output contains `expect`, or the timeout. */
async function verifyHealth(run: ServerRun, phase: ServerStep, hop: HopView): Promise<{ ok: true } | { ok: false; error: string }> {
  const { clock, emit } = run.ctx.deps;
  const signal = run.ctx.signal;
  const { agent: { health }, ssh } = run.settings;
  // The same values as the commands of the phase: during a rollback {previous_commit} is the target that failed.
  const values =
    phase === 'verify-rollback'
      ? phaseValues(run.settings, 'verify-rollback', { target: hop.to, from: hop.from, stone: hop.stone })!
      : phaseValues(run.settings, 'verify', { target: hop.to, from: hop.from })!;
  // the commit this verify waits for, as its messages name it
  const commit = values.commit!;
  let expect: string;
  let command: string;
  try {
    expect = expandText(health.expect, values);
    command = expandCommand(health.command, values);
  } catch (e) {
    return { ok: false, error: `health command not run: ${(e as Error).message}` };
  }
  const begin = clock.now().getTime();
  const deadline = begin + health.timeoutMs;
  // agent.health.stable_for: once healthy, it must stay so (every check) this long.
  const stableFor = health.stableForMs ?? 0;
  let healthySince: number | null = null;
  let last: string;
  // The journal keeps the first attempt and the latest in full; each one between is cut down
  // once the next has run, so a long verify stores kilobytes, not megabytes, per server.
  let between: number | null = null;
  for (let attempt = 1; ; attempt++) {
    const until = healthySince === null ? deadline : healthySince + stableFor;
    const r = await run.exec(phase, command, Math.min(ssh.commandTimeoutMs, Math.max(until - clock.now().getTime(), 1_000)));
    if (between !== null) await run.ctx.deps.store.summarizeStep(between, HEALTH_KEEP_CHARS);
    if (attempt > 1) between = run.lastStepId;
    const good = r.code === 0 && r.stdout.includes(expect);
    last = good ? 'healthy' : r.code === 0 ? `output does not contain ${JSON.stringify(expect)}: ${r.stdout.trim().slice(0, 200)}` : describeFailure(r);
    const now = clock.now().getTime();
    if (good && healthySince === null) healthySince = now;
    if (good && now - healthySince! >= stableFor) return { ok: true };
    if (!good && healthySince !== null) {
      return {
        ok: false,
        error:
          `came online at ${commit.slice(0, 12)} but did not stay healthy: health ${last} after ${formatDuration(now - healthySince)} ` +
          `of the ${formatDuration(stableFor)} it must stay healthy (agent.health.stable_for)`,
      };
    }
    if (signal.aborted) return { ok: false, error: `interrupted while verifying: ${last}` };
    if (healthySince === null && now + health.intervalMs >= deadline) {
      return { ok: false, error: `not online at ${commit.slice(0, 12)} after ${formatDuration(now - begin)} (health ${last})` };
    }
    emit({
      type: 'health-waiting',
      update: run.server.updateName,
      server: run.server.name,
      attempt,
      elapsedMs: now - begin,
      output: last,
      ...(healthySince !== null ? { stableMs: now - healthySince, stableForMs: stableFor } : {}),
    });
    await clock.sleep(healthySince === null ? health.intervalMs : Math.min(health.intervalMs, healthySince + stableFor - now), signal);
  }
}

/**
 * Take over a server left `running` by an executor that died: read what is really on it, then
 * do what recoveryOf (rollout/recover.ts) decides from that and what was recorded: finish the hop
 * it was on (at the hop's commit: restart if needed, verify) and walk the rest of its path, run
 * the hop again (still at the commit before it), or roll the hop back (anything else, or it died
 * while rolling back).
 */
async function recoverServer(ctx: ServerContext, server: ServerRecord): Promise<ServerOutcome> {
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
    await carryOut(run, recoveryOf(server, hop, finalTarget(server, ctx.update.commit), v));
    return DONE;
  } finally {
    run.close();
  }
}

/**
 * Do what recoveryOf decided, for a server's own turn (from FRESH: `plannedFrom` is the commit the
 * plan probed, kept on a server left untouched) or a takeover.
 */
async function carryOut(run: ServerRun, next: Recovery, plannedFrom?: string | null): Promise<void> {
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
 * Ask a running update to pause after the server in flight; from another process or a signal.
 * `by`: who asks (`user@host`, by default this process's user), recorded with the pause. One
 * transaction (of `store`, or the caller's).
 */
export function requestPause(store: EngineStore, name: string, now: Date, live: Liveness, by: string = actor()): Promise<{ alreadyPaused: boolean; pausedNow: boolean }> {
  return store.tx(async (t) => {
    const u = await t.getUpdate(name);
    if (u.status === 'paused') return { alreadyPaused: true, pausedNow: false };
    if (!allows(u.status, 'pause')) {
      throw new TransitionError(`cannot pause update ${name}: ${itIs(u.status)}. ${whatYouCanDo(name, u.status)}`);
    }
    const executorAlive = u.lease !== null && !holderIsDead(u.lease, now, live);
    const inFlight = (await t.getServers(name)).some((s) => s.status === 'running');
    if (!executorAlive && !inFlight) {
      // Its executor died between servers: nothing is half done, so it can be paused right here.
      await t.addEvent(name, null, 'pause-requested', `pause requested by ${by}`, by);
      await t.setUpdateStatus(name, 'paused', { reason: `pause requested by ${by}`, pauseRequestedAt: null, pauseRequestedBy: null, pauseAtWorked: null, pauseBase: null });
      return { alreadyPaused: false, pausedNow: true };
    }
    // The first request is the one that pauses it; a second is journalled too, but does not rename who asked.
    await t.patchUpdate(name, { pauseRequestedAt: u.pauseRequestedAt ?? now.toISOString(), pauseRequestedBy: u.pauseRequestedAt ? u.pauseRequestedBy : by });
    await t.addEvent(name, null, 'pause-requested', `pause requested by ${by}`, by);
    return { alreadyPaused: false, pausedNow: false };
  });
}

/**
 * End a pending or paused update, or a `running` one whose executor is dead (the way out when the
 * server it left in flight never comes back): that server becomes `fatal`, for a person, since
 * nobody knows what state it is in. Returns those servers.
 */
export function cancelUpdate(store: EngineStore, name: string, now: Date, live: Liveness, by: string = actor()): Promise<{ leftForAPerson: ServerRecord[]; alreadyCancelled: boolean }> {
  return store.tx(async (t) => {
    const u = await t.getUpdate(name);
    // Asking again for the end state it is in is not an error (as `pause` of a paused update).
    if (u.status === 'cancelled') return { leftForAPerson: [], alreadyCancelled: true };
    if (u.status !== 'running') {
      await t.addEvent(name, null, 'cancel', `cancelled by ${by}`, by);
      await t.setUpdateStatus(name, 'cancelled', { endedAt: now.toISOString(), reason: `cancelled by ${by}` });
      return { leftForAPerson: [], alreadyCancelled: false };
    }
    if (u.lease && !holderIsDead(u.lease, now, live)) {
      throw new TransitionError(
        `cannot cancel update ${name}: it is running, executed by ${describeLiveHolder(u.lease, now, live)}; ` +
          `pause it first with \`${suggest(`pause ${name}`)}\`, then cancel it`,
      );
    }
    const inFlight = (await t.getServers(name)).filter((s) => s.status === 'running');
    const left: ServerRecord[] = [];
    for (const s of inFlight) {
      const lock = s.lockHeld ? `; our lock may still be on it: clear it with \`${suggest(`unlock ${s.name} --yes`)}\` once it is dealt with` : '';
      left.push(
        await t.setServerStatus(s.id, 'fatal', {
          step: null,
          endedAt: now.toISOString(),
          error:
            `it was in flight (step ${s.step ?? '?'}) when the executor died, and the update was cancelled before anything ` +
            `re-checked it: its state is unknown, check it by hand${lock}`,
        }),
      );
    }
    if (u.lease) await t.releaseLease(name, u.lease.token);
    const reason = left.length
      ? `cancelled by ${by} after its executor died; left for a person: ${left.map((s) => s.name).join(', ')}`
      : `cancelled by ${by} after its executor died`;
    await t.addEvent(name, null, 'cancel', `cancelled by ${by}`, by);
    await t.setUpdateStatus(name, 'cancelled', { endedAt: now.toISOString(), reason, pauseRequestedAt: null, pauseRequestedBy: null });
    return { leftForAPerson: left, alreadyCancelled: false };
  });
}
