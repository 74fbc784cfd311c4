/**
 * The end of a step (execution.steps): its servers bake, then the update goes on by itself, or
 * waits for `resume` (pause_after_step). A bake waits its time while re-checking the step's
 * servers at the health interval (agent.health.interval) over connections kept for it; one that
 * turns unhealthy trips (guard.ts tripServer) and the update pauses before the next step. The time
 * left is recorded at every round (updates.bake_left_ms), so a `pause` keeps it for `resume` and a
 * takeover after a kill -9 goes on from the last round: never restarted from zero, never skipped.
 * A trip (a server of the step, or the guard's) ends the bake: after it, a resume bakes the step
 * again from the start.
 */
import type { StepPlan } from '../model/steps.js';
import { describeStep, serversByStep } from '../model/steps.js';
import { formatDuration } from '../util/duration.js';
import { checkStillOurs, guarded, type RunOptions, type ServerContext } from './engine.js';
import { tripServer, type Guard } from './guard.js';
import { PassedChecker } from './passed-check.js';

export type StepEnd = { kind: 'go-on' } | { kind: 'pause'; reason: string };

/**
 * `resumed`: this run began as a `resume` of a paused update (a pause_after_step that waited for
 * it is then over).
 */
export async function endStep(
  ctx: ServerContext,
  d: { step: StepPlan; plan: StepPlan[]; total: number },
  opts: RunOptions & { resumed: boolean; guard: Guard | null },
): Promise<StepEnd> {
  const name = ctx.update.name;
  const { step, plan, total } = d;
  const of = plan.length;
  const label = describeStep(plan, step.index, total);
  const bake = ctx.update.bake?.step === step.index ? ctx.update.bake : null;
  // baked already, and paused for it (pause_after_step): the resume lets the step go
  if (bake && bake.leftMs <= 0 && step.pauseAfter) {
    if (opts.resumed) return promote(ctx, step, of, 'resume');
    return pauseAfter(step, label);
  }
  if (step.bakeMs > 0) {
    const baked = await bakeServers(ctx, d, bake?.leftMs ?? step.bakeMs, opts);
    if (baked.kind === 'pause') return baked;
  }
  if (step.pauseAfter) {
    await guarded(ctx, (t) => t.patchUpdate(name, { bakeStep: step.index, bakeLeftMs: 0 }), opts);
    return pauseAfter(step, label);
  }
  return promote(ctx, step, of, step.bakeMs > 0 ? 'bake' : 'no-bake');
}

function pauseAfter(step: StepPlan, label: string): StepEnd {
  return { kind: 'pause', reason: `${label} done${step.bakeMs > 0 ? ' and baked' : ''}; it waits for \`resume\` (execution.pause_after_step)` };
}

async function promote(ctx: ServerContext, step: StepPlan, of: number, by: 'bake' | 'resume' | 'no-bake'): Promise<StepEnd> {
  const { store, emit } = ctx.deps;
  const name = ctx.update.name;
  await guarded(ctx, (t) => t.patchUpdate(name, { stepsPromoted: step.index, bakeStep: null, bakeLeftMs: null }));
  await store.addEvent(name, null, 'step', `step ${step.index} of ${of} done${by === 'bake' ? ', baked' : by === 'resume' ? ', resumed' : ''}: going on to step ${step.index + 1}`);
  emit({ type: 'step-promoted', update: name, step: step.index, steps: of, by });
  return { kind: 'go-on' };
}

/** The bake: rounds of re-checks every health interval until `leftMs` is spent; a trip or a pause ends it early. */
async function bakeServers(
  ctx: ServerContext,
  d: { step: StepPlan; plan: StepPlan[]; total: number },
  leftMs: number,
  opts: RunOptions & { guard: Guard | null },
): Promise<{ kind: 'baked' } | { kind: 'pause'; reason: string }> {
  const { store, emit, clock } = ctx.deps;
  const name = ctx.update.name;
  const { step, plan } = d;
  const of = plan.length;
  const interval = ctx.update.settings.agent.health.intervalMs;
  const servers = (serversByStep(await store.getServers(name), plan)[step.index - 1] ?? []).filter((s) => s.status === 'success');
  await guarded(ctx, (t) => t.patchUpdate(name, { bakeStep: step.index, bakeLeftMs: leftMs }), opts);
  await store.addEvent(
    name,
    null,
    'bake',
    `${describeStep(plan, step.index, d.total)}: baking ${formatDuration(leftMs)}${leftMs < step.bakeMs ? ` (of ${formatDuration(step.bakeMs)}, the rest of it)` : ''}, re-checking ${servers.map((s) => s.name).join(', ') || 'no server'} every ${formatDuration(interval)}`,
  );
  emit({ type: 'bake-started', update: name, step: step.index, steps: of, bakeMs: step.bakeMs, leftMs, intervalMs: interval, servers: servers.map((s) => s.name) });
  const checker = new PassedChecker(ctx.deps, ctx.signal);
  let left = leftMs;
  try {
    for (;;) {
      const began = clock.now().getTime();
      await checkStillOurs(ctx, opts);
      const u = await store.getUpdate(name);
      ctx.update = u;
      for (const s of servers) {
        const r = await checker.check(u, s);
        if (r.kind !== 'unhealthy') continue;
        checker.close();
        emit({ type: 'bake-ended', update: name, step: step.index, steps: of, outcome: 'unhealthy', leftMs: left });
        await guarded(ctx, (t) => t.patchUpdate(name, { bakeStep: null, bakeLeftMs: null }), opts);
        return { kind: 'pause', reason: await tripServer(ctx, { server: s, output: r.output }, 'bake') };
      }
      const trip = opts.guard?.tripped;
      if (trip) {
        opts.guard!.handled();
        emit({ type: 'bake-ended', update: name, step: step.index, steps: of, outcome: 'unhealthy', leftMs: left });
        await guarded(ctx, (t) => t.patchUpdate(name, { bakeStep: null, bakeLeftMs: null }), opts);
        return { kind: 'pause', reason: await tripServer(ctx, trip, 'guard') };
      }
      if (left <= 0) break;
      if (u.pauseRequestedAt) {
        emit({ type: 'bake-ended', update: name, step: step.index, steps: of, outcome: 'paused', leftMs: left });
        return {
          kind: 'pause',
          reason: `pause requested${u.pauseRequestedBy ? ` by ${u.pauseRequestedBy}` : ''} while ${describeStep(plan, step.index, d.total)} baked (${formatDuration(left)} of the bake left)`,
        };
      }
      await clock.sleep(Math.min(interval, left), ctx.signal);
      await checkStillOurs(ctx, opts);
      left = Math.max(0, left - (clock.now().getTime() - began));
      await guarded(ctx, (t) => t.patchUpdate(name, { bakeLeftMs: left }), opts);
      emit({ type: 'bake-check', update: name, step: step.index, steps: of, leftMs: left });
    }
  } finally {
    checker.close();
  }
  emit({ type: 'bake-ended', update: name, step: step.index, steps: of, outcome: 'healthy', leftMs: 0 });
  await store.addEvent(name, null, 'bake', `${describeStep(plan, step.index, d.total)}: baked ${formatDuration(step.bakeMs)}, every server healthy`);
  return { kind: 'baked' };
}
