import type { ServerRecord, UpdateRecord } from '../model/records.js';
import { BUDGETED_SERVER, WORKED_SERVER } from '../model/lifecycle.js';
import { suggest } from '../util/suggest.js';
import { isWindowPause } from '../config/window.js';
import { isFreezePause } from '../model/freeze.js';
import { shellQuote } from '../util/shell.js';
import { visibleLine } from './visible.js';
import { allowedFailures, budgetOf, describeBudget, stoppingServer } from '../rollout/decide.js';

/**
 * What a person should look at after a run stopped, beyond "see status and logs": the plain
 * facts a careful operator would point out before anyone types `resume`.
 */

/** What to look at first on a server that was rolled back (or failed), from why it failed. */
export function firstCheck(s: ServerRecord): string {
  const why = s.error ?? '';
  if (/^update command|^after updating/.test(why)) return `the update command's output on ${s.name}`;
  if (/^restart /.test(why)) return `the restart command's output and the agent's service on ${s.name}`;
  if (/did not stay healthy/.test(why)) return `why the agent on ${s.name} stopped answering soon after it started (its own log)`;
  if (/not online at|health/.test(why)) return `why the agent on ${s.name} did not come online at the new commit (its own log, then the health command's output)`;
  return `what happened on ${s.name}`;
}

/** The servers that finished with work, in the order they finished. */
function finishedInOrder(servers: readonly ServerRecord[]): ServerRecord[] {
  return servers
    .filter((s) => WORKED_SERVER.has(s.status) && s.endedAt !== null)
    .sort((a, b) => (a.endedAt! < b.endedAt! ? -1 : a.endedAt! > b.endedAt! ? 1 : a.position - b.position));
}

/**
 * Runs of two or more servers rolled back (or failed) one right after the other: with
 * rollback.continue_after_rollback the rollout went on past each, which a person should know
 * (the new version may fail everywhere).
 */
export function rollbacksInARow(servers: readonly ServerRecord[]): ServerRecord[][] {
  const runs: ServerRecord[][] = [];
  let current: ServerRecord[] = [];
  for (const s of finishedInOrder(servers)) {
    if (BUDGETED_SERVER.has(s.status)) current.push(s);
    else {
      if (current.length >= 2) runs.push(current);
      current = [];
    }
  }
  if (current.length >= 2) runs.push(current);
  return runs;
}

/**
 * Lines to print after an update stopped (paused or ended), before any generic hint: a warning
 * when the last server before a pause was rolled back (a canary that failed: say so plainly and
 * what to check before resuming), and when servers were rolled back one after another.
 */
export interface Advice {
  warnings: string[];
  /** replaces "continue with: resume NAME" after a pause: what to check before resuming */
  resumeHint: string | null;
}

/**
 * The reason a server carries when it passed verify and a later re-check found it unhealthy
 * (rollout/guard.ts tripServer): which re-check, then what the health command said.
 */
const RECHECKED = /^turned unhealthy after it passed verify \((the guard|its bake) re-checked it\): /;

/**
 * `budget`: the failure budget's use over the update's group (Store.budgetUse), when it has
 * one: what a `resume` after a guard's trip does depends on it.
 */
export function adviceAfterRun(u: UpdateRecord, servers: readonly ServerRecord[], budget?: { used: number; total: number }): Advice {
  const warnings: string[] = [];
  let resumeHint: string | null = null;
  const done = finishedInOrder(servers);
  const last = done.at(-1);
  const rechecked = last ? RECHECKED.exec(last.error ?? '') : null;
  if (u.status === 'paused' && last && rechecked) {
    const after = recheckAdvice(u, servers, last, rechecked, budget);
    warnings.push(after.warning);
    resumeHint = after.resumeHint;
  } else if (u.status === 'paused' && last && BUDGETED_SERVER.has(last.status)) {
    const what = last.status === 'rolled-back' ? `was rolled back to ${last.fromCommit?.slice(0, 12) ?? 'its previous commit'}` : 'failed and was left as it is (rollback is disabled)';
    warnings.push(`warning: the last server before the pause, ${last.name}, ${what}: ${visibleLine(last.error ?? 'no reason recorded')}`);
    resumeHint =
      `check ${firstCheck(last)} first: ${suggest(`logs ${u.name} --server ${last.name}`)}; ` +
      `resume only once you know why, or the next server will most likely fail the same way: ${suggest(`resume ${u.name}`)}`;
  }
  if (u.status === 'paused' && isWindowPause(u.reason) && resumeHint === null) {
    resumeHint = `continue with: ${suggest(`resume ${u.name} --wait-for-window`)} (it waits for the window to open; \`auto\` of its config resumes it once the window is open)`;
  }
  if (u.status === 'paused' && isFreezePause(u.reason) && resumeHint === null) {
    resumeHint = `resume is refused while the freeze lasts; once it is lifted (${suggest(`unfreeze -c ${u.configFile !== null ? shellQuote(u.configFile) : 'FILE'}`)}), continue with: ${suggest(`resume ${u.name}`)} (\`auto\` of its config resumes it then)`;
  }
  for (const run of rollbacksInARow(servers)) {
    warnings.push(
      `warning: ${run.length} servers in a row were rolled back (${run.map((s) => s.name).join(', ')}); ` +
        `rollback.continue_after_rollback went on past each: the new version may fail everywhere (see ${suggest(`logs ${u.name} --server ${run[0]!.name}`)})`,
    );
  }
  return { warnings, resumeHint };
}

/**
 * A server that passed verify and later failed its health re-check (the guard's, or its step's
 * bake's), the last thing before the pause: not "did not come online" (it did), but what it is
 * now and what each way on does: `resume` (counted as failed: against the failure budget, or
 * the end of the update where a failed server stops it), `undo`, a new update for the server.
 */
function recheckAdvice(
  u: UpdateRecord,
  servers: readonly ServerRecord[],
  s: ServerRecord,
  m: RegExpExecArray,
  budget: { used: number; total: number } | undefined,
): { warning: string; resumeHint: string } {
  const which = m[1] === 'the guard' ? "the guard's" : "its step's bake's";
  const said = visibleLine((s.error ?? '').slice(m[0].length));
  const before = s.fromCommit?.slice(0, 12) ?? null;
  const now =
    s.status === 'rolled-back'
      ? `it was rolled back${before ? ` to ${before}` : ''} and verified there (guard.rollback)`
      : s.status === 'fatal'
        ? 'its rollback failed too: it needs a person'
        : 'it is counted as failed and left as it is, at the new commit (guard.rollback is off)';
  const warning = `warning: ${s.name} passed verify and later failed its health re-check (${which}): ${said}; ${now}`;
  const lines = [
    `check the agent's own log on ${s.name} first (it came online at the new commit, then its health check failed) and what the re-check said: ${suggest(`logs ${u.name} --server ${s.name}`)}`,
  ];
  const resume = suggest(`resume ${u.name}`);
  const stopper = stoppingServer(u, servers);
  const limit = budgetOf(u);
  if (stopper) {
    const why =
      stopper.status === 'fatal'
        ? `${stopper.name} is fatal`
        : stopper.status === 'failed'
          ? `a failed server stops an update without execution.max_failures (${stopper.name})`
          : `${stopper.name} was rolled back and rollback.continue_after_rollback is false`;
    lines.push(`then: \`${resume}\` ends the update as failure at once, nothing more runs (${why})`);
  } else if (limit !== null && budget) {
    const allowed = allowedFailures(limit, budget.total);
    lines.push(
      budget.used > allowed
        ? `then: \`${resume}\` ends the update as failure at once: the failure budget is spent (${budget.used} rolled back or failed, ${allowed} allowed by execution.max_failures ${describeBudget(limit)})`
        : `then: \`${resume}\` goes on with the next servers, ${s.name} counted against the failure budget (${budget.used} of the ${allowed} failures execution.max_failures ${describeBudget(limit)} allows)`,
    );
  } else {
    lines.push(`then: \`${resume}\` goes on with the next servers, ${s.name} counted as ${s.status}`);
  }
  const left =
    s.status === 'rolled-back'
      ? ''
      : `; ${s.name} itself is not undone (${s.status}: its state is for a person)` +
        (before ? `: an update of it alone (include: [${s.name}]) with source.commit ${before} puts that commit back` : '');
  lines.push(`or back the update out: \`${suggest(`undo ${u.name}`)}\` puts every server that passed back to its previous commit${left}`);
  return { warning, resumeHint: lines.join('\n') };
}
