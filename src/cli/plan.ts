import { loadConfig } from '../config/load.js';
import { checkUpdateName, createPlan, selectServers } from '../plan/plan.js';
import { resolveCommit } from '../plan/source.js';
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
  // And what connecting needs on this side (an unreadable key, a missing passphrase), which
  // would otherwise mark every server unreachable for a reason that is not theirs.
  await checkLocalSsh(ctx.transport(), config.ssh, 'cannot plan', selectServers(config));
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
      { store, transport: ctx.transport(), clock: ctx.clock, emit: reporter.onEvent, resolve: () => Promise.resolve(commit) },
      config,
      { name: opts.name, concurrency, signal: interrupt.signal },
    );
    const servers = store.getServers(u.name);
    // Servers this plan shares with another unfinished update: they will wait for each other.
    const overlaps = store.overlappingUpdates(u.name);
    const warnings = overlaps.map(
      (o) =>
        `${o.servers.length} of this plan's servers ${o.servers.length === 1 ? 'is' : 'are'} also in update ${o.update} (${o.status}), not finished: ` +
        `${o.servers.slice(0, 10).join(', ')}${o.servers.length > 10 ? ', …' : ''}. Each server is worked on by one update at a time ` +
        `(the other waits); if ${o.update} is stale, \`${ctx.cmd(`cancel ${o.update}`)}\``,
    );
    if (ctx.opts.json) ctx.printJson({ ...updateJson(u, servers, store.budgetUse(u)), overlaps, warnings });
    else {
      ctx.print('\n' + updateText(u, servers, store.budgetUse(u)));
      for (const w of warnings) ctx.err.write(`warning: ${w}\n`);
      ctx.print(`\nplanned update ${u.name}; run it with: ${ctx.cmd(`start ${u.name}`)}`);
    }
    return 0;
  } finally {
    reporter.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
