/**
 * One server's connection and journal (ServerRun): every command recorded before it runs and
 * after it ends, sent behind the executor's fencing token, retried after a lost connection in the
 * phases that are (model/lifecycle.ts RETRIED_AFTER_LOST), waiting for a command of an earlier
 * run still in flight; the re-check under the lock, its release, the server's steps and outcome.
 */
import type { RolloutSettings } from '../config/types.js';
import { AppError, BusyError, EXIT } from '../errors.js';
import { connectionGone, TransportError, type Session, type ExecResult } from '../ssh/transport.js';
import { specOf, type PathStop, type ServerRecord } from '../model/records.js';
import { expandCommand, type PlaceholderValues } from '../util/shell.js';
import { describeFailure, readCommit } from './read-commit.js';
import { formatDuration } from '../util/duration.js';
import { suggest } from '../util/suggest.js';
import { rollbackTarget } from './phases.js';
import { hopOf, type Hop } from '../model/hops.js';
import { acquireScript, clearScript, describeOwner, notRunOf, parseOwner, releaseScript, splitLockOutput, waitScript, type InFlight, type LockOwner } from './remote-lock.js';
import { RETRIED_AFTER_LOST, type JournalPhase, type ServerStatus, type ServerStep } from '../model/lifecycle.js';
import { type ServerContext, checkNotStopped, guarded, lostLease } from './engine.js';
import { judgeLock, oneLine } from './locks.js';

/** ssh.reconnect_for when an update was planned before it existed. */
export const DEFAULT_RECONNECT_FOR_MS = 30_000;

/** The waits between tries of a lost connection. */
export const RECONNECT_BACKOFF_MS = [250, 500, 1_000, 2_000, 4_000, 5_000];

/** One server's connection and journal: every command is recorded before it runs and after it ends. */
export class ServerRun {
  private session: Session | null = null;
  private readonly started: number;
  /** the journal row of the last command run */
  lastEntryId = 0;

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
  async exec(phase: JournalPhase, command: string, timeoutMs?: number, shown = command, opts: ExecRunOptions = {}): Promise<ExecResult> {
    // Which phases wait for a lost connection and run the command again: model/lifecycle.ts.
    const retry = RETRIED_AFTER_LOST.has(phase);
    const outage = { since: null as number | null, tries: 0 };
    let waits = 0;
    for (;;) {
      // No remote command after losing the lease or a hard stop: another executor may own the server
      // now. The database is asked by the command's journal row (begin, below), right before it is sent.
      checkNotStopped(this.ctx);
      let result: ExecResult & { inflight?: InFlight[] };
      let transient: boolean;
      // A refused reconnect is retried without a journal row (nothing was sent); the last one is recorded.
      const conn = retry ? await this.reconnect(outage) : await this.connect();
      if (!conn.ok) {
        result = await this.record(phase, shown, { code: null, stdout: '', stderr: '', timedOut: false, ended: 'not-sent', error: `could not connect: ${conn.error}`, durationMs: 0 });
        transient = conn.transient;
      } else {
        ({ result, transient } = await this.execOnce(phase, command, timeoutMs, shown, !opts.lockScript));
        if (transient && retry && (await this.backoff(outage, result.error ?? 'connection lost'))) {
          // sendOnce: a command that was sent and cut is not sent again once the server answers; the cut result is the answer
          if (!(opts.sendOnce && result.ended === 'lost')) continue;
          const back = await this.reconnect(outage);
          if (back.ok) {
            await this.recovered(outage);
            return result;
          }
        }
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
  async execTemplate(phase: JournalPhase, template: string, values: PlaceholderValues, timeoutMs?: number, opts: Pick<ExecRunOptions, 'sendOnce'> = {}): Promise<ExecResult> {
    let command: string;
    try {
      command = expandCommand(template, values);
    } catch (e) {
      return this.record(phase, template, { code: null, stdout: '', stderr: '', timedOut: false, ended: 'refused', error: `not run: ${(e as Error).message}`, durationMs: 0 });
    }
    return this.exec(phase, command, timeoutMs, command, opts);
  }

  /**
   * A command's journal row, committed before it is sent, and written only while this executor
   * holds the update's lease (one statement: no round trip of its own for the check). Lost: stop.
   */
  private async begin(phase: JournalPhase, shown: string): Promise<number> {
    const stepId = await this.ctx.deps.store.beginCommandIfLeased(this.server, phase, shown, this.ctx.lease.token);
    if (stepId === null) {
      this.ctx.lease.lost(); // the database says the lease is another's
      throw lostLease(this.ctx);
    }
    this.lastEntryId = stepId;
    return stepId;
  }

  /** Journal a command that could not be sent at all (its row begins and ends at once). */
  private async record(phase: JournalPhase, shown: string, result: ExecResult): Promise<ExecResult> {
    const { store } = this.ctx.deps;
    const stepId = await this.begin(phase, shown);
    await store.endCommand(stepId, result);
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
    const stepId = await this.begin(phase, shown);
    let transient = false;
    const timeout = timeoutMs ?? this.settings.ssh.commandTimeoutMs;
    const token = this.ctx.lease.token;
    let result: ExecResult & { inflight?: InFlight[] } = await this.session!.exec(command, { timeoutMs: timeout, signal: this.ctx.signal, ...(fence ? { fence: token } : {}) });
    const notRun = fence ? notRunOf(result.stdout, result.code, token) : null;
    if (notRun?.kind === 'fenced') {
      await store.endCommand(stepId, { ...result, code: null, error: 'not run: the agent-update lock on the server no longer holds this executor\'s token' });
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
    await store.endCommand(stepId, result);
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
    return readCommit(await this.exec(phase, this.settings.agent.versionCommand));
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
      const v = readCommit({ ...r, stdout: rest });
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
  async setStep(step: ServerStep, change: { fromCommit?: string; toCommit?: string; path?: PathStop[]; error?: string | null; hop?: number } = {}): Promise<void> {
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
  get hop(): Hop {
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


/** How ServerRun.exec runs a command, beyond its phase. */
export interface ExecRunOptions {
  /** one of our lock scripts: it checks the fencing token itself (no fence around it) */
  lockScript?: boolean;
  /**
   * in a phase retried after a lost connection: wait for the connection to come back, but never
   * send again a command that was sent and cut (its result, `lost`, is returned once the server
   * answers): a rolling restart's restart is never run twice blindly. One never sent is sent.
   */
  sendOnce?: boolean;
}

/** How many times a command waits for one of an earlier run in flight before it is given up on. */
export const MAX_INFLIGHT_WAITS = 3;

/** Seconds waited for a command in flight beyond its own timeout, before it is killed. */
export const INFLIGHT_GRACE_S = 5;

/** Whose command is in flight on a server, for the journal and the operator. */
export function describeInFlight(list: readonly InFlight[], token: string): string {
  const pids = list.map((f) => f.pid).join(', ');
  return list.every((f) => f.token === token)
    ? `this executor's earlier try of a command, cut off by a lost connection (pid ${pids})`
    : `a command of another executor of this server (pid ${pids})`;
}

