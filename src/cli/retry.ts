import { createRetry, type RetrySelection } from '../plan/retry.js';
import { plural } from '../util/plural.js';
import { suggest } from '../util/suggest.js';
import { type CliContext, parseCount } from './context.js';
import { printNewPlan, probeInterrupts, startPlanned } from './new-plan.js';

/** `retry NAME [--name NEW] [--include-fatal]`: plan the servers of NAME that did not make it again; Ctrl-C cuts the probes. */
export async function retryCommand(ctx: CliContext, name: string, opts: { name?: string; includeFatal?: boolean; concurrency?: string; start?: boolean }): Promise<number> {
  const planned = await planRetry(ctx, name, opts);
  // --start: once the probes' Ctrl-C handling is gone, the new update runs as `start` runs it
  return planned.start ? startPlanned(ctx, planned.start) : planned.code;
}

async function planRetry(ctx: CliContext, name: string, opts: { name?: string; includeFatal?: boolean; concurrency?: string; start?: boolean }): Promise<{ code: number; start?: string }> {
  const concurrency = parseCount('--concurrency', opts.concurrency, 1) ?? 32;
  const store = await ctx.store();
  const reporter = await ctx.reporter(false);
  const interrupts = probeInterrupts();
  try {
    const r = await createRetry(
      { store, transport: await ctx.transport(), clock: ctx.clock, emit: reporter.onEvent },
      name,
      { newName: opts.name, includeFatal: Boolean(opts.includeFatal), concurrency, signal: interrupts.signal },
    );
    reporter.stop();
    const notes = notesOf(r.selection);
    if (r.update === null) {
      const message = `nothing to retry in ${name}: no server of it${r.selection.group.length > 1 ? ' or its batches' : ''} ended rolled-back, failed or unreachable${r.selection.fatalLeftOut.length ? ' (fatal ones are taken only with --include-fatal)' : ''}; nothing was written`;
      if (ctx.opts.json) ctx.printJson({ retry: null, retryOf: name, message, notes, fatalLeftOut: r.selection.fatalLeftOut.map((s) => s.name) });
      else {
        ctx.print(message);
        for (const n of notes) ctx.err.write(`note: ${n}\n`);
        ctx.result('nothing-to-retry');
      }
      return { code: 0 };
    }
    ctx.announceDb();
    // with --start and --json, stdout is the run's event stream alone
    if (!(opts.start && ctx.opts.json)) {
      await printNewPlan(ctx, store, r.update, {
        extra: { notes, fatalLeftOut: r.selection.fatalLeftOut.map((s) => s.name) },
        notes,
        line: (n) => `planned update ${r.update!.name}, a retry of ${name} (${plural(n, 'server')}); ${opts.start ? 'starting it' : `run it with: ${ctx.cmd(`start ${r.update!.name}`)}`}`,
      });
    }
    return { code: 0, start: opts.start ? r.update.name : undefined };
  } finally {
    reporter.stop();
    interrupts.dispose();
  }
}

/** What the retry did not take, and why. */
function notesOf(sel: RetrySelection): string[] {
  const notes: string[] = [];
  if (sel.fatalLeftOut.length > 0) {
    notes.push(
      `${plural(sel.fatalLeftOut.length, 'fatal server')} left out: ${sel.fatalLeftOut.map((s) => s.name).join(', ')}. Its rollback failed too, so a person must look at it ` +
        `(\`${suggest(`logs ${sel.from.name} --server ${sel.fatalLeftOut[0]!.name}`)}\`) before it is touched again; then retry with --include-fatal`,
    );
  }
  if (sel.neverRun.length > 0) {
    notes.push(`${plural(sel.neverRun.length, 'server')} of ${sel.from.name} never ran (still pending, not retried): ${sel.neverRun.map((s) => s.name).join(', ')}`);
  }
  return notes;
}
