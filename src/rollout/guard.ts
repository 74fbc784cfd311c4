/**
 * The guard (execution.guard): while an update runs and bakes, the servers that ended `success`
 * are re-checked in the background with the agent's health command, every `interval`, a few at
 * a time over connections of their own (passed-check.ts), so the rollout is not slowed. A server
 * that turns unhealthy after it passed is a trip: the executor's loop sees it before its next
 * server (or in a bake) and calls tripServer, which counts it as failed (against the failure
 * budget) or rolls it back (guard.rollback), and the update pauses with the reason. The guard
 * ends with the run; `after_finish` keeps it watching after the last server (watchAfterFinish).
 */
import pLimit from 'p-limit';
import type { GuardConfig } from '../config/types.js';
import type { ServerRecord } from '../model/records.js';
import { formatDuration } from '../util/duration.js';
import { guarded, type ServerContext } from './engine.js';
import { GUARD_CONCURRENCY, PassedChecker } from './passed-check.js';
import { rollBackPassed } from './server-flow.js';


export interface Trip {
  server: ServerRecord;
  output: string;
}

export class Guard {
  private trip_: Trip | null = null;
  private readonly stop = new AbortController();
  private readonly signal: AbortSignal;
  private readonly loop: Promise<void>;
  private rounds = 0;

  constructor(
    private readonly ctx: ServerContext,
    readonly config: GuardConfig,
  ) {
    this.signal = AbortSignal.any([ctx.signal, this.stop.signal]);
    this.loop = this.run();
  }

  /** The first server found unhealthy, until the loop has dealt with it (`handled`). */
  get tripped(): Trip | null {
    return this.trip_;
  }

  handled(): void {
    this.trip_ = null;
  }

  private async run(): Promise<void> {
    const { clock } = this.ctx.deps;
    while (!this.signal.aborted) {
      await clock.sleep(this.config.intervalMs, this.signal);
      if (this.signal.aborted) return;
      try {
        await this.round();
      } catch {
        // a database that did not answer, a lease lost: the loop finds out by itself; try at the next round
      }
    }
  }

  /** One round over every server of the update that passed; the first unhealthy one trips it. */
  async round(): Promise<void> {
    if (this.trip_) return; // the loop has not dealt with the last one yet
    const { store, emit, clock } = this.ctx.deps;
    const name = this.ctx.update.name;
    const update = await store.getUpdate(name);
    const passed = (await store.getServers(name)).filter((s) => s.status === 'success');
    if (passed.length === 0) return;
    const checker = new PassedChecker(this.ctx.deps, this.signal);
    const limit = pLimit(GUARD_CONCURRENCY);
    const unhealthy: Trip[] = [];
    const unreached: string[] = [];
    try {
      await Promise.all(
        passed.map((s) =>
          limit(async () => {
            if (this.signal.aborted) return;
            const r = await checker.check(update, s);
            checker.drop(s.id);
            if (r.kind === 'unhealthy') unhealthy.push({ server: s, output: r.output });
            else if (r.kind === 'unreached') unreached.push(s.name);
          }),
        ),
      );
    } finally {
      checker.close();
    }
    if (this.signal.aborted) return;
    this.rounds++;
    const healthy = passed.length - unhealthy.length - unreached.length;
    const summary =
      `${healthy} of ${passed.length} healthy` +
      (unhealthy.length ? `; unhealthy: ${unhealthy.map((u) => u.server.name).join(', ')}` : '') +
      (unreached.length ? `; not reached: ${unreached.join(', ')}` : '');
    emit({ type: 'guard-check', update: name, healthy, unhealthy: unhealthy.map((u) => u.server.name) });
    await guarded(this.ctx, (t) => t.patchUpdate(name, { guardCheckedAt: clock.now().toISOString(), guardSummary: summary }));
    if (unhealthy.length > 0 && !this.trip_) this.trip_ = unhealthy[0]!;
  }

  /**
   * After the last server: keep watching for guard.after_finish (rounds every interval, the last
   * one at its end); the trip found, or null.
   */
  async watchAfterFinish(): Promise<Trip | null> {
    const { clock } = this.ctx.deps;
    const until = clock.now().getTime() + this.config.afterFinishMs;
    await this.ctx.deps.store.addEvent(this.ctx.update.name, null, 'guard', `watching the servers for ${formatDuration(this.config.afterFinishMs)} after the last one (guard.after_finish)`);
    while (!this.trip_ && !this.ctx.signal.aborted) {
      const left = until - clock.now().getTime();
      if (left <= 0) break;
      await clock.sleep(Math.min(this.config.intervalMs, left), this.ctx.signal);
      await this.round().catch(() => undefined);
    }
    return this.trip_;
  }

  async close(): Promise<void> {
    this.stop.abort();
    await this.loop;
  }
}

/**
 * A server that passed failed a re-check (`source`: the guard's, or its step's bake): recorded,
 * then counted as failed (against the failure budget), or rolled back and verified
 * (guard.rollback). The pause reason that names it.
 */
export async function tripServer(ctx: ServerContext, trip: Trip, source: 'guard' | 'bake'): Promise<string> {
  const { store, emit, clock } = ctx.deps;
  const name = ctx.update.name;
  const s = trip.server;
  const rollback = ctx.update.settings.execution?.guard?.rollback === true && ctx.update.settings.rollback.enabled;
  const what = source === 'guard' ? 'the guard' : 'its bake';
  const reason = `turned unhealthy after it passed verify (${what} re-checked it): ${trip.output}`;
  emit({ type: 'guard-tripped', update: name, server: s.name, source, output: trip.output, rollback });
  await store.addEvent(name, s.name, 'guard', `${s.name} ${reason}`);
  if (rollback) {
    const running = await guarded(ctx, (t) => t.setServerStatus(s.id, 'running', { step: 'diagnose', error: reason }));
    await rollBackPassed(ctx, running, reason);
  } else {
    const failed = await guarded(ctx, (t) => t.setServerStatus(s.id, 'failed', { error: reason, endedAt: clock.now().toISOString() }));
    emit({
      type: 'server-finished',
      update: name,
      server: s.name,
      status: 'failed',
      error: failed.error,
      durationMs: 0,
      fromCommit: failed.fromCommit,
      toCommit: failed.toCommit,
      atCommit: null,
    });
  }
  const after = await store.getServer(s.id);
  const outcome = rollback ? (after.status === 'rolled-back' ? 'rolled back and verified' : `not rolled back: it is ${after.status} (${after.error ?? ''})`) : 'counted as failed (guard.rollback is off)';
  return `${source === 'guard' ? 'guard' : 'bake'}: ${s.name} turned unhealthy after it passed verify (${trip.output}); ${outcome}`;
}
