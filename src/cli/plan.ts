import { loadConfig } from '../config/load.js';
import { checkOnly, checkUpdateName, createPlan, refreshPlan, selectServers, settingsOf } from '../plan/plan.js';
import { checkCeiling, parseOnly } from '../plan/versions.js';
import { resolveRollbackCommit, resolveTarget, SourceHistory, withResolvedStones } from '../plan/source.js';
import { refuseOverrides, withOverrides, type OverrideFlags } from '../plan/overrides.js';
import { planChanges } from '../plan/changes.js';
import { showCommands } from '../plan/commands.js';
import { statusOf, updateJson } from '../output/status-json.js';
import { commandsText, planText, updateText } from '../output/text.js';
import { EXIT, UsageError } from '../errors.js';
import { checkLocalSsh } from '../ssh/transport.js';
import { type CliContext, parseCount } from './context.js';
import { freezeWarnings, overlapWarnings } from './new-plan.js';
import { plural } from '../util/plural.js';
import type { SteppingStone } from '../config/types.js';
import type { ServerRecord } from '../model/records.js';
import { ACTIVE_SERVER } from '../model/lifecycle.js';

export async function planCommand(
  ctx: CliContext,
  opts: { config?: string; name?: string; refresh?: string; concurrency?: string; showCommands?: string | boolean; only?: string } & OverrideFlags,
): Promise<number> {
  const concurrency = parseCount('--concurrency', opts.concurrency, 1) ?? 32;
  const only = parseOnly(opts.only);
  if (opts.refresh !== undefined) refuseOverrides(opts, 'plan --refresh NAME re-probes what the plan of NAME stored (its servers, its target)');
  if (opts.showCommands !== undefined && opts.config === undefined && typeof opts.showCommands === 'string') {
    refuseOverrides(opts, 'plan --show-commands NAME shows the plan of NAME as it was made; with -c FILE they change what the config would plan');
  }
  if (only !== null && (opts.showCommands !== undefined || opts.refresh !== undefined)) {
    throw new UsageError(`plan --only classes the servers of a new plan: not with ${opts.refresh !== undefined ? '--refresh (it keeps the class the plan was made with)' : '--show-commands'}`);
  }
  if (opts.showCommands !== undefined) {
    if (opts.refresh !== undefined) throw new UsageError('plan --show-commands and --refresh: one at a time');
    if (opts.name !== undefined) throw new UsageError('plan --show-commands records no plan, so it takes no --name; to see the commands of an update: plan --show-commands NAME');
    return showCommandsCommand(ctx, opts.config, typeof opts.showCommands === 'string' ? opts.showCommands : undefined, opts);
  }
  if (opts.refresh !== undefined) {
    if (opts.config !== undefined || opts.name !== undefined) throw new UsageError('plan --refresh NAME takes no -c or --name: it re-probes what the plan of NAME stored');
    return refreshCommand(ctx, opts.refresh, concurrency);
  }
  if (opts.config === undefined) throw new UsageError("plan needs -c FILE (the config), or --refresh NAME");
  // Everything that can be wrong with the input is found before the database is even opened.
  let config = loadConfig(opts.config);
  if (opts.name !== undefined) checkUpdateName(opts.name);
  // --limit, --branch, --commit, --version: checked as the config's values are (a tag read for --version)
  config = withOverrides(config, opts);
  // A target above what the control plane supports is refused before anything is read or run.
  checkCeiling(config.file, config.source);
  checkOnly(config, only);
  // The target commit too: a branch or commit the repo does not have is bad input (exit 2).
  const commit = await resolveTarget(config);
  // And an abbreviated rollback.commit, expanded to the one commit it names.
  const rollbackCommit = config.rollback.commit === null ? null : await resolveRollbackCommit(config.source.repo, config.rollback.commit);
  // And the stepping stones' commits, the same way.
  config = await withResolvedStones(config);
  // And what connecting needs on this side (an unreadable key, a missing passphrase), which
  // would otherwise mark every server unreachable for a reason that is not theirs.
  await checkLocalSsh(await ctx.transport(), config.ssh, 'cannot plan', selectServers(config));
  const store = await ctx.store(true);
  ctx.announceDb();
  const reporter = await ctx.reporter(false);
  // Ctrl-C (or SIGTERM) cuts the probes and records nothing (the update is removed); a second one exits.
  const interrupt = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupt.signal.aborted) process.exit(EXIT.interrupted);
    reporter.stop();
    ctx.err.write(`\n${signal}: stopping the probes; nothing will be recorded\n`);
    interrupt.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // The source history (what the update changes) is fetched while the servers are probed; a
  // failure there is a warning, never a failed plan. It is cut by Ctrl-C, and once the plan is
  // done with it (an error ends the plan without waiting for the fetch).
  const historyStop = new AbortController();
  interrupt.signal.addEventListener('abort', () => historyStop.abort(), { once: true });
  const history = SourceHistory.fetch(config.source.repo, { signal: historyStop.signal }).catch((e: Error) => ({ error: e.message }));
  try {
    const u = await createPlan(
      { store, transport: await ctx.transport(), clock: ctx.clock, emit: reporter.onEvent, resolve: () => Promise.resolve(commit), resolveRollback: () => Promise.resolve(rollbackCommit!) },
      config,
      { name: opts.name, concurrency, signal: interrupt.signal, only },
    );
    const servers = await store.getServers(u.name);
    // Servers this plan shares with another unfinished update: they will wait for each other.
    const overlaps = await store.overlappingUpdates(u.name);
    const warnings = [...(await freezeWarnings(store, u.repo)), ...overlapWarnings(ctx, overlaps)];
    const changes = await planChanges(await history, u.commit, servers);
    if (changes.error !== null) {
      warnings.push(`cannot read what the update changes (the commits between the running commits and the target) from ${u.repo}: ${changes.error}; the plan is made without it`);
    }
    warnings.push(...(await stoneWarnings(await history, u.commit, u.settings.versions?.steppingStones ?? [], servers)));
    // Not one server answered: `start` would have nothing to do but fail; say what to do instead.
    const noneReached = servers.length > 0 && servers.every((s) => s.status === 'unreachable');
    if (ctx.opts.json) ctx.printJson({ ...updateJson(u, servers, await store.budgetUse(u)), changes, overlaps, warnings });
    else {
      ctx.print('\n' + planText(u, servers, changes, await store.budgetUse(u), ctx.width()));
      for (const w of warnings) ctx.err.write(`warning: ${w}\n`);
      if (noneReached) ctx.err.write(noneReachedText(ctx, u.name, servers));
      else {
        ctx.print(`\nplanned update ${u.name}; run it with: ${ctx.cmd(`start ${u.name}`)}`);
        ctx.print(`the exact commands it will send: ${ctx.cmd(`plan --show-commands ${u.name}`)}`);
      }
      ctx.result(u.name);
    }
    return noneReached ? EXIT.unreachable : 0;
  } finally {
    reporter.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    historyStop.abort();
    const h = await history;
    if (h instanceof SourceHistory) h.close();
  }
}

/** What a plan (or a refresh) none of whose servers answered says on stderr, with what to do. */
function noneReachedText(ctx: CliContext, name: string, servers: readonly ServerRecord[]): string {
  const reasons = [...new Set(servers.map((s) => s.error ?? 'no reason recorded'))];
  const shown = reasons.slice(0, 3).map((r) => `  ${r}\n`).join('');
  return (
    `\nagent-update: no server of ${name} could be reached (${plural(servers.length, 'server')} unreachable), so there is nothing to start. ` +
    `The plan is recorded. Reasons:\n${shown}${reasons.length > 3 ? `  … and ${reasons.length - 3} more (\`${ctx.cmd(`status ${name}`)}\`)\n` : ''}` +
    `Check that the servers are up and reachable from here (\`${ctx.cmd('servers -c FILE')}\` shows how each is reached), ` +
    `then probe them again with \`${ctx.cmd(`plan --refresh ${name}`)}\`; or remove the plan with \`${ctx.cmd(`forget ${name}`)}\`.\n`
  );
}

/**
 * `plan --show-commands NAME`: the commands each server of the update still to be worked on
 * will get, with its probed commit as `{previous_commit}`; `plan -c FILE --show-commands`: the
 * commands of the config's servers, the target resolved (the source repo is read), nothing
 * probed, `{previous_commit}` shown as `<previous_commit>`. Neither connects to a server; only
 * NAME opens the database, to read it.
 */
async function showCommandsCommand(ctx: CliContext, file: string | undefined, name: string | undefined, flags: OverrideFlags): Promise<number> {
  let doc;
  if (name !== undefined) {
    if (file !== undefined) throw new UsageError('plan --show-commands NAME reads the plan of NAME: give it no -c (or give -c FILE and no NAME)');
    const store = await ctx.store();
    const u = await store.getUpdate(name);
    const all = await store.getServers(name);
    const servers = all.filter((s) => ACTIVE_SERVER.has(s.status));
    // the steps divide all of the update's servers, the done ones too
    doc = showCommands(name, u.settings, u.commit, servers, all, u.undoOf);
  } else {
    if (file === undefined) throw new UsageError('plan --show-commands needs -c FILE (the config) or the name of a planned update');
    let config = withOverrides(loadConfig(file), flags);
    // what `plan -c` refuses before anything is read is refused here too
    checkCeiling(config.file, config.source);
    const servers = selectServers(config);
    if (servers.length === 0) throw new UsageError(`${config.file}: server_types, include and exclude select no server`);
    const commit = await resolveTarget(config);
    const rollbackCommit = config.rollback.commit === null ? null : await resolveRollbackCommit(config.source.repo, config.rollback.commit);
    config = await withResolvedStones(config);
    doc = showCommands(null, settingsOf(config, commit, rollbackCommit), commit, servers.map((s) => ({ name: s.name, fromCommit: 'unknown' as const })));
    // each server's path needs its version, read only by the plan's probe: the commands above are
    // those of a server that upgrades directly; say that the older ones walk the stones first
    const stones = config.source.steppingStones ?? [];
    if (stones.length > 0 && !ctx.opts.json) {
      ctx.print(commandsText(doc));
      ctx.print(
        `\nservers below source.min_version ${config.source.minVersion} first walk the stepping stones ` +
          `${stones.map((st) => `${st.version} (${st.commit.slice(0, 12)})`).join(', ')} above their version, each hop these commands ` +
          `with {commit} the stone's; their versions are read when planning: \`${ctx.cmd('plan -c FILE')}\`, then ` +
          `\`${ctx.cmd('plan --show-commands NAME')}\` shows each server's hops`,
      );
      return 0;
    }
  }
  if (ctx.opts.json) ctx.printJson(doc);
  else ctx.print(commandsText(doc));
  return 0;
}

/** `plan --refresh NAME`: probe the unreachable servers again; Ctrl-C cuts the probes (nothing is recorded for those). */
async function refreshCommand(ctx: CliContext, name: string, concurrency: number): Promise<number> {
  const store = await ctx.store();
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
    const r = await refreshPlan({ store, transport: await ctx.transport(), clock: ctx.clock, emit: reporter.onEvent }, name, { concurrency, signal: interrupt.signal });
    reporter.stop();
    // as status shows it: with the whole rollout when it was split (its unreachable servers stay with it)
    const { servers, budget, split } = await statusOf(store, name);
    // every server of the update still unreachable (a refresh of a plan none of whose servers answered)
    const noneReached = r.probed > 0 && servers.every((s) => s.status === 'unreachable');
    if (ctx.opts.json) {
      ctx.printJson({ ...updateJson(r.update, servers, budget, split), refreshed: { probed: r.probed, pending: r.nowPending, skipped: r.nowSkipped, unreachable: r.stillUnreachable, excluded: r.nowExcluded } });
    } else {
      ctx.print('\n' + updateText(r.update, servers, budget, { width: ctx.width(), batches: split }));
      ctx.print(
        r.probed === 0
          ? `\n${name} has no unreachable server: nothing to refresh`
          : `\nre-probed ${r.probed} unreachable server${r.probed === 1 ? '' : 's'}: ${r.nowPending} now pending, ${r.nowSkipped} already at the target, ${r.stillUnreachable} still unreachable` +
              (r.nowExcluded > 0 ? `, ${r.nowExcluded} excluded` : ''),
      );
      if (r.nowPending > 0) ctx.print(`continue with: ${ctx.cmd(`${r.update.status === 'paused' ? 'resume' : 'start'} ${name}`)}`);
      else if (noneReached) ctx.err.write(noneReachedText(ctx, name, servers));
      ctx.result(`${name} ${r.nowPending} pending ${r.nowSkipped} skipped ${r.stillUnreachable} unreachable`);
    }
    if (interrupt.signal.aborted) return EXIT.interrupted;
    return noneReached ? EXIT.unreachable : 0;
  } finally {
    reporter.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/**
 * A stepping stone some server walks that is not an ancestor of the target: the usual update
 * commands fetch `{branch}`, which does not bring it, and the hop would fail on the server.
 */
async function stoneWarnings(
  history: SourceHistory | { error: string },
  target: string,
  stones: readonly SteppingStone[],
  servers: readonly ServerRecord[],
): Promise<string[]> {
  if (!(history instanceof SourceHistory)) return [];
  const used = new Set(servers.flatMap((s) => (s.status === 'pending' ? (s.path ?? []).slice(0, -1).map((h) => h.commit) : [])));
  const out: string[] = [];
  for (const st of stones) {
    if (!used.has(st.commit)) continue;
    const r = await history.relation(st.commit, target).catch(() => null);
    if (r === null || r.relation === 'behind') continue;
    out.push(
      `the stepping stone ${st.version} (${st.commit.slice(0, 12)}) is not an ancestor of the target (${r.relation}): ` +
        `update commands that fetch {branch} do not bring it; make sure they fetch it (e.g. fetch {repo} {commit}), or its hop fails on the server`,
    );
  }
  return out;
}
