import { loadConfig } from '../config/load.js';
import { checkUpdateName, createPlan } from '../plan/plan.js';
import { resolveCommit, resolveRollbackCommit } from '../plan/source.js';
import { updateJson } from '../output/status-json.js';
import { updateText } from '../output/text.js';
import { EXIT } from '../errors.js';
import { checkLocalSsh } from '../ssh/transport.js';
import { type CliContext, parseCount } from './context.js';

export async function planCommand(ctx: CliContext, opts: { config: string; name?: string; concurrency?: string }): Promise<number> {
  const concurrency = parseCount('--concurrency', opts.concurrency, 1) ?? 32;
  // Everything that can be wrong with the input is found before the database is even opened.
  const config = loadConfig(opts.config);
  if (opts.name !== undefined) checkUpdateName(opts.name);
  // The target commit too: a branch or commit the repo does not have is bad input (exit 2).
  const commit = await resolveCommit(config.source.repo, config.source.branch, config.source.commit);
  // And an abbreviated rollback.commit, expanded to the one commit it names.
  const rollbackCommit = config.rollback.commit === null ? null : await resolveRollbackCommit(config.source.repo, config.rollback.commit);
  // And what connecting needs on this side (an unreadable key, a missing passphrase), which
  // would otherwise mark every server unreachable for a reason that is not theirs.
  await checkLocalSsh(ctx.transport(), config.ssh, 'cannot plan');
  const store = ctx.store(true);
  const reporter = await ctx.reporter(false);
  // Ctrl-C (or SIGTERM) cuts the probes and records the update cancelled; a second one exits.
  const interrupt = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupt.signal.aborted) process.exit(EXIT.interrupted);
    reporter.stop();
    ctx.err.write(`\n${signal}: stopping the probes; the update will be recorded as cancelled\n`);
    interrupt.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const u = await createPlan(
      { store, transport: ctx.transport(), clock: ctx.clock, emit: reporter.onEvent, resolve: () => Promise.resolve(commit), resolveRollback: () => Promise.resolve(rollbackCommit!) },
      config,
      { name: opts.name, concurrency, signal: interrupt.signal },
    );
    const servers = store.getServers(u.name);
    if (ctx.opts.json) ctx.printJson(updateJson(u, servers));
    else {
      ctx.print('\n' + updateText(u, servers));
      ctx.print(`\nplanned update ${u.name}; run it with: ${ctx.cmd(`start ${u.name}`)}`);
    }
    return 0;
  } finally {
    reporter.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
