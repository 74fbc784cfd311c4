import { createUndo, type UndoSelection } from '../plan/undo.js';
import { plural } from '../util/plural.js';
import { type CliContext, parseCount } from './context.js';
import { printNewPlan, probeInterrupts, startPlanned } from './new-plan.js';

/** `undo NAME [--name NEW]`: plan putting each server NAME changed back to its own previous commit; Ctrl-C cuts the probes. */
export async function undoCommand(ctx: CliContext, name: string, opts: { name?: string; concurrency?: string; start?: boolean }): Promise<number> {
  const planned = await planUndo(ctx, name, opts);
  // --start: once the probes' Ctrl-C handling is gone, the new update runs as `start` runs it
  return planned.start ? startPlanned(ctx, planned.start) : planned.code;
}

async function planUndo(ctx: CliContext, name: string, opts: { name?: string; concurrency?: string; start?: boolean }): Promise<{ code: number; start?: string }> {
  const concurrency = parseCount('--concurrency', opts.concurrency, 1) ?? 32;
  const store = await ctx.store();
  const reporter = await ctx.reporter(false);
  const interrupts = probeInterrupts();
  try {
    const r = await createUndo({ store, transport: await ctx.transport(), clock: ctx.clock, emit: reporter.onEvent }, name, {
      newName: opts.name,
      concurrency,
      signal: interrupts.signal,
    });
    reporter.stop();
    const changedSince = changedSinceOf(r.selection);
    // a rolling restart changed no commit: nothing of it is undone, and nothing to explain server by server
    const restart = r.selection.from.settings.restartOnly === true;
    const notes = restart ? [] : [
      ...(changedSince.length ? [leftOutNote(r.selection)] : []),
      ...(r.selection.notUndone.length
        ? [
            `${plural(r.selection.notUndone.length, 'server')} ${name} changed but did not end success ${r.selection.notUndone.length === 1 ? 'is' : 'are'} not undone: ` +
              r.selection.notUndone.map((n) => `${n.server.name} (${n.why})`).join(', ') +
              '; put them back by hand or with a plan of their own',
          ]
        : []),
      ...(r.selection.from.status === 'paused'
        ? [`${name} is paused: resuming it would go on with its pending servers; \`${ctx.cmd(`cancel ${name}`)}\` if it should not`]
        : []),
    ];
    const notUndone = r.selection.notUndone.map((n) => ({ server: n.server.name, update: n.server.updateName, why: n.why }));
    if (r.update === null) {
      const message = restart
        ? `nothing to undo in ${name}: it is a rolling restart, which changes no commit; nothing was written`
        : `nothing to undo in ${name}: no server of it${r.selection.group.length > 1 ? ' or its batches' : ''} was changed by it` +
          `${changedSince.length ? ' and left alone since' : ' (none ended success)'}; nothing was written`;
      if (ctx.opts.json) ctx.printJson({ undo: null, undoOf: name, message, changedSince, notUndone, notes });
      else {
        ctx.print(message);
        for (const n of notes) ctx.err.write(`note: ${n}\n`);
        ctx.result('nothing-to-undo');
      }
      return { code: 0 };
    }
    ctx.announceDb();
    // with --start and --json, stdout is the run's event stream alone
    if (!(opts.start && ctx.opts.json)) {
      await printNewPlan(ctx, store, r.update, {
        extra: { changedSince, notUndone, notes },
        notes,
        line: (n) =>
          `planned update ${r.update!.name}, the undo of ${name}: ${plural(n, 'server')}, each back to the commit it had before ${name}; ` +
          (opts.start ? 'starting it' : `run it with: ${ctx.cmd(`start ${r.update!.name}`)}`),
      });
    }
    return { code: 0, start: opts.start ? r.update.name : undefined };
  } finally {
    reporter.stop();
    interrupts.dispose();
  }
}

/** `--json`: each server left out, the update of NAME's split it was in, and the later update (and how it ended there) that changed it. */
function changedSinceOf(sel: UndoSelection): Array<{ server: string; update: string; by: { update: string; status: string } }> {
  return sel.changedSince.map((c) => ({ server: c.server.name, update: c.server.updateName, by: c.by }));
}

function leftOutNote(sel: UndoSelection): string {
  return (
    `${plural(sel.changedSince.length, 'server')} left out, changed since by another update (undoing ${sel.from.name} there would undo that one too): ` +
    sel.changedSince.map((c) => `${c.server.name} by ${c.by.update} (${c.by.status})`).join(', ')
  );
}
