/**
 * What the commands that plan a new update share (`retry`, `undo`, the probes of `auto`, and the
 * overlap warnings of `plan`): Ctrl-C while probing, and printing the new plan.
 */
import { EXIT } from '../errors.js';
import { updateJson } from '../output/status-json.js';
import { updateText } from '../output/text.js';
import type { Overlap, ReportStore } from '../store/port.js';
import type { UpdateRecord } from '../model/records.js';
import type { CliContext } from './context.js';
import { activeFreezeOf, unfreezeHint } from '../plan/freeze.js';
import { describeFreeze } from '../model/freeze.js';
import { visibleLine } from '../output/visible.js';

/**
 * SIGINT/SIGTERM while probing: the first aborts `signal` (the probes in flight are cut and the
 * new update is removed: nothing recorded), a second exits 130 at once. `dispose` stops listening.
 */
export function probeInterrupts(): { signal: AbortSignal; dispose: () => void } {
  const interrupt = new AbortController();
  const onSignal = () => (interrupt.signal.aborted ? process.exit(EXIT.interrupted) : interrupt.abort());
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: interrupt.signal,
    dispose: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

/**
 * `undo NAME --start`, `retry NAME --start`: the new update started at once, as `start NAME` would
 * (as `kubectl rollout undo` does): its events, its outcome and exit code. Called once the
 * probes' own Ctrl-C handling is gone, so `start`'s applies (the first pauses, the second stops).
 */
export async function startPlanned(ctx: CliContext, name: string): Promise<number> {
  const { runCommand } = await import('./start.js');
  const { Interrupts } = await import('./interrupts.js');
  return runCommand(ctx, 'start', [name], {}, new Interrupts());
}

/**
 * A new pending update: `--json` its status document plus `extra`; else its status table, each
 * note on stderr, then `line` (given the count of its servers) and, with -q, just its name.
 */
export async function printNewPlan(ctx: CliContext, store: ReportStore, u: UpdateRecord, o: { extra: object; notes: string[]; line: (servers: number) => string }): Promise<void> {
  const servers = await store.getServers(u.name);
  const overlaps = await store.overlappingUpdates(u.name);
  const warnings = [...(await freezeWarnings(store, u.repo)), ...overlapWarnings(ctx, overlaps)];
  if (ctx.opts.json) {
    ctx.printJson({ ...updateJson(u, servers, await store.budgetUse(u)), ...o.extra, overlaps, warnings });
    return;
  }
  ctx.print('\n' + updateText(u, servers, await store.budgetUse(u), { width: ctx.width() }));
  for (const n of o.notes) ctx.err.write(`note: ${n}\n`);
  for (const w of warnings) ctx.err.write(`warning: ${w}\n`);
  ctx.print(`\n${o.line(servers.length)}`);
  ctx.result(u.name);
}

/** A new plan of a repo that is frozen: planning goes on, but start, resume and auto refuse it until the freeze is lifted. */
export async function freezeWarnings(store: ReportStore, repo: string): Promise<string[]> {
  const f = await activeFreezeOf(store, repo);
  if (!f) return [];
  return [`deploys of ${visibleLine(f.repo)} are frozen ${visibleLine(describeFreeze(f))}: the plan is recorded, but start, resume and auto refuse it (exit 3) until \`${unfreezeHint(f)}\``];
}

/** The warnings of a new plan whose servers are also in other unfinished updates (ReportStore.overlappingUpdates). */
export function overlapWarnings(ctx: CliContext, overlaps: readonly Overlap[]): string[] {
  return overlaps.map(
    (o) =>
      `${o.servers.length} of this plan's servers ${o.servers.length === 1 ? 'is' : 'are'} also in update ${o.update} (${o.status}), not finished: ` +
      `${o.servers.slice(0, 10).join(', ')}${o.servers.length > 10 ? ', …' : ''}. Each server is worked on by one update at a time ` +
      `(the other waits); if ${o.update} is stale, \`${ctx.cmd(`cancel ${o.update}`)}\``,
  );
}
