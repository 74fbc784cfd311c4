import { loadConfig } from '../config/load.js';
import { EXIT, UsageError } from '../errors.js';
import { ndjsonLine, NDJSON_VERSION } from '../output/ndjson.js';
import { timestamp } from '../output/reporter.js';
import type { RolloutEvent } from '../rollout/events.js';
import { claimAuto, existingWork, finishAutoPlan, keepClaim, type AutoFinding } from '../plan/auto.js';
import { probePlan, selectServers } from '../plan/plan.js';
import { resolveRollbackCommit, resolveTarget, withResolvedStones } from '../plan/source.js';
import { withOverrides, type OverrideFlags } from '../plan/overrides.js';
import { checkCeiling } from '../plan/versions.js';
import type { RolloutWindow } from '../config/types.js';
import { describeOpening, describeWindow, windowState } from '../config/window.js';
import { checkLocalSsh } from '../ssh/transport.js';
import { plural } from '../util/plural.js';
import { type CliContext, parseCount } from './context.js';
import { Interrupts } from './interrupts.js';
import { probeInterrupts } from './new-plan.js';
import { activeFreezeOf, unfreezeHint } from '../plan/freeze.js';
import { describeFreeze, isFreezePause } from '../model/freeze.js';

/**
 * `auto -c FILE`: for cron and CI schedules. Exits 3 touching nothing when the config's source
 * repo is frozen (`freeze`); 0 touching nothing when an update of this
 * config is being executed or another auto is planning it; 3 when one is paused (a person's to
 * resume; one paused only by its window or by a freeze since lifted is resumed); 0 touching
 * nothing outside execution.window (saying when it opens); 1 when this very
 * commit already failed here; 0 with one audit record when every reachable server runs the
 * target; else plans (unreachable servers left for the next run) and starts, exiting as `start`
 * does, but 0 for a pause because the window closed, which the next auto run in the window
 * resumes (as it resumes one that `start` paused for the window).
 */
export async function autoCommand(ctx: CliContext, opts: { config?: string; concurrency?: string } & OverrideFlags): Promise<number> {
  if (opts.config === undefined) throw new UsageError('auto needs -c FILE (the config)');
  const concurrency = parseCount('--concurrency', opts.concurrency, 1) ?? 32;
  // Everything that can be wrong with the input is found before the database is opened.
  let config = loadConfig(opts.config);
  // --limit, --branch, --commit, --version: checked as the config's values (the branch, the
  // commit or --version's tag read with the target, below)
  config = withOverrides(config, opts);
  checkCeiling(config.file, config.source);
  const servers = selectServers(config);
  if (servers.length === 0) throw new UsageError(`${config.file}: server_types, include and exclude select no server`);
  // An update of this config at work or paused is the answer, whatever the source says now.
  // Read from a database that exists; one that does not is created only once the input is known
  // good (an unknown branch or a local SSH problem is exit 2 with nothing written, as for plan).
  const exists = await ctx.dbExists();
  // A deploy freeze of the config's repo: exit 3, nothing planned, started or written.
  const frozen = exists ? await activeFreezeOf(await ctx.store(), config.source.repo) : null;
  if (frozen) return said(ctx, { kind: 'frozen', freeze: frozen });
  const early = exists ? await existingWork(await ctx.store(), config.file, ctx.clock.now(), ctx.liveness) : null;
  if (early && early.kind !== 'window-paused') return said(ctx, early);
  // Outside the window auto plans nothing (its probe connects to every server) and starts
  // nothing: the window of the updates paused for it, else the config's.
  const closed = closedWindow(ctx.clock.now(), early ? early.updates.map((u) => u.settings.execution?.window) : [config.execution.window]);
  if (closed) return said(ctx, { kind: 'outside-window', ...closed, updates: early?.updates.map((u) => u.name) ?? [] });
  const commit = await resolveTarget(config);
  const rollbackCommit = config.rollback.commit === null ? null : await resolveRollbackCommit(config.source.repo, config.rollback.commit);
  // and the stepping stones' commits, expanded to 40 hex like rollback.commit
  config = await withResolvedStones(config);
  await checkLocalSsh(await ctx.transport(), config.ssh, 'cannot plan', servers);
  const store = await ctx.store(true);
  const found = await claimAuto(store, config, commit, rollbackCommit, ctx.clock.now(), ctx.liveness);
  if (found.kind !== 'plan' && found.kind !== 'start') return said(ctx, found);
  // A run that changes nothing prints one line (a cron log's line per run); the database is
  // named by the rollout's start (runCommand), or here with -v.
  if (ctx.opts.verbose) ctx.announceDb();
  const stopBeat = keepClaim(store, found.runId, ctx.liveness);
  let ended = false;
  try {
    let names: string[];
    if (found.kind === 'plan') {
      const reporter = await ctx.reporter(false);
      const interrupts = probeInterrupts();
      try {
        // each server's probe only with -v: what matters (unreachable ones and why) is in the line auto ends with
        const emit = ctx.opts.verbose ? reporter.onEvent : (e: RolloutEvent) => (e.type === 'probe' ? undefined : reporter.onEvent(e));
        await probePlan({ store, transport: await ctx.transport(), clock: ctx.clock, emit }, found.input, { concurrency, signal: interrupts.signal, keepPlanning: true });
      } finally {
        reporter.stop();
        interrupts.dispose();
      }
      const r = await finishAutoPlan(store, found.runId, found.input.name, commit, ctx.clock.now());
      if ('nothing' in r) {
        ended = true;
        return said(ctx, { kind: 'nothing', message: r.nothing });
      }
      names = [r.update.name];
      const left = r.leftForNextRun.length ? `; ${plural(r.leftForNextRun.length, 'unreachable server')} left for the next run: ${r.leftForNextRun.join(', ')}` : '';
      announce(ctx, 'planned', names, `planned ${names[0]} to ${commit.slice(0, 12)}${left}; starting it`);
    } else if (found.resume) {
      names = found.names;
      const reasons = await Promise.all(names.map(async (n) => (await store.getUpdate(n)).reason));
      const why = reasons.some((r) => isFreezePause(r)) ? 'paused for its rollout window or a deploy freeze, which is over now' : 'paused for its rollout window, which is open now';
      announce(ctx, 'resume', names, `resuming ${names.join(', ')} of ${config.file}: ${why}`);
    } else {
      names = found.names;
      announce(ctx, found.takeover ? 'takeover' : 'start', names, `${found.takeover ? 'taking over' : 'starting'} ${names.join(', ')} of ${config.file}, as \`start\` would`);
    }
    // a pause for the window closing is exit 0: the next auto run in the window resumes it
    const mode = found.kind === 'start' && found.resume ? 'resume' : 'start';
    const code = await (await import('./start.js')).runCommand(ctx, mode, names, { windowPauseOk: true }, new Interrupts());
    const statuses: string[] = [];
    for (const n of names) statuses.push(`${n} ${(await store.getUpdate(n)).status}`);
    await store.endAutoRun(found.runId, 'started', `${statuses.join(', ')} (exit ${code})`, names[0]!);
    ended = true;
    return code;
  } catch (e) {
    if (!ended) await store.endAutoRun(found.runId, 'error', (e as Error).message.slice(0, 2000));
    throw e;
  } finally {
    stopBeat();
  }
}

type Said =
  | Exclude<AutoFinding, { kind: 'plan' | 'start' | 'window-paused' }>
  | { kind: 'nothing'; message: string }
  /** outside the window (`updates`: those paused for it, waiting for it to open) */
  | { kind: 'outside-window'; window: RolloutWindow; opensAt: Date; updates: string[] };

/**
 * Of these windows (one per update; undefined: none), the one that opens last when every one is
 * closed now, and when; null when one is open (or absent).
 */
function closedWindow(now: Date, windows: ReadonlyArray<RolloutWindow | undefined>): { window: RolloutWindow; opensAt: Date } | null {
  let last: { window: RolloutWindow; opensAt: Date } | null = null;
  for (const window of windows) {
    if (!window) return null;
    const s = windowState(now, window);
    if (s.open) return null;
    if (!last || s.opensAt > last.opensAt) last = { window, opensAt: s.opensAt };
  }
  return last;
}

/** An auto run that starts nothing: its message (a JSON object with --json) and exit code. */
function said(ctx: CliContext, f: Said): number {
  const { code, outcome, updates, message } = describe(ctx, f);
  if (ctx.opts.json) {
    ctx.out.write(ndjsonLine({ v: NDJSON_VERSION, type: 'auto', at: ctx.clock.now().toISOString(), outcome, updates, message, exitCode: code }));
  } else {
    // one line, timestamped like the rollout's plain lines: what a cron log keeps of each run
    const at = timestamp(ctx.clock.now().getTime());
    (code === 0 ? (t: string) => ctx.print(`${at} ${t}`) : (t: string) => ctx.err.write(`${at} agent-update: ${t}\n`))(message);
    ctx.result(`${outcome}${updates.length ? ` ${updates.join(' ')}` : ''}`);
  }
  return code;
}

function describe(ctx: CliContext, f: Said): { code: number; outcome: string; updates: string[]; message: string } {
  switch (f.kind) {
    case 'running': {
      const names = f.updates.map((u) => u.name);
      return { code: EXIT.ok, outcome: 'running', updates: names, message: `already running: ${names.join(', ')} (pid ${f.updates[0]!.lease!.pid} on ${f.updates[0]!.lease!.host}); nothing touched. Watch it with \`${ctx.cmd(`status ${names[0]} --watch`)}\`` };
    }
    case 'paused': {
      const names = f.updates.map((u) => u.name);
      const why = f.updates[0]!.reason ? ` (${f.updates[0]!.reason})` : '';
      return {
        code: EXIT.paused,
        outcome: 'paused',
        updates: names,
        message: `${names.join(', ')} ${names.length === 1 ? 'is' : 'are'} paused${why}: auto does not resume what was paused; nothing touched. Continue with \`${ctx.cmd(`resume ${names.join(' ')}`)}\` or end it with \`${ctx.cmd(`cancel ${names[0]}`)}\``,
      };
    }
    case 'planned': {
      const names = f.updates.map((u) => u.name);
      const by = f.updates[0]!.createdBy ? ` by ${f.updates[0]!.createdBy}` : '';
      return {
        code: EXIT.paused,
        // not 'planned': that is the line of an auto that planned and is starting the rollout
        outcome: 'pending',
        updates: names,
        message:
          `${names.join(', ')} ${names.length === 1 ? 'was' : 'were'} planned${by} and not started: auto does not start a plan a person made; nothing touched. ` +
          `Start it with \`${ctx.cmd(`start ${names.join(' ')}`)}\` or cancel it with \`${ctx.cmd(`cancel ${names[0]}`)}\``,
      };
    }
    case 'claimed':
      return {
        code: EXIT.ok,
        outcome: 'running',
        updates: f.run.updateName ? [f.run.updateName] : [],
        message: `another auto run of this config (pid ${f.run.pid} on ${f.run.host}, since ${f.run.startedAt}) is planning or starting ${f.run.updateName ?? 'it'}; nothing touched`,
      };
    case 'failed-before':
      return {
        code: EXIT.failure,
        outcome: 'failed-before',
        updates: [f.update.name],
        message:
          `the last update of this config to ${f.update.commit.slice(0, 12)}, ${f.update.name}, ended ${f.update.status}: auto does not deploy a commit that failed here again; nothing touched. ` +
          `Once the cause is fixed: \`${ctx.cmd(`retry ${f.update.name}`)}\` and start it; a new commit on ${f.update.branch} is deployed by the next auto`,
      };
    case 'nothing':
      return { code: EXIT.ok, outcome: 'nothing-to-do', updates: [], message: f.message };
    case 'frozen':
      return {
        code: EXIT.paused,
        outcome: 'frozen',
        updates: [],
        message: `deploys of ${f.freeze.repo} are frozen ${describeFreeze(f.freeze)}; nothing planned or started, no server touched. Lift it with \`${unfreezeHint(f.freeze)}\``,
      };
    case 'outside-window': {
      const window = `the rollout window (${describeWindow(f.window)}): it opens ${describeOpening(f.opensAt, f.window)}`;
      const n = f.updates.length;
      return {
        code: EXIT.ok,
        outcome: 'outside-window',
        updates: f.updates,
        message:
          n === 0
            ? `outside ${window}; nothing planned or started, no server touched`
            : `${f.updates.join(', ')} ${n === 1 ? 'is' : 'are'} paused for ${window}; the first auto run once it is open resumes ${n === 1 ? 'it' : 'them'}; nothing touched`,
      };
    }
  }
}

/** Before the rollout: one line saying what auto started (the first NDJSON line with --json). */
function announce(ctx: CliContext, outcome: string, names: string[], message: string): void {
  if (ctx.opts.json) ctx.out.write(ndjsonLine({ v: NDJSON_VERSION, type: 'auto', at: ctx.clock.now().toISOString(), outcome, updates: names, message, exitCode: null }));
  else ctx.print(`${timestamp(ctx.clock.now().getTime())} ${message}`);
}
