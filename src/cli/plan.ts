import { loadConfig } from '../config/load.js';
import { checkUpdateName, createPlan, refreshPlan, selectServers } from '../plan/plan.js';
import { resolveCommit, resolveRollbackCommit } from '../plan/source.js';
import { updateJson } from '../output/status-json.js';
import { updateText } from '../output/text.js';
import { EXIT, UsageError } from '../errors.js';
import { checkLocalSsh } from '../ssh/transport.js';
import { type CliContext, parseCount } from './context.js';

export async function planCommand(ctx: CliContext, opts: { config?: string; name?: string; refresh?: string; concurrency?: string }): Promise<number> {
  const concurrency = parseCount('--concurrency', opts.concurrency, 1) ?? 32;
  if (opts.refresh !== undefined) {
    if (opts.config !== undefined || opts.name !== undefined) throw new UsageError('plan --refresh NAME takes no -c or --name: it re-probes what the plan of NAME stored');
    return refreshCommand(ctx, opts.refresh, concurrency);
  }
  if (opts.config === undefined) throw new UsageError("plan needs -c FILE (the config), or --refresh NAME");
  // Everything that can be wrong with the input is found before the database is even opened.
  const config = loadConfig(opts.config);
  if (opts.name !== undefined) checkUpdateName(opts.name);
  // The target commit too: a branch or commit the repo does not have is bad input (exit 2).
  const commit = await resolveCommit(config.source.repo, config.source.branch, config.source.commit);
  // And an abbreviated rollback.commit, expanded to the one commit it names.
  const rollbackCommit = config.rollback.commit === null ? null : await resolveRollbackCommit(config.source.repo, config.rollback.commit);
  // And what connecting needs on this side (an unreadable key, a missing passphrase), which
  // would otherwise mark every server unreachable for a reason that is not theirs.
  await checkLocalSsh(ctx.transport(), config.ssh, 'cannot plan', selectServers(config));
  const store = ctx.store(true);
  ctx.announceDb();
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

/** `plan --refresh NAME`: probe the unreachable servers again; Ctrl-C cuts the probes (nothing is recorded for those). */
async function refreshCommand(ctx: CliContext, name: string, concurrency: number): Promise<number> {
  const store = ctx.store();
  ctx.announceDb();
  const reporter = await ctx.reporter(false);
  const interrupt = new AbortController();
  const onSignal = () => {
    if (interrupt.signal.aborted) process.exit(EXIT.interrupted);
    interrupt.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const r = await refreshPlan({ store, transport: ctx.transport(), clock: ctx.clock, emit: reporter.onEvent }, name, { concurrency, signal: interrupt.signal });
    reporter.stop();
    const servers = store.getServers(name);
    if (ctx.opts.json) {
      ctx.printJson({ ...updateJson(r.update, servers, store.budgetUse(r.update)), refreshed: { probed: r.probed, pending: r.nowPending, skipped: r.nowSkipped, unreachable: r.stillUnreachable } });
    } else {
      ctx.print('\n' + updateText(r.update, servers, store.budgetUse(r.update)));
      ctx.print(
        r.probed === 0
          ? `\n${name} has no unreachable server: nothing to refresh`
          : `\nre-probed ${r.probed} unreachable server${r.probed === 1 ? '' : 's'}: ${r.nowPending} now pending, ${r.nowSkipped} already at the target, ${r.stillUnreachable} still unreachable`,
      );
      if (r.nowPending > 0) ctx.print(`continue with: ${ctx.cmd(`${r.update.status === 'paused' ? 'resume' : 'start'} ${name}`)}`);
    }
    return interrupt.signal.aborted ? EXIT.interrupted : 0;
  } finally {
    reporter.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
