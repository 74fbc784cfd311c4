import pLimit from 'p-limit';
import { AppError, EXIT, UsageError } from '../errors.js';
import { checkLocalSsh } from '../ssh/transport.js';
import { updateJson } from '../output/status-json.js';
import { assertRunnable, requestPause, runUpdate, serversToReach, type RunOptions, type RunResult } from '../rollout/run.js';
import { type CliContext, parseCount } from './context.js';

/** Severity of an executor's exit code when several run at once: the worst one is returned. */
const SEVERITY: Record<number, number> = { [EXIT.ok]: 0, [EXIT.paused]: 1, [EXIT.busy]: 2, [EXIT.failure]: 3, [EXIT.interrupted]: 4 };

export async function runCommand(
  ctx: CliContext,
  mode: RunOptions['mode'],
  names: string[],
  opts: { stopAfter?: string; parallel?: string },
): Promise<number> {
  const stopAfter = parseCount('--stop-after', opts.stopAfter);
  const parallel = parseCount('--parallel', opts.parallel, 1) ?? Math.min(names.length, 10);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw new UsageError(`${dup} is named twice`);
  const store = ctx.store();
  // Refuse the whole command before anything runs if any one update cannot start.
  for (const name of names) assertRunnable(store, name, mode);
  for (const name of names) {
    await checkLocalSsh(ctx.transport(), store.getUpdate(name).settings.ssh, `cannot ${mode} ${name}`, serversToReach(store.getServers(name)));
  }

  const hardStop = new AbortController();
  let interrupts = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    interrupts++;
    if (interrupts === 1) {
      for (const name of names) {
        try {
          if (store.getUpdate(name).status === 'running') requestPause(store, name, ctx.clock.now());
        } catch {
          // not running (yet, or any more): nothing to pause
        }
      }
      ctx.err.write(`\n${signal}: pausing after the server in flight finishes; press Ctrl-C again to stop at once\n`);
    } else {
      ctx.err.write(`\n${signal}: stopping now; the server in flight stays recorded and \`agent-update start\` takes it over\n`);
      hardStop.abort();
      setTimeout(() => process.exit(EXIT.interrupted), 3_000).unref();
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const reporter = await ctx.reporter(names.length > 1);
  const deps = { store, transport: ctx.transport(), clock: ctx.clock, emit: reporter.onEvent };
  const limit = pLimit(parallel);
  try {
    // allSettled: a bug in one batch must not close the store under the others still running.
    const settled = await Promise.allSettled(
      names.map((name) =>
        limit(async (): Promise<RunResult | { update: string; error: AppError } | { update: string; notStarted: true }> => {
          // Interrupted before this update's turn (--parallel smaller than the names): do not start it.
          if (interrupts > 0) return { update: name, notStarted: true };
          try {
            return await runUpdate(deps, name, { mode, stopAfter, signal: hardStop.signal });
          } catch (e) {
            if (e instanceof AppError) return { update: name, error: e };
            throw e;
          }
        }),
      ),
    );
    const bug = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (bug) throw bug.reason;
    const results = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    let worst: number = EXIT.ok;
    for (const r of results) {
      const code = 'error' in r ? r.error.exitCode : 'notStarted' in r ? EXIT.paused : r.exitCode;
      if ('error' in r) ctx.err.write(`agent-update: ${r.update}: ${r.error.message}\n`);
      if ((SEVERITY[code] ?? 3) > (SEVERITY[worst] ?? 0)) worst = code;
    }
    reporter.stop();
    if (ctx.opts.json) {
      const docs = names.map((n) => {
        const u = store.getUpdate(n);
        return updateJson(u, store.getServers(n), store.budgetUse(u));
      });
      ctx.printJson(names.length === 1 ? docs[0] : { updates: docs });
    } else {
      for (const r of results) {
        if ('error' in r) continue;
        if ('notStarted' in r) {
          ctx.print(`${r.update} not started (interrupted before its turn); run it with: ${ctx.cmd(`${mode} ${r.update}`)}`);
          continue;
        }
        if (r.status === 'paused') ctx.print(`${r.update} paused (${r.reason}); continue with: ${ctx.cmd(`resume ${r.update}`)}`);
        else if (r.status !== 'success') ctx.print(`see what happened: ${ctx.cmd(`status ${r.update}`)}; ${ctx.cmd(`logs ${r.update}`)}`);
      }
      const paused = results.flatMap((r) => ('error' in r || 'notStarted' in r || r.status !== 'paused' ? [] : [r.update]));
      if (paused.length > 1) ctx.print(`continue all ${paused.length} with: ${ctx.cmd(`resume ${paused.join(' ')}`)}`);
    }
    return worst;
  } finally {
    reporter.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
