import { plural } from '../util/plural.js';
import type { FailureBudget } from '../config/types.js';
import type { ServerRecord, UpdateRecord } from '../model/records.js';
import { AT_TARGET_SERVER, WORKED_SERVER, type ServerStatus } from '../model/lifecycle.js';
import { stepProgress, stepsOf, type StepPlan } from '../model/steps.js';

/**
 * What the executor does next, decided from the stored state alone (Nomad's watcher: decide,
 * then act). Pure: no I/O, so every rule is tested with plain data.
 */
export type Decision =
  /** a server was left `running` by a process that died: re-check it and finish or roll back */
  | { kind: 'recover'; server: ServerRecord }
  | { kind: 'run'; server: ServerRecord }
  | { kind: 'pause'; reason: string }
  /** the servers of a step (execution.steps) are done: bake them, pause, or go on to the next step */
  | { kind: 'step-end'; step: StepPlan; plan: StepPlan[]; total: number }
  | { kind: 'finish'; status: 'success' | 'partial-success' | 'failure'; reason: string };

export function countWorked(servers: readonly ServerRecord[]): number {
  return servers.filter((s) => WORKED_SERVER.has(s.status)).length;
}

/**
 * The failure budget of an update's group (the update and the batches split from it): how many
 * of its servers ended rolled-back or failed, out of how many. Servers that could not be reached
 * before anything changed (`unreachable`) never count.
 */
export interface BudgetUse {
  used: number;
  total: number;
}

export function budgetOf(update: UpdateRecord): FailureBudget | null {
  return update.settings.execution?.maxFailures ?? null;
}

/** How many failures the budget allows out of `total` servers (a percentage rounds down). */
export function allowedFailures(b: FailureBudget, total: number): number {
  return 'count' in b ? b.count : Math.floor((b.percent * total) / 100 + 1e-9);
}

export function describeBudget(b: FailureBudget): string {
  return 'count' in b ? String(b.count) : `${b.percent}%`;
}

/** The server whose result stops the rollout, if any. */
export function stoppingServer(update: UpdateRecord, servers: readonly ServerRecord[]): ServerRecord | undefined {
  // With a failure budget, rolled-back and failed servers are counted against it instead.
  const budgeted = budgetOf(update) !== null;
  const stops = (status: ServerStatus) =>
    status === 'fatal' ||
    (status === 'failed' && !budgeted) ||
    (status === 'rolled-back' && !update.settings.rollback.continueAfterRollback);
  return servers.find((s) => stops(s.status));
}

export function decide(update: UpdateRecord, servers: readonly ServerRecord[], budget?: BudgetUse): Decision {
  const inFlight = servers.find((s) => s.status === 'running');
  if (inFlight) return { kind: 'recover', server: inFlight };

  const stopper = stoppingServer(update, servers);
  if (stopper) {
    const why =
      stopper.status === 'fatal'
        ? `server ${stopper.name} is fatal: its rollback failed too and it needs a person`
        : stopper.status === 'failed'
          ? update.settings.restartOnly
            ? `server ${stopper.name} failed its restart (nothing to roll back)`
            : `server ${stopper.name} failed and rollback is disabled`
          : `server ${stopper.name} was rolled back (rollback.continue_after_rollback is false)`;
    return { kind: 'finish', status: 'failure', reason: `stopped: ${why}` };
  }

  const limit = budgetOf(update);
  if (limit !== null && budget) {
    const allowed = allowedFailures(limit, budget.total);
    if (budget.used > allowed) {
      const group = update.batchOf ?? update.name;
      return {
        kind: 'finish',
        status: 'failure',
        reason:
          `stopped: the failure budget is spent: ${plural(budget.used, 'server')} rolled back or failed, ` +
          `more than the ${allowed} allowed (execution.max_failures: ${describeBudget(limit)} of the ${plural(budget.total, 'server')} of ${group}` +
          `${update.batchOf !== null || budget.total !== servers.length ? ' and its batches' : ''})`,
      };
    }
  }

  const next = servers.find((s) => s.status === 'pending');
  if (!next) return finalStatus(servers, update.settings.restartOnly === true);

  if (update.pauseRequestedAt) return { kind: 'pause', reason: `pause requested${update.pauseRequestedBy ? ` by ${update.pauseRequestedBy}` : ''}` };
  const worked = countWorked(servers);
  if (update.stopAtWorked !== null && worked >= update.stopAtWorked) {
    // Counted from where the limit was set: `resume --stop-after 1` pauses on "1 server finished".
    const base = Math.min(update.stopFromWorked ?? 0, worked);
    const these = worked - base;
    return { kind: 'pause', reason: `test mode: ${plural(these, 'server')} finished${base > 0 ? ` (${worked} in all)` : ''}` };
  }
  const { total, done } = stepProgress(servers);
  const plan = stepsOf(update.settings.execution?.steps, total);
  const step = plan[update.stepsPromoted];
  if (step && step.index < plan.length && done >= step.through) return { kind: 'step-end', step, plan, total };
  return { kind: 'run', server: next };
}

/**
 * Every server has been dealt with: how did it go? `excluded` servers (never touched: version
 * unreadable, dropped, no upgrade path) are out of the update's work: they count neither as at
 * the target nor against it, and are named in the reason. An update of only excluded servers
 * ends `success` with nothing done, as one of only skipped servers does.
 */
export function finalStatus(servers: readonly ServerRecord[], restart = false): Extract<Decision, { kind: 'finish' }> {
  const excluded = servers.filter((s) => s.status === 'excluded');
  const worked = servers.filter((s) => s.status !== 'excluded');
  const left = excluded.length === 0 ? '' : `; ${plural(excluded.length, 'server')} excluded, never touched: ${excluded.map((s) => s.name).join(', ')}`;
  // a rolling restart (settings.restartOnly) says what it did: restarted, not "at the target"
  const done = restart ? 'restarted and verified' : 'at the target';
  if (worked.length === 0) return { kind: 'finish', status: 'success', reason: `no server to ${restart ? 'restart' : 'update'}${left}` };
  const good = worked.filter((s) => AT_TARGET_SERVER.has(s.status)).length;
  const bad = worked.filter((s) => !AT_TARGET_SERVER.has(s.status));
  if (bad.length === 0) return { kind: 'finish', status: 'success', reason: (worked.length === 1 ? `its one server ${done}` : `all ${worked.length} servers ${done}`) + left };
  const summary = bad.map((s) => `${s.name} ${s.status}`).join(', ');
  if (good > 0) return { kind: 'finish', status: 'partial-success', reason: `not ${restart ? 'restarted' : 'at the target'}: ${summary}${left}` };
  return { kind: 'finish', status: 'failure', reason: `${restart ? 'no server was restarted' : 'no server reached the target'}: ${summary}${left}` };
}
