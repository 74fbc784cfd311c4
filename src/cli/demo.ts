/**
 * `agent-update demo`: a rollout on a simulated local fleet (src/demo/demo.ts), run through the
 * same engine, config loader, database and Reporter as `plan` and `start`, so what it prints is
 * what a real rollout prints. Two scenarios: branch master to every server (all succeed, one is
 * skipped), then branch broken (the first server is rolled back and the rollout stops).
 *
 * Exit 0 when both scenarios ended as expected, 1 (with what differed) when not, 130 when
 * interrupted. The temp folder is removed however the demo ends.
 */
import * as path from 'node:path';
import chalk from 'chalk';
import type { Config } from '../config/types.js';
import { loadConfig } from '../config/load.js';
import { prepareDemoFleet, DEMO_MAX_SERVERS, type DemoFleet, type DemoFleetInfo } from '../demo/demo.js';
import { AppError, EXIT, InterruptedError, UsageError } from '../errors.js';
import { statusDocument } from '../output/status-json.js';
import { updateText } from '../output/text.js';
import { createPlan } from '../plan/plan.js';
import { runUpdate } from '../rollout/run.js';
import type { ReportStore } from '../store/port.js';
import { selfCommand } from '../util/invocation.js';
import { shellQuote } from '../util/shell.js';
import { formatDuration } from '../util/duration.js';
import { isPostgresUrl, parsePgUrl } from '../store/postgres/url.js';
import { CliContext, parseCount } from './context.js';

export interface DemoOptions {
  servers?: string;
  dir?: string;
  /** false with --no-rollback-demo */
  rollbackDemo?: boolean;
  keepRunning?: boolean;
}

interface Scenario {
  name: string;
  config: Config;
  configFile: string;
}

export async function demoCommand(ctx: CliContext, opts: DemoOptions): Promise<number> {
  const count = parseCount('--servers', opts.servers, 1) ?? 5;
  if (count > DEMO_MAX_SERVERS) throw new UsageError(`--servers must be at most ${DEMO_MAX_SERVERS}, not ${count}`);
  const fleet = prepareDemoFleet({ servers: count, dir: opts.dir });

  const json = Boolean(ctx.opts.json);
  const started = Date.now();
  const interrupt = new AbortController();
  let stopServing: (() => void) | null = null;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopServing) return stopServing();
    if (!interrupt.signal.aborted) {
      ctx.err.write(`\n${signal}: stopping the demo${fleet.kept ? '' : ` and removing ${fleet.dir}`}\n`);
      interrupt.abort();
      fleet.closeServers(); // whatever runs on them ends now
    } else {
      fleet.stopSync();
      process.exit(EXIT.interrupted);
    }
  };
  const onExit = () => fleet.stopSync();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', onExit);

  // Progress and narration go to stdout, or to stderr when stdout carries the JSON result.
  const inner = new CliContext({ ...ctx.opts, json: false }, json ? ctx.err : ctx.out, ctx.err);
  const reporter = await inner.reporter(false); // the Reporter `start` uses
  const say = (text = '') => inner.print(text);
  const checkpoint = () => {
    if (interrupt.signal.aborted) throw new InterruptedError('interrupted');
  };

  try {
    say(`${chalk.bold('agent-update demo')}: a rollout to ${count} simulated server${count === 1 ? '' : 's'} on this machine`);
    say(chalk.dim('Each server is an SSH server inside this process on 127.0.0.1, with its own home folder and a simulated'));
    say(chalk.dim('agent checked out from a local git repository. Keys, host-key checks and commands are real.'));
    say(`  folder    ${fleet.dir}${fleet.kept ? '' : chalk.dim(' (removed at the end; keep it with --dir DIR)')}`);

    let info: DemoFleetInfo;
    try {
      info = await fleet.start();
    } catch (e) {
      checkpoint();
      const err = e as NodeJS.ErrnoException & { command?: string };
      if (err.code === 'ENOENT' && /^git\b|spawn git/.test(`${err.command ?? ''} ${err.message}`)) {
        throw new AppError('the demo needs git (the simulated servers check the agent out with it): install git and run it again', EXIT.failure);
      }
      throw new AppError(`cannot build the simulated fleet: ${err.message}`, EXIT.failure);
    }
    checkpoint();
    // a postgres:// URL is used as given, and shown without its password
    const given = ctx.opts.db;
    const pgUrl = given !== undefined && isPostgresUrl(given) ? given : null;
    const dbPath = pgUrl ?? path.resolve(given ?? info.dbPath);
    const db = new CliContext({ ...inner.opts, db: dbPath }, inner.out, inner.err);
    const cmd = commandLine(pgUrl ? parsePgUrl(pgUrl).shown : dbPath, fleet);
    say(`  config    ${info.configFile}`);
    say(`  database  ${pgUrl ? parsePgUrl(pgUrl).location : dbPath}`);
    say(`  ready in ${formatDuration(Date.now() - started)}`);

    try {
      const store = await db.store(true);
      const deps = { store, transport: await db.transport(), clock: db.clock, liveness: db.liveness, emit: reporter.onEvent };
      const problems: string[] = [];
      const names: string[] = [];

      const runScenario = async (base: string, configFile: string): Promise<Scenario> => {
        const config = loadConfig(configFile, { defaults: null }); // the simulated fleet's config is whole: no site defaults
        const name = await uniqueName(store, base);
        names.push(name);
        say(chalk.dim(`$ ${cmd('plan', '-c', configFile, '--name', name)}`));
        await createPlan({ ...deps }, config, { name, concurrency: 32 });
        checkpoint();
        say(chalk.dim(`$ ${cmd('start', name)}`));
        await runUpdate(deps, name, { mode: 'start', signal: interrupt.signal });
        checkpoint();
        return { name, config, configFile };
      };

      // 1. Every server to master; one is there already.
      const good = info.upstream.commits.good;
      const skipped = info.alreadyAtTarget;
      say();
      say(chalk.bold(`1. Roll out branch master to ${serverRange(info)}${skipped ? ` (${skipped} runs it already)` : ''}`));
      say(chalk.dim('   One server at a time: update, restart, check health at the new commit.'));
      const first = await runScenario('demo-master', info.configFile);
      problems.push(...(await expectFirst(store, first.name, info, good)));

      // 2. A version that never comes online: the first server is rolled back, the rollout stops.
      let second: Scenario | null = null;
      if (opts.rollbackDemo !== false && problems.length === 0) {
        say();
        say(chalk.bold(`2. Roll out branch broken, whose agent never comes online`));
        say(
          chalk.dim(
            `   Expected: ${info.servers[0]?.name} is not healthy within ${info.brokenHealthTimeoutS}s, is rolled back to master and verified; the rollout stops there.`,
          ),
        );
        second = await runScenario('demo-broken', info.brokenConfigFile);
        problems.push(...(await expectSecond(store, second.name, info, good)));
      }
      reporter.stop();

      if (json) {
        const docs = [];
        for (const n of names) docs.push(await statusDocument(store, n));
        ctx.printJson({ updates: docs });
      } else {
        // The results: printed even with --quiet.
        const tables: string[] = [];
        for (const n of names) tables.push(updateText(await store.getUpdate(n), await store.getServers(n)));
        inner.out.write(`${ctx.opts.quiet ? '' : '\n'}${tables.join('\n\n')}\n`);
      }

      if (problems.length > 0) {
        ctx.err.write(`\nagent-update demo: the rollout did not behave as expected (a bug, please report it):\n`);
        for (const p of problems) ctx.err.write(`  - ${p}\n`);
        ctx.err.write(`see every command run: ${cmd('logs', names.at(-1) ?? 'demo-master')}\n`);
        return EXIT.failure;
      }

      say();
      say(chalk.bold('What just happened'));
      const updated = info.servers.length - (skipped ? 1 : 0);
      say(
        `  ${first.name}: ${updated} server${updated === 1 ? ' was' : 's were'} updated one at a time and verified online at ${short(good)}` +
          (skipped ? `; ${skipped} was skipped, it ran that commit already.` : '.'),
      );
      if (second) {
        const firstServer = info.servers[0]?.name ?? 'demo-1';
        const rest = info.servers.length > 1 ? `; ${serverRange(info, 1)} ${info.servers.length > 2 ? 'were' : 'was'} not touched` : '';
        say(
          `  ${second.name}: ${firstServer} got the broken commit, was not healthy within ` +
            `${info.brokenHealthTimeoutS}s, and was rolled back to ${short(good)} and verified online.`,
        );
        say(`    rollback.continue_after_rollback is false, so the rollout stopped there${rest}.`);
      }
      say(`  Everything is recorded in the plan database: status, every command, its output.`);
      say(`  Finished in ${formatDuration(Math.round((Date.now() - started) / 100) * 100)}.`);

      say();
      say(chalk.bold('Try next'));
      const dbSurvives = fleet.kept || pgUrl !== null || !isInside(dbPath, fleet.dir);
      const last = second?.name ?? first.name;
      const firstServer = info.servers[0]?.name ?? 'demo-1';
      if (!dbSurvives) {
        const keep = './agent-update-demo';
        const kcmd = commandLine(path.resolve(keep, 'agent-update.db'), null);
        say(`  The demo folder and its database are removed now. Keep them in a folder of your own:`);
        say(`    ${selfCommand()} demo --dir ${keep}`);
        say(`  and then, for example:`);
        say(
          aligned([
            [kcmd('status'), 'every update in the database'],
            [kcmd('logs', second ? 'demo-broken' : 'demo-master', '--server', firstServer), 'every command run there, with its output'],
            [`less ${shellQuote(relative(path.join(keep, 'rollout.yaml')))}`, 'the config it used, with comments'],
          ]),
        );
      } else {
        say(fleet.kept ? '  The folder and its database stay. Look around:' : '  The database stays. Look around:');
        const rows: [string, string][] = [
          [cmd('status'), 'every update in the database'],
          [cmd('status', last), 'one update, a row per server'],
          [cmd('logs', last, '--server', firstServer), 'every command run there, with its output'],
        ];
        if (fleet.kept) rows.push([`less ${shellQuote(relative(info.configFile))}`, 'the config it used, with comments']);
        say(aligned(rows));
      }
      if (!opts.keepRunning) {
        say(`  The simulated servers stop with the demo. To run plan and start against them yourself:`);
        say(`    ${selfCommand()} demo --keep-running${fleet.kept ? ` --dir ${shellQuote(relative(fleet.dir))}` : ''}`);
      } else {
        say();
        say(chalk.bold('The simulated fleet keeps running until you press Ctrl-C.'));
        say(`  In another terminal, roll out another version (good2) by hand, exactly as on real servers:`);
        const name = await uniqueName(store, 'my-rollout');
        const mine = path.join(fleet.dir, 'my-rollout.yaml');
        say(`    sed 's/^  branch: master/  branch: good2/' ${shellQuote(displayPath(info.configFile, fleet))} > ${shellQuote(displayPath(mine, fleet))}`);
        say(`    ${cmd('plan', '-c', mine, '--name', name)}`);
        say(`    ${cmd('start', name)}`);
        await new Promise<void>((resolve) => {
          stopServing = resolve;
        });
        say(`stopping the simulated fleet${fleet.kept ? '' : ` and removing ${fleet.dir}`}`);
      }
      return EXIT.ok;
    } finally {
      reporter.stop();
      await db.close();
    }
  } catch (e) {
    if (interrupt.signal.aborted) {
      reporter.stop();
      ctx.err.write(`agent-update demo: interrupted${fleet.kept ? `; the folder stays: ${fleet.dir}` : ''}\n`);
      return EXIT.interrupted;
    }
    throw e;
  } finally {
    reporter.stop();
    await inner.close();
    await fleet.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('exit', onExit);
  }
}

/** Commands with their comments aligned, indented by four. */
function aligned(rows: [string, string][]): string {
  const width = Math.max(...rows.map(([c]) => c.length));
  return rows.map(([c, why]) => `    ${c.padEnd(width)}  ${chalk.dim(`# ${why}`)}`).join('\n');
}

/** `base`, or `base-2`, `base-3`… when a database given with --db has it already. */
async function uniqueName(store: ReportStore, base: string): Promise<string> {
  if (!(await store.hasUpdate(base))) return base;
  for (let i = 2; ; i++) if (!(await store.hasUpdate(`${base}-${i}`))) return `${base}-${i}`;
}

/**
 * What an operator would type: `agent-update --db PATH ARGS…`. Paths are shown relative to the
 * cwd when inside it, except those in a temp folder (always absolute: they are not the user's).
 */
function commandLine(dbPath: string, fleet: DemoFleet | null): (...args: string[]) => string {
  const show = (p: string) => displayPath(p, fleet);
  return (...args) => [selfCommand(), ...['--db', isPostgresUrl(dbPath) ? dbPath : show(dbPath), ...args.map((a) => (path.isAbsolute(a) ? show(a) : a))].map(shellQuote)].join(' ');
}

/** A path as shown to the user: relative to the cwd when inside it, absolute in a temp folder. */
function displayPath(p: string, fleet: DemoFleet | null): string {
  return fleet && !fleet.kept && isInside(p, fleet.dir) ? path.resolve(p) : relative(p);
}

function relative(p: string): string {
  const abs = path.resolve(p);
  const rel = path.relative(process.cwd(), abs);
  if (rel === '') return '.';
  return rel.startsWith('..') || path.isAbsolute(rel) ? abs : rel;
}

function isInside(file: string, dir: string): boolean {
  const rel = path.relative(path.resolve(dir), path.resolve(file));
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

function short(commit: string): string {
  return commit.slice(0, 12);
}

function serverRange(info: DemoFleetInfo, from = 0): string {
  const names = info.servers.slice(from).map((s) => s.name);
  if (names.length <= 2) return names.join(' and ');
  return `${names[0]}..${names.at(-1)}`;
}

async function expectFirst(store: ReportStore, name: string, info: DemoFleetInfo, good: string): Promise<string[]> {
  const problems: string[] = [];
  const u = await store.getUpdate(name);
  if (u.commit !== good) problems.push(`${name}: planned commit ${short(u.commit)}, expected master's ${short(good)}`);
  if (u.status !== 'success') problems.push(`${name}: ended ${u.status} (${u.reason ?? 'no reason'}), expected success`);
  for (const s of await store.getServers(name)) {
    const want = s.name === info.alreadyAtTarget ? 'skipped' : 'success';
    if (s.status !== want) problems.push(`${name}: server ${s.name} is ${s.status}${s.error ? ` (${s.error})` : ''}, expected ${want}`);
    const at = safeCommit(info, s.name);
    if (at !== good) problems.push(`${name}: server ${s.name} runs ${at}, expected ${short(good)}`);
  }
  return problems;
}

async function expectSecond(store: ReportStore, name: string, info: DemoFleetInfo, good: string): Promise<string[]> {
  const problems: string[] = [];
  const u = await store.getUpdate(name);
  if (u.commit !== info.upstream.commits.broken) problems.push(`${name}: planned commit ${short(u.commit)}, expected the broken branch's`);
  if (u.status !== 'failure') problems.push(`${name}: ended ${u.status} (${u.reason ?? 'no reason'}), expected failure`);
  (await store.getServers(name)).forEach((s, i) => {
    const want = i === 0 ? 'rolled-back' : 'pending';
    if (s.status !== want) problems.push(`${name}: server ${s.name} is ${s.status}${s.error ? ` (${s.error})` : ''}, expected ${want}`);
    const at = safeCommit(info, s.name);
    if (at !== good) problems.push(`${name}: server ${s.name} runs ${at}, expected ${short(good)}`);
  });
  return problems;
}

function safeCommit(info: DemoFleetInfo, server: string): string {
  try {
    return info.commitOf(server);
  } catch (e) {
    return `an unreadable commit (${(e as Error).message.split('\n')[0]})`;
  }
}
