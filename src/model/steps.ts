/**
 * Progressive delivery's steps (execution.steps) as numbers: where each step ends among the
 * update's servers, and how far the update has got. Pure; read by decide() and the views.
 *
 * The servers the steps divide are those the update works on in its turns (model/lifecycle.ts
 * `worksOn`), and those found at the target in their turn: everything but what the plan left
 * alone. A step ends once that many of them are done (ended), one at a time as always.
 */
import type { DeliveryStep } from '../config/types.js';
import { ACTIVE_SERVER, worksOn, type ServerStatus } from './lifecycle.js';

export interface StepPlan {
  /** 1-based */
  index: number;
  /** how many of the update's servers are done at its end (cumulative) */
  through: number;
  bakeMs: number;
  pauseAfter: boolean;
}

/**
 * The steps over `total` servers: a percentage rounded up, every step at least one server more
 * than the one before (a step that would add none is dropped), and a last step to `total` when
 * the list stops short of it. The last step has no bake or pause: the update ends there (the
 * guard's `after_finish` watches after it). One step (or none) when steps are not used.
 */
export function stepsOf(steps: readonly DeliveryStep[] | null | undefined, total: number): StepPlan[] {
  if (!steps || steps.length === 0 || total === 0) return total === 0 ? [] : [{ index: 1, through: total, bakeMs: 0, pauseAfter: false }];
  const out: StepPlan[] = [];
  let last = 0;
  for (const s of steps) {
    const raw = 'count' in s.size ? s.size.count : Math.ceil((s.size.percent * total) / 100 - 1e-9);
    const through = Math.min(total, Math.max(1, raw));
    if (through <= last) continue;
    out.push({ index: out.length + 1, through, bakeMs: s.bakeMs, pauseAfter: s.pauseAfter });
    last = through;
  }
  if (last < total) out.push({ index: out.length + 1, through: total, bakeMs: 0, pauseAfter: false });
  const end = out[out.length - 1]!;
  out[out.length - 1] = { ...end, bakeMs: 0, pauseAfter: false };
  return out;
}

type Counted = { status: ServerStatus; startedAt: string | null };

/** A server the steps count: worked on in its turn, or found at the target then. */
export function inSteps(s: Counted): boolean {
  return worksOn(s) || (s.status === 'skipped' && s.startedAt !== null);
}

/** How many of the servers the steps count, and how many of them are done. */
export function stepProgress(servers: readonly Counted[]): { total: number; done: number } {
  const counted = servers.filter(inSteps);
  return { total: counted.length, done: counted.filter((s) => !ACTIVE_SERVER.has(s.status)).length };
}

/** "step 2 of 4" and the servers it takes the update to, for messages. */
export function describeStep(plan: readonly StepPlan[], step: number, total: number): string {
  const s = plan[step - 1];
  return s ? `step ${step} of ${plan.length} (${s.through} of ${total} servers)` : `step ${step}`;
}

/**
 * Which servers fall in each step (for the views: `plan`, `status`): the servers the steps count,
 * those whose turn has come in the order it came (startedAt; a guard's trip later changes when a
 * server ended, not when its turn began), then the pending ones in plan order, the order decide()
 * takes them; cut at each step's `through`. At plan time every one of them is pending: the plan
 * order itself.
 */
export function serversByStep<T extends Counted & { position: number }>(servers: readonly T[], plan: readonly StepPlan[]): T[][] {
  const counted = servers.filter(inSteps);
  const begun = counted
    .filter((s) => s.status !== 'pending')
    .sort((a, b) => (a.startedAt ?? '').localeCompare(b.startedAt ?? '') || a.position - b.position);
  const pending = counted.filter((s) => s.status === 'pending').sort((a, b) => a.position - b.position);
  const order = [...begun, ...pending];
  return plan.map((p, i) => order.slice(i > 0 ? plan[i - 1]!.through : 0, p.through));
}
