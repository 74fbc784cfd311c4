import type { RolloutSettings, ServerSpec } from '../config/types.js';
import type { Clock } from '../clock.js';
import { AppError, BusyError, EXIT, InterruptedError, TransitionError } from '../errors.js';
import { checkLocalSsh, type Session, type Transport, type ExecResult } from '../ssh/transport.js';
import type { ServerRecord, Store, UpdateRecord } from '../store/store.js';
import { expandCommand, expandText } from '../util/shell.js';
import { formatDuration } from '../util/duration.js';
import { countWorked, decide } from './decide.js';
import type { EventSink } from './events.js';
import { acquireLease, holderIsDead, type HeldLease } from './lease.js';
import { whatYouCanDo, type ServerStatus, type ServerStep, type UpdateStatus } from './status.js';

export interface EngineDeps {
  store: Store;
  transport: Transport;
  clock: Clock;
  emit: EventSink;
}

export interface RunOptions {
  /** `start` runs a pending update (or takes over a running one); `resume` a paused one (or takes over). */
  mode: 'start' | 'resume';
  /** pause after this many more servers finished with work (test mode); 0 = no limit */
  stopAfter?: number;
  /** aborting it stops at once: remote commands are abandoned, the server in flight stays recorded */
  signal?: AbortSignal;
}

export interface RunResult {
  update: string;
  status: UpdateStatus;
  reason: string;
  exitCode: number;
}


const START_FROM: Record<RunOptions['mode'], readonly UpdateStatus[]> = {
  start: ['pending', 'running'],
  resume: ['paused', 'running'],
};

function checkRunnable(u: UpdateRecord, mode: RunOptions['mode']): void {
  if (START_FROM[mode].includes(u.status)) return;
  if (mode === 'start' && u.status === 'paused') {
    throw new TransitionError(`update ${u.name} is paused; continue it with \`agent-update resume ${u.name}\``);
  }
  if (mode === 'resume' && u.status === 'pending') {
    throw new TransitionError(`update ${u.name} is pending, not paused; begin it with \`agent-update start ${u.name}\``);
  }
  throw new TransitionError(`cannot ${mode} update ${u.name}: it is ${u.status}. ${whatYouCanDo(u.name, u.status)}`);
}

/** Throws before anything is written when `mode` cannot apply to the update (exit 2). */
export function assertRunnable(store: Store, name: string, mode: RunOptions['mode']): void {
  checkRunnable(store.getUpdate(name), mode);
}

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
  const update = store.getUpdate(name);
  checkRunnable(update, opts.mode);
  await checkLocalSsh(deps.transport, update.settings.ssh, `cannot ${opts.mode} ${name}`);
  const lost = new AbortController();
  const lease = acquireLease(store, name, () => lost.abort(), () => clock.now());
  const abort = opts.signal ? AbortSignal.any([opts.signal, lost.signal]) : lost.signal;
  try {
    // Re-read under the lease, and write in the same transaction: a pause asked from another
    // terminal in between is then either seen here or lands after, never overwritten.
    const begun = store.tx(() => {
      const before = store.getUpdate(name);
      checkRunnable(before, opts.mode);
      const servers = store.getServers(name);
      const worked = countWorked(servers);
      let pauseAtWorked = before.pauseAtWorked;
      if (opts.stopAfter !== undefined) pauseAtWorked = opts.stopAfter > 0 ? worked + opts.stopAfter : null;
      else if (before.status === 'pending') pauseAtWorked = before.testStopAfter > 0 ? worked + before.testStopAfter : null;
      else if (before.status === 'paused') pauseAtWorked = null;
      const after = store.setUpdateStatus(name, 'running', {
        startedAt: before.startedAt ?? clock.now().toISOString(),
        pauseAtWorked,
        // A takeover keeps a pause that was asked of the dead executor; a fresh start or resume clears it.
        pauseRequestedAt: before.status === 'running' ? before.pauseRequestedAt : null,
        reason: null,
      });
      return { before, after, servers };
    });
    const { servers } = begun;
    let u = begun.after;
    const takeover = begun.before.status === 'running';
    const resumed = begun.before.status === 'paused';
    if (takeover) {
      const from = lease.previous ? `pid ${lease.previous.pid} on ${lease.previous.host}` : 'a process that left no lease';
      store.addEvent(name, null, 'takeover', `taking over from ${from}`);
      emit({ type: 'takeover', update: name, server: null, message: `taking over update ${name} from ${from}` });
    }
    emit({
      type: 'update-started',
      update: name,
      takeover,
      resumed,
      pending: servers.filter((s) => s.status === 'pending' || s.status === 'running').length,
      total: servers.length,
    });

    const ctx: ServerContext = { deps, update: u, lease, signal: abort };
    for (;;) {
      checkStillOurs(ctx, opts);
      u = store.getUpdate(name);
      ctx.update = u;
      const all = store.getServers(name);
      const d = decide(u, all);
      if (d.kind === 'recover') {
        await recoverServer(ctx, d.server);
      } else if (d.kind === 'run') {
        await runServer(ctx, d.server, all.indexOf(d.server) + 1, all.length);
      } else if (d.kind === 'pause') {
        guarded(ctx, () => store.setUpdateStatus(name, 'paused', { reason: d.reason, pauseRequestedAt: null, pauseAtWorked: null }), opts);
        emit({ type: 'update-finished', update: name, status: 'paused', reason: d.reason });
        return { update: name, status: 'paused', reason: d.reason, exitCode: EXIT.paused };
      } else {
        guarded(ctx, () => store.setUpdateStatus(name, d.status, { endedAt: clock.now().toISOString(), reason: d.reason, pauseRequestedAt: null }), opts);
        emit({ type: 'update-finished', update: name, status: d.status, reason: d.reason });
        return { update: name, status: d.status, reason: d.reason, exitCode: exitCodeFor(d.status) };
      }
    }
  } finally {
    lease.release();
  }
}

interface ServerContext {
  deps: EngineDeps;
  update: UpdateRecord;
  lease: HeldLease;
  signal: AbortSignal;
}

function checkStillOurs(ctx: ServerContext, opts?: RunOptions): void {
  if (!ctx.lease.stillHeld()) {
    throw new BusyError(`lost the lease on update ${ctx.update.name}: another process took it over; stopping without touching anything more`);
  }
  if ((opts?.signal ?? ctx.signal).aborted) {
    throw new InterruptedError(`interrupted: update ${ctx.update.name} stays running; \`agent-update start ${ctx.update.name}\` takes it over`);
  }
}

/** A state write made only while the lease is ours, checked in the transaction that writes. */
function guarded<T>(ctx: ServerContext, write: () => T, opts?: RunOptions): T {
  return ctx.deps.store.tx(() => {
    checkStillOurs(ctx, opts);
    return write();
  });
}

/** One server's connection and journal: every command is recorded before it runs and after it ends. */
class ServerRun {
  private session: Session | null = null;
  private readonly started: number;

  constructor(
    readonly ctx: ServerContext,
    public server: ServerRecord,
  ) {
    this.started = ctx.deps.clock.now().getTime();
  }

  get settings(): RolloutSettings {
    return this.ctx.update.settings;
  }

  elapsed(): number {
    return this.ctx.deps.clock.now().getTime() - this.started;
  }

  async connect(): Promise<{ ok: true } | { ok: false; error: string }> {
    if (this.session) return { ok: true };
    const spec: ServerSpec = {
      name: this.server.name,
      host: this.server.host,
      port: this.server.port,
      user: this.server.user,
      type: this.server.type,
    };
    try {
      this.session = await this.ctx.deps.transport.connect(spec, this.settings.ssh, this.ctx.signal);
      return { ok: true };
    } catch (e) {
      return { ok: false, error: (e as Error).message };
    }
  }

  /** Run one command, journalled; a lost connection is reopened once for the next command. */
  async exec(phase: string, command: string, timeoutMs?: number): Promise<ExecResult> {
    // No remote command after losing the lease or a hard stop: another executor may own the server now.
    checkStillOurs(this.ctx);
    const { store, emit } = this.ctx.deps;
    const stepId = store.beginStep(this.server, phase, command);
    let result: ExecResult;
    const conn = await this.connect();
    if (!conn.ok) {
      result = { code: null, stdout: '', stderr: '', timedOut: false, error: `could not connect: ${conn.error}`, durationMs: 0 };
    } else {
      result = await this.session!.exec(command, { timeoutMs: timeoutMs ?? this.settings.ssh.commandTimeoutMs, signal: this.ctx.signal });
      if (result.code === null && /connection lost|not connected/i.test(result.error ?? '')) {
        this.session?.close();
        this.session = null;
      }
    }
    store.endStep(stepId, result);
    emit({
      type: 'command',
      update: this.server.updateName,
      server: this.server.name,
      phase,
      command,
      code: result.code,
      error: result.error,
      durationMs: result.durationMs,
    });
    return result;
  }

  /** The installed commit per `agent.version_command`, or why it could not be read. */
  async version(phase: string): Promise<{ ok: true; commit: string } | { ok: false; error: string }> {
    const r = await this.exec(phase, this.settings.agent.versionCommand);
    if (r.code !== 0) return { ok: false, error: `version_command ${describeFailure(r)}` };
    const lines = r.stdout.trim().split('\n');
    const last = (lines[lines.length - 1] ?? '').trim().toLowerCase();
    if (!/^[0-9a-f]{40}$/.test(last)) {
      return { ok: false, error: `version_command printed ${JSON.stringify(last.slice(0, 80))}, not a 40-hex commit` };
    }
    return { ok: true, commit: last };
  }

  setStep(step: ServerStep, change: { fromCommit?: string; error?: string | null } = {}): void {
    this.server = guarded(this.ctx, () => this.ctx.deps.store.setServerStatus(this.server.id, 'running', { step, ...change }));
    this.ctx.deps.emit({ type: 'server-step', update: this.server.updateName, server: this.server.name, step });
  }

  finish(status: ServerStatus, change: { error?: string | null; fromCommit?: string | null } = {}): void {
    const { store, clock, emit } = this.ctx.deps;
    this.server = guarded(this.ctx, () =>
      store.setServerStatus(this.server.id, status, {
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
    });
  }

  close(): void {
    this.session?.close();
    this.session = null;
  }
}

function describeFailure(r: ExecResult): string {
  if (r.code === null) return `failed: ${r.error ?? 'no exit status'}`;
  const tail = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-1)[0] ?? '';
  return `exited ${r.code}${tail ? `: ${tail.slice(0, 200)}` : ''}`;
}

function placeholders(run: ServerRun, commit: string, previous: string | null) {
  const { source } = run.settings;
  return { repo: source.repo, branch: source.branch, commit, previous_commit: previous };
}

async function runServer(ctx: ServerContext, server: ServerRecord, index: number, total: number): Promise<void> {
  const { store, clock, emit } = ctx.deps;
  const target = ctx.update.commit;
  checkStillOurs(ctx);
  emit({ type: 'server-started', update: server.updateName, server: server.name, index, total, host: server.host });
  // fromCommit is cleared until the re-check below reads it again: a takeover that finds it null
  // knows no update command has run, whatever the server was at when the plan was made.
  const s = guarded(ctx, () =>
    store.setServerStatus(server.id, 'running', {
      step: 'update',
      startedAt: clock.now().toISOString(),
      toCommit: target,
      fromCommit: null,
      error: null,
    }),
  );
  const run = new ServerRun(ctx, s);
  try {
    const conn = await run.connect();
    if (!conn.ok) {
      run.finish('unreachable', { fromCommit: server.fromCommit, error: `could not connect, nothing was run: ${conn.error}` });
      return;
    }
    const current = await run.version('recheck');
    if (current.ok && current.commit === target) {
      run.finish('skipped', { fromCommit: current.commit });
      return;
    }
    if (!current.ok) {
      // Nothing has been changed on it, and without its commit there is nothing to roll back to.
      run.finish('unreachable', { fromCommit: server.fromCommit, error: `re-check failed, nothing was changed: ${current.error}` });
      return;
    }
    // Committed before any update command runs: a takeover needs to know what to roll back to.
    run.setStep('update', { fromCommit: current.commit });
    await updateAndVerify(run, { skipUpdate: false });
  } finally {
    run.close();
  }
}

/** Update (unless already done), restart and verify; on any failure, roll back. */
async function updateAndVerify(run: ServerRun, opts: { skipUpdate: boolean }): Promise<void> {
  const { agent, restart } = run.settings;
  const target = run.server.toCommit!;
  const values = placeholders(run, target, run.server.fromCommit);
  if (!opts.skipUpdate) {
    for (const command of agent.update) {
      const r = await run.exec('update', expandCommand(command, values));
      if (r.code !== 0) return rollbackServer(run, `update command ${describeFailure(r)}`);
    }
    const v = await run.version('update');
    if (!v.ok) return rollbackServer(run, `after updating, ${v.error}`);
    if (v.commit !== target) {
      return rollbackServer(run, `after updating, version_command prints ${v.commit.slice(0, 12)}, not the target ${target.slice(0, 12)}`);
    }
  }
  if (run.server.step !== 'verify') {
    run.setStep('restart');
    for (const name of restart) {
      const r = await run.exec('restart', expandCommand(agent.restart[name]!, values));
      if (r.code !== 0) return rollbackServer(run, `restart ${name} ${describeFailure(r)}`);
    }
    run.setStep('verify');
  }
  const health = await verifyHealth(run, 'verify', target);
  if (health.ok) return run.finish('success', { error: null });
  return rollbackServer(run, health.error);
}

/** Put the previous (or configured) commit back and verify it: rolled-back, or fatal. */
async function rollbackServer(run: ServerRun, reason: string): Promise<void> {
  const { rollback, agent, restart } = run.settings;
  if (!rollback.enabled) return run.finish('failed', { error: reason });
  const to = rollback.commit ?? run.server.fromCommit;
  if (!to) {
    return run.finish('fatal', { error: `${reason}; no previous commit is known to roll back to (set rollback.commit)` });
  }
  run.setStep('rollback', { error: reason });
  const values = placeholders(run, to, run.server.toCommit);
  const fatal = (why: string) => run.finish('fatal', { error: `${reason}; rollback to ${to.slice(0, 12)} failed: ${why}` });
  for (const command of agent.update) {
    const r = await run.exec('rollback', expandCommand(command, values));
    if (r.code !== 0) return fatal(`update command ${describeFailure(r)}`);
  }
  const v = await run.version('rollback');
  if (!v.ok) return fatal(v.error);
  if (v.commit !== to) return fatal(`version_command prints ${v.commit.slice(0, 12)}`);
  for (const name of restart) {
    const r = await run.exec('rollback', expandCommand(agent.restart[name]!, values));
    if (r.code !== 0) return fatal(`restart ${name} ${describeFailure(r)}`);
  }
  run.setStep('verify-rollback');
  const health = await verifyHealth(run, 'verify-rollback', to);
  if (!health.ok) return fatal(health.error);
  return run.finish('rolled-back', { error: reason });
}

/** Poll `agent.health.command` every interval until its output contains `expect`, or the timeout. */
async function verifyHealth(run: ServerRun, phase: ServerStep, commit: string): Promise<{ ok: true } | { ok: false; error: string }> {
  const { clock, emit } = run.ctx.deps;
  const signal = run.ctx.signal;
  const { agent: { health }, ssh } = run.settings;
  // The same values as the commands of the phase: during a rollback {previous_commit} is the target that failed.
  const previous = (phase === 'verify-rollback' ? run.server.toCommit : run.server.fromCommit) ?? '';
  const values = placeholders(run, commit, previous);
  const expect = expandText(health.expect, values);
  const command = expandCommand(health.command, values);
  const begin = clock.now().getTime();
  const deadline = begin + health.timeoutMs;
  let last: string;
  for (let attempt = 1; ; attempt++) {
    const remaining = Math.max(deadline - clock.now().getTime(), 1_000);
    const r = await run.exec(phase, command, Math.min(ssh.commandTimeoutMs, remaining));
    if (r.code === 0 && r.stdout.includes(expect)) return { ok: true };
    last = r.code === 0 ? `output does not contain ${JSON.stringify(expect)}: ${r.stdout.trim().slice(0, 200)}` : describeFailure(r);
    if (signal.aborted) return { ok: false, error: `interrupted while verifying: ${last}` };
    const now = clock.now().getTime();
    if (now + health.intervalMs >= deadline) {
      return { ok: false, error: `not online at ${commit.slice(0, 12)} after ${formatDuration(now - begin)} (health ${last})` };
    }
    emit({ type: 'health-waiting', update: run.server.updateName, server: run.server.name, attempt, elapsedMs: now - begin, output: last });
    await clock.sleep(health.intervalMs, signal);
  }
}

/**
 * Take over a server left `running` by an executor that died: read what is really on it, then
 * finish it (already at the target: restart if needed, verify), re-run it (nothing changed yet),
 * or roll it back (anything else, or it died while rolling back).
 */
async function recoverServer(ctx: ServerContext, server: ServerRecord): Promise<void> {
  const { emit, store } = ctx.deps;
  const target = ctx.update.commit;
  const run = new ServerRun(ctx, server);
  emit({ type: 'takeover', update: server.updateName, server: server.name, message: `re-checking ${server.name}, left in step ${server.step}` });
  store.addEvent(server.updateName, server.name, 'takeover', `re-checking; it was in step ${server.step}`);
  try {
    const conn = await run.connect();
    if (!conn.ok) {
      throw new AppError(
        `cannot reach ${server.name} to re-check it after a crash (${conn.error}); it stays running: ` +
          `run \`agent-update start ${server.updateName}\` again when it is reachable`,
        EXIT.failure,
      );
    }
    const v = await run.version('takeover');
    if (server.step === 'rollback' || server.step === 'verify-rollback') {
      return await rollbackServer(run, server.error ?? `interrupted during ${server.step}`);
    }
    if (server.fromCommit === null) {
      // The crash came before the previous commit was recorded, so no update command had run:
      // a failed re-check leaves it untouched, as in runServer (there is nothing to roll back).
      if (!v.ok) {
        return run.finish('unreachable', { error: `re-check after a crash failed, nothing was changed: ${v.error}` });
      }
      if (v.commit === target) return run.finish('skipped', { fromCommit: v.commit });
      run.setStep('update', { fromCommit: v.commit });
      return await updateAndVerify(run, { skipUpdate: false });
    }
    if (!v.ok) return await rollbackServer(run, `re-checked after a crash: ${v.error}`);
    // At the target: if it died during the update step, a later update command (a build, a
    // migration) may not have run, so all of them run again (they must be idempotent).
    if (v.commit === target) return await updateAndVerify(run, { skipUpdate: server.step !== 'update' });
    if (v.commit === server.fromCommit) {
      run.setStep('update');
      return await updateAndVerify(run, { skipUpdate: false });
    }
    return await rollbackServer(run, `re-checked after a crash during ${server.step}: found ${v.commit.slice(0, 12)}`);
  } finally {
    run.close();
  }
}

/** Ask a running update to pause after the server in flight; from another process or a signal. */
export function requestPause(store: Store, name: string, now: Date): { alreadyPaused: boolean; pausedNow: boolean } {
  return store.tx(() => {
    const u = store.getUpdate(name);
    if (u.status === 'paused') return { alreadyPaused: true, pausedNow: false };
    if (u.status !== 'running') {
      throw new TransitionError(`cannot pause update ${name}: it is ${u.status}. ${whatYouCanDo(name, u.status)}`);
    }
    const executorAlive = u.lease !== null && !holderIsDead(u.lease, now);
    const inFlight = store.getServers(name).some((s) => s.status === 'running');
    if (!executorAlive && !inFlight) {
      // Its executor died between servers: nothing is half done, so it can be paused right here.
      store.setUpdateStatus(name, 'paused', { reason: 'pause requested', pauseRequestedAt: null, pauseAtWorked: null });
      return { alreadyPaused: false, pausedNow: true };
    }
    store.patchUpdate(name, { pauseRequestedAt: u.pauseRequestedAt ?? now.toISOString() });
    store.addEvent(name, null, 'pause-requested', 'pause requested');
    return { alreadyPaused: false, pausedNow: false };
  });
}

export function cancelUpdate(store: Store, name: string, now: Date): void {
  const u = store.getUpdate(name);
  if (u.status === 'running') {
    throw new TransitionError(`cannot cancel update ${name} while it is running: pause it first with \`agent-update pause ${name}\``);
  }
  store.setUpdateStatus(name, 'cancelled', { endedAt: now.toISOString(), reason: 'cancelled by an operator' });
}
