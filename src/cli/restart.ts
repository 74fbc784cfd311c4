import { loadConfig } from '../config/load.js';
import { EXIT } from '../errors.js';
import { showCommands } from '../plan/commands.js';
import { checkUpdateName, selectServers } from '../plan/plan.js';
import { withOverrides } from '../plan/overrides.js';
import { createRestart, NO_COMMIT, restartSettings } from '../plan/restart.js';
import { commandsText } from '../output/text.js';
import { plural } from '../util/plural.js';
import { type CliContext, parseCount } from './context.js';
import { printNewPlan, probeInterrupts } from './new-plan.js';

export interface RestartOptions {
  config: string;
  name?: string;
  limit?: string[];
  concurrency?: string;
  /** false with --no-start: plan only */
  start?: boolean;
  stopAfter?: string;
  waitForWindow?: boolean;
  showCommands?: boolean;
}

/**
 * `restart -c FILE`: a rolling restart, planned and started at once (as `kubectl rollout restart`
 * restarts at once; `--no-start` plans it only, for `start NAME` after a look). The plan is
 * printed first (with --json and the start, stdout is the run's event stream alone); the exit
 * code is the run's, as `start NAME`'s. `--show-commands`: what each server would get, nothing
 * probed, recorded or run.
 */
export async function restartCommand(ctx: CliContext, opts: RestartOptions): Promise<number> {
  const concurrency = parseCount('--concurrency', opts.concurrency, 1) ?? 32;
  parseCount('--stop-after', opts.stopAfter); // as start reads it, checked before anything is written
  // Everything that can be wrong with the input is found before the database is opened.
  const config = withOverrides(loadConfig(opts.config), { limit: opts.limit });
  if (opts.name !== undefined) checkUpdateName(opts.name);
  if (opts.showCommands) {
    const doc = showCommands(null, restartSettings(config), NO_COMMIT, selectServers(config).map((s) => ({ name: s.name, fromCommit: 'unknown' as const })));
    if (ctx.opts.json) ctx.printJson(doc);
    else ctx.print(commandsText(doc));
    return 0;
  }
  const start = opts.start !== false;
  const store = await ctx.store(true);
  ctx.announceDb();
  const reporter = await ctx.reporter(false);
  const interrupts = probeInterrupts();
  let name: string;
  try {
    const u = await createRestart({ store, transport: await ctx.transport(), clock: ctx.clock, emit: reporter.onEvent }, config, { name: opts.name, concurrency, signal: interrupts.signal });
    reporter.stop();
    name = u.name;
    const servers = await store.getServers(name);
    const pending = servers.filter((s) => s.status === 'pending').length;
    const unreachable = servers.filter((s) => s.status === 'unreachable').length;
    const left = unreachable > 0 ? `; ${plural(unreachable, 'unreachable server')} left alone` : '';
    if (!(start && ctx.opts.json && pending > 0)) {
      await printNewPlan(ctx, store, u, {
        extra: {},
        notes: [],
        line: (n) =>
          pending === 0
            ? `planned restart ${name}, but none of its ${plural(n, 'server')} could be reached: nothing to restart. Check them, then \`${ctx.cmd(`plan --refresh ${name}`)}\` and \`${ctx.cmd(`start ${name}`)}\`, or \`${ctx.cmd(`forget ${name}`)}\``
            : `planned restart ${name}: ${plural(pending, 'server')}, one at a time, each restarted and verified at the commit it runs${left}; ` +
              (start ? 'starting it' : `run it with: ${ctx.cmd(`start ${name}`)}; the commands: ${ctx.cmd(`plan --show-commands ${name}`)}`),
      });
    }
    if (pending === 0) return EXIT.unreachable;
  } finally {
    reporter.stop();
    interrupts.dispose();
  }
  if (!start) return 0;
  // once the probes' Ctrl-C handling is gone: the first Ctrl-C pauses, the second stops at once, as for start
  const { runCommand } = await import('./start.js');
  const { Interrupts } = await import('./interrupts.js');
  return runCommand(ctx, 'start', [name], { stopAfter: opts.stopAfter, waitForWindow: opts.waitForWindow }, new Interrupts());
}
