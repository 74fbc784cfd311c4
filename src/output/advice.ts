import type { ServerRecord, UpdateRecord } from '../model/records.js';
import { BUDGETED_SERVER, WORKED_SERVER } from '../model/lifecycle.js';
import { suggest } from '../util/suggest.js';
import { isWindowPause } from '../config/window.js';
import { visibleLine } from './visible.js';

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

export function adviceAfterRun(u: UpdateRecord, servers: readonly ServerRecord[]): Advice {
  const warnings: string[] = [];
  let resumeHint: string | null = null;
  const done = finishedInOrder(servers);
  const last = done.at(-1);
  if (u.status === 'paused' && last && BUDGETED_SERVER.has(last.status)) {
    const what = last.status === 'rolled-back' ? `was rolled back to ${last.fromCommit?.slice(0, 12) ?? 'its previous commit'}` : 'failed and was left as it is (rollback is disabled)';
    warnings.push(`warning: the last server before the pause, ${last.name}, ${what}: ${visibleLine(last.error ?? 'no reason recorded')}`);
    resumeHint =
      `check ${firstCheck(last)} first: ${suggest(`logs ${u.name} --server ${last.name}`)}; ` +
      `resume only once you know why, or the next server will most likely fail the same way: ${suggest(`resume ${u.name}`)}`;
  }
  if (u.status === 'paused' && isWindowPause(u.reason) && resumeHint === null) {
    resumeHint = `continue with: ${suggest(`resume ${u.name} --wait-for-window`)} (it waits for the window to open; \`auto\` of its config resumes it once the window is open)`;
  }
  for (const run of rollbacksInARow(servers)) {
    warnings.push(
      `warning: ${run.length} servers in a row were rolled back (${run.map((s) => s.name).join(', ')}); ` +
        `rollback.continue_after_rollback went on past each: the new version may fail everywhere (see ${suggest(`logs ${u.name} --server ${run[0]!.name}`)})`,
    );
  }
  return { warnings, resumeHint };
}
