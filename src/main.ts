import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { CliContext, type GlobalOptions } from './cli/context.js';
import { addHelp, explainUnknownOption } from './cli/help.js';
import { Interrupts } from './cli/interrupts.js';
import { AppError, ConfigError, EXIT } from './errors.js';
import { closedWhy, guardOutput, isClosed } from './output/closed.js';
import { errorObject, ndjsonLine } from './output/ndjson.js';
import { visibleText } from './output/visible.js';

// Each command's module is loaded when that command runs, so `status`, `pause` or a refused
// second `start` do not pay for what `plan` (execa, yaml) or `demo` (the simulated fleet) load.
const control = () => import('./cli/control.js');

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** `--limit` may be given more than once: every value, in order. */
const collect = (value: string, previous: string[] = []) => [...previous, value];

/** The options of `plan` and `auto` that change the config for one update (plan/overrides.ts). */
function addOverrideOptions(cmd: Command, source = true): Command {
  cmd.option('--limit <pattern>', "only the servers of the config matching it (Ansible's --limit: globs on names, separated by , or :; !PATTERN leaves out, &PATTERN must also match; @FILE reads them from a file); repeatable", collect);
  if (!source) return cmd;
  return cmd
    .option('--branch <name>', "the branch for this update instead of source.branch (the target: its tip, unless --commit or --version)")
    .option('--commit <sha>', 'the target commit for this update instead of source.commit or the branch tip (7 to 40 hex; on the branch)')
    .option('--version <semver>', "the release to roll out: the commit of its tag (v1.4.0 or 1.4.0) and the target's version instead of source.version; with --commit, that commit's version");
}

/**
 * The commands whose own `--version` is not the program's: commander looks at the program's
 * options anywhere on the line, so for these the program is built without its `--version`.
 */
const OWN_VERSION = new Set(['plan', 'auto']);

/** The command named on the line (the first word that is not a global option or its value), or undefined. */
export function commandOf(args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') return args[i + 1];
    if (a === '--db') {
      i++;
      continue;
    }
    if (!a.startsWith('-')) return a;
  }
  return undefined;
}

/** Build the CLI. Each action stores its exit code; errors are mapped in main(). `argv`: the line it will parse (node, script, args). */
export function buildProgram(result: { code: number }, contexts: CliContext[], argv: readonly string[] = []): Command {
  const program = new Command('agent-update');
  const ctxOf = (cmd: Command) => {
    const ctx = new CliContext(cmd.optsWithGlobals() as GlobalOptions);
    contexts.push(ctx);
    return ctx;
  };
  program
    .description('Roll a new version of a git-checked-out agent out to a fleet over SSH, one server at a time.')
    .option('--db <path-or-url>', 'plan database: a SQLite file, or postgres://USER@HOST/DB[?schema=NAME] for a plan shared by a team (default: $AGENT_UPDATE_DB, else $XDG_STATE_HOME/agent-update/agent-update.db, else ~/.local/state/agent-update/agent-update.db)')
    .option('--json', 'machine-readable output on stdout, nothing else on stdout')
    .option('--no-color', 'no colour, no spinner')
    .option('-q, --quiet', 'print only errors and results')
    .option('-v, --verbose', 'print every remote command as it ends')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({
      writeErr: (s) => process.stderr.write(s),
      writeOut: (s) => process.stdout.write(s),
      outputError: (s, write) => write(explainUnknownOption(s)),
    });

  if (!OWN_VERSION.has(commandOf(argv.slice(2)) ?? '')) program.version(version(), '--version');

  program
    .command('plan')
    .description('validate the config, resolve the target commit, probe every server, record the plan')
    .option('-c, --config <file>', 'YAML config (required, unless --refresh)')
    .option('--name <name>', 'name of the update (default: config name, or <branch>-<date>)')
    .option('--refresh <name>', 're-probe the unreachable servers of this pending or paused update (no config needed)')
    .option('--concurrency <n>', 'servers probed at once', '32')
    .option('--only <class>', 'plan only the servers of this version class (required or recommended); needs source.version and agent.semver_command')
    .option('--show-commands [name]', 'print the exact commands each step will send, placeholders filled in, and run nothing: of the update NAME, or (with -c) of the config')
    .option('--wide', 'print the table whole: by default, in a terminal, it is fitted to its width (the DETAIL column cut with …)');
  addOverrideOptions(program.commands.at(-1)!).action(async (o, cmd: Command) => {
    result.code = await (await import('./cli/plan.js')).planCommand(ctxOf(cmd), o);
  });

  program
    .command('config')
    .description('print the effective config (the site defaults merged under it) and the file and line each key came from; reads and writes nothing else')
    .addOption(new Option('-c, --config <file>', 'YAML config').makeOptionMandatory())
    .action(async (o, cmd: Command) => {
      result.code = (await import('./cli/config.js')).configCommand(ctxOf(cmd), o);
    });

  program
    .command('servers')
    .description('print every server of the config as it will be reached (host, port, user, identity files, agent, jump hosts, known_hosts) and where each value came from; connects to nothing, writes nothing')
    .addOption(new Option('-c, --config <file>', 'YAML config').makeOptionMandatory())
    .action(async (o, cmd: Command) => {
      result.code = (await import('./cli/servers.js')).serversCommand(ctxOf(cmd), o);
    });

  program
    .command('start')
    .description('execute updates (several: the batches of a split, in parallel), each one server at a time')
    .argument('<name...>', 'update names')
    .option('--stop-after <n>', 'pause after this many servers finished (test mode)')
    .option('--parallel <k>', 'run at most this many of the named updates (the batches of a split) at once (default: all, at most 10); each update runs one server at a time')
    .option('--wait-for-window', 'outside execution.window, wait for it to open (Ctrl-C still pauses) instead of pausing with exit 3')
    .option('--wide', "draw the live view's lines whole: by default, in a terminal, each is fitted to its width (the step and health kept)")
    .action(async (names: string[], o, cmd: Command) => {
      const caught = new Interrupts(); // before any await: a Ctrl-C while starting up is not lost
      result.code = await (await import('./cli/start.js')).runCommand(ctxOf(cmd), 'start', names, o, caught);
    });

  program
    .command('resume')
    .description('continue paused updates from where they stopped')
    .argument('<name...>', 'update names')
    .option('--stop-after <n>', 'pause again after this many more servers finished')
    .option('--parallel <k>', 'run at most this many of the named updates (the batches of a split) at once (default: all, at most 10); each update runs one server at a time')
    .option('--wait-for-window', 'outside execution.window, wait for it to open (Ctrl-C still pauses) instead of pausing with exit 3')
    .option('--wide', "draw the live view's lines whole: by default, in a terminal, each is fitted to its width (the step and health kept)")
    .action(async (names: string[], o, cmd: Command) => {
      const caught = new Interrupts(); // before any await: a Ctrl-C while starting up is not lost
      result.code = await (await import('./cli/start.js')).runCommand(ctxOf(cmd), 'resume', names, o, caught);
    });

  program
    .command('pause')
    .description('ask a running update to pause after the server in flight; returns at once')
    .argument('<name>')
    .action(async (name: string, _o, cmd: Command) => {
      result.code = await (await control()).pauseCommand(ctxOf(cmd), name);
    });

  program
    .command('cancel')
    .description('end a pending or paused update; nothing more runs')
    .argument('<name>')
    .action(async (name: string, _o, cmd: Command) => {
      result.code = await (await control()).cancelCommand(ctxOf(cmd), name);
    });

  program
    .command('forget')
    .description('remove an update that never ran (pending, cancelled before it began, or left planning by a killed plan) and everything recorded for it; its name is free again')
    .argument('<name>')
    .action(async (name: string, _o, cmd: Command) => {
      result.code = await (await control()).forgetCommand(ctxOf(cmd), name);
    });

  program
    .command('split')
    .description('divide the pending servers of a pending or paused update into N balanced batches: NAME, NAME.2 … NAME.N')
    .argument('<name>')
    .addOption(new Option('--batches <n>', 'number of batches').makeOptionMandatory())
    .action(async (name: string, o, cmd: Command) => {
      result.code = await (await control()).splitCommand(ctxOf(cmd), name, o);
    });

  program
    .command('status')
    .description('one update with a row per server, or all updates')
    .argument('[name]')
    .option('--watch', 'redraw until the update ends or pauses')
    .option('--interval <seconds>', 'redraw interval for --watch', '2')
    .option('--wide', 'print the table whole: by default, in a terminal, it is fitted to its width (the DETAIL column cut with …)')
    .action(async (name: string | undefined, o, cmd: Command) => {
      result.code = await (await control()).statusCommand(ctxOf(cmd), name, o);
    });

  program
    .command('logs')
    .description('the recorded output of every step run on each server')
    .argument('<name>')
    .option('--server <name>', 'only this server')
    .option('--raw', "print the servers' output exactly as recorded (by default terminal control characters are shown as visible escapes)")
    .action(async (name: string, o, cmd: Command) => {
      result.code = await (await control()).logsCommand(ctxOf(cmd), name, o);
    });

  program
    .command('unlock')
    .description('clear a lock left on servers by an executor that died, after checking nobody is working on them')
    .argument('<server...>', 'server names as in the plan (the newest update that has them), or user@host:port')
    .option('--yes', 'clear the locks found stale; without it, only show them')
    .option('--update <name>', 'look the servers up in this update')
    .addHelpText(
      'after',
      `
Every executor puts a lock on the server it works on (~/.agent-update.lock) and removes it once
the server's outcome is recorded. A lock left by a dead executor keeps every other update off
that server. unlock reads the lock and refuses while an update of this database is working on
the server or the process that took it is alive on this host; with --yes it clears it (only if
it is still the lock that was checked), journalled on the server.`,
    )
    .action(async (names: string[], o, cmd: Command) => {
      result.code = await (await import('./cli/unlock.js')).unlockCommand(ctxOf(cmd), names, o);
    });

  program
    .command('drop')
    .description('take servers out of a pending or paused update before they run: they become excluded, never touched')
    .argument('<name>', 'the update')
    .argument('<server...>', 'server names of the update (or of a batch of its split), or glob patterns on them (quote them)')
    .option('--reason <text>', 'why, shown with the server in status and logs (default: who dropped it)')
    .action(async (name: string, servers: string[], o, cmd: Command) => {
      result.code = await (await import('./cli/drop.js')).dropCommand(ctxOf(cmd), name, servers, o);
    });

  program
    .command('history')
    .description("each server's commits over time, across every update in the database; with --updates or -c, the updates in order (commit, status, who, retry/undo lineage, freezes); with NAME, one update's timeline")
    .argument('[name]', "one update: its lineage and every event recorded for it")
    .option('--server <name>', 'only this server (its name, or user@host:port)')
    .option('--updates', 'the updates in the order they were planned, per source repo, with each repo\'s freezes')
    .option('-c, --config <file>', "the updates of this config's source repo (whichever config planned them), with its freezes")
    .option('--wide', 'print the tables whole: by default, in a terminal, they are fitted to its width (the DETAIL or NOTE column cut with …)')
    .action(async (name: string | undefined, o, cmd: Command) => {
      result.code = await (await import('./cli/history.js')).historyCommand(ctxOf(cmd), name, o);
    });

  program
    .command('freeze')
    .description("stop deploys of the config's source repo, for everyone using this plan database: start, resume and auto refuse its updates (exit 3), a rollout running pauses before its next server")
    .addOption(new Option('-c, --config <file>', 'YAML config: its source.repo is what is frozen').makeOptionMandatory())
    .option('--reason <text>', 'why (required): shown to everyone whose start it refuses, and in status and history')
    .action(async (o, cmd: Command) => {
      result.code = await (await import('./cli/freeze.js')).freezeCommand(ctxOf(cmd), o);
    });

  program
    .command('unfreeze')
    .description("lift the deploy freeze of the config's source repo (exit 0 when it was not frozen)")
    .addOption(new Option('-c, --config <file>', 'YAML config: its source.repo is what is unfrozen').makeOptionMandatory())
    .action(async (o, cmd: Command) => {
      result.code = await (await import('./cli/freeze.js')).unfreezeCommand(ctxOf(cmd), o);
    });

  program
    .command('auto')
    .description('for cron and CI: plan and start this config\'s update only when needed (exit 0 when already running or nothing to do)')
    .option('-c, --config <file>', 'YAML config (required); its absolute path is what identifies "this config\'s update"')
    .option('--concurrency <n>', 'servers probed at once', '32');
  addOverrideOptions(program.commands.at(-1)!).action(async (o, cmd: Command) => {
    result.code = await (await import('./cli/auto.js')).autoCommand(ctxOf(cmd), o);
  });

  program
    .command('undo')
    .description('a new pending update putting every server NAME changed back to the commit it had before NAME, each to its own')
    .argument('<name>')
    .option('--name <new>', 'name of the new update (default: NAME-undo, then NAME-undo-2, …)')
    .option('--concurrency <n>', 'servers probed at once', '32')
    .option('--start', 'start the new update at once, as `start NEW` would (default: plan only, to review first)')
    .option('--wide', 'print the table (and, with --start, the live view) whole: by default, in a terminal, fitted to its width')
    .action(async (name: string, o, cmd: Command) => {
      result.code = await (await import('./cli/undo.js')).undoCommand(ctxOf(cmd), name, o);
    });

  const restart = program
    .command('restart')
    .description('a rolling restart of the agent, one server at a time, verified, with no code change: planned as an update (status, pause, resume, takeover all apply) and started at once')
    .addOption(new Option('-c, --config <file>', 'YAML config: its servers, ssh, agent.restart and health, the restarts listed in restart:').makeOptionMandatory())
    .option('--name <name>', 'name of the update (default: restart-<date>, then restart-<date>-2, …)')
    .option('--concurrency <n>', 'servers probed at once', '32')
    .option('--no-start', 'plan it only (review it, then `start NAME`)')
    .option('--stop-after <n>', 'pause after this many servers finished (test mode), as start --stop-after')
    .option('--wait-for-window', 'outside execution.window, wait for it to open instead of pausing with exit 3')
    .option('--show-commands', 'print the commands each server would get, and plan and run nothing')
    .option('--wide', 'print the table and the live view whole: by default, in a terminal, fitted to its width');
  addOverrideOptions(restart, false).action(async (o, cmd: Command) => {
    result.code = await (await import('./cli/restart.js')).restartCommand(ctxOf(cmd), o);
  });

  program
    .command('retry')
    .description('a new pending update of the servers of NAME (and its batches) that ended rolled-back, failed or unreachable')
    .argument('<name>')
    .option('--name <new>', 'name of the new update (default: NAME-retry, then NAME-retry-2, …)')
    .option('--include-fatal', 'also the servers that ended fatal (only once a person has looked at them)')
    .option('--concurrency <n>', 'servers probed at once', '32')
    .option('--start', 'start the new update at once, as `start NEW` would (default: plan only, to review first)')
    .option('--wide', 'print the table (and, with --start, the live view) whole: by default, in a terminal, fitted to its width')
    .action(async (name: string, o, cmd: Command) => {
      result.code = await (await import('./cli/retry.js')).retryCommand(ctxOf(cmd), name, o);
    });

  const db = program
    .command('db')
    .description('the plan database itself: copy a whole plan store between a SQLite file and PostgreSQL');
  db.command('copy')
    .description('copy every update, server, journal entry, event and auto run, and the store identity, from FROM into a new or empty TO (each a file path or a postgres:// URL)')
    .argument('<from>', 'the plan store to copy: a SQLite file, or postgres://USER@HOST/DB[?schema=NAME]')
    .argument('<to>', 'a new or empty plan store: a file path, or postgres://USER@HOST/DB[?schema=NAME]')
    .action(async (from: string, to: string, _o, cmd: Command) => {
      result.code = await (await import('./cli/db.js')).dbCopyCommand(ctxOf(cmd), from, to);
    });

  program
    .command('demo')
    .description('a self-contained demonstration on a simulated local fleet: no servers, keys or config needed')
    .option('--servers <n>', `number of simulated servers, 1 to 20`, '5')
    .option('--dir <dir>', 'build the fleet in this folder and keep it (default: a temp folder removed at the end)')
    .option('--no-rollback-demo', 'skip the second scenario (a broken version rolled back)')
    .option('--keep-running', 'keep the simulated servers up after the demo, until Ctrl-C, to run plan/start by hand')
    .action(async (o, cmd: Command) => {
      result.code = await (await import('./cli/demo.js')).demoCommand(ctxOf(cmd), o);
    });

  addHelp(program);
  return program;
}

/** What to print on stderr, and the exit code, for an error that ended a command. */
export function failureOf(e: unknown): { code: number; text: string } {
  if (e instanceof ConfigError && e.problems.length > 1) {
    return { code: e.exitCode, text: `agent-update: ${e.problems.length} problems in the config:\n${e.message.replace(/^/gm, '  ')}\n` };
  }
  if (e instanceof AppError) return { code: e.exitCode, text: `agent-update: ${e.message}\n` };
  const sqliteCode = (e as { code?: unknown } | null)?.code;
  if (typeof sqliteCode === 'string' && sqliteCode.startsWith('SQLITE_')) {
    // The database failed under us (disk full, an I/O error): not a bug, and everything
    // committed before it is intact, so a later `start` takes over from there.
    return {
      code: EXIT.failure,
      text:
        `agent-update: the plan database failed: ${(e as Error).message} (${sqliteCode}).\n` +
        'Everything recorded before this is kept; once the database can be written again, `agent-update start NAME` takes over from there.\n',
    };
  }
  return { code: EXIT.bug, text: `agent-update: internal error (a bug, please report it):\n${(e as Error | null)?.stack ?? String(e)}\n` };
}

/** `--json` was asked for: by a command that got as far as its context, or on the command line (before `--`). */
function wantsJson(argv: string[], contexts: CliContext[]): boolean {
  if (contexts.some((c) => c.opts.json)) return true;
  const args = argv.slice(2);
  const end = args.indexOf('--');
  return (end === -1 ? args : args.slice(0, end)).includes('--json');
}

/** The message of a failure for the JSON error object: no `agent-update: ` prefix, no stack trace. */
function messageOf(e: unknown, f: { code: number; text: string }): string {
  if (e instanceof AppError) return e.message;
  if (f.code === EXIT.bug) return `internal error (a bug, please report it): ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`;
  return f.text.replace(/^agent-update: /, '').trimEnd();
}

/** The contexts of the command running now: the one made last says what goes on when stdout closes. */
let running: CliContext[] = [];

/**
 * A closed stdout or stderr (`| head`, a pager quit, a terminal gone) stops the writing, never the
 * command (output/closed.ts); a closed stdout is said on stderr while that is open, with what the
 * command goes on doing.
 */
function guardStdio(): void {
  guardOutput(process.stdout, (e) => {
    if (isClosed(process.stderr)) return;
    const ctx = running.at(-1);
    const text = `agent-update: stdout was closed (${closedWhy(e)}): nothing more is written to it; ${ctx?.goesOn ?? 'the command goes on to its end'}`;
    if (ctx) ctx.notify(text);
    else process.stderr.write(`${text}\n`);
  });
  guardOutput(process.stderr, () => {});
}

export async function main(argv: string[]): Promise<number> {
  guardStdio();
  const result = { code: 0 };
  const contexts: CliContext[] = [];
  running = contexts;
  const program = buildProgram(result, contexts, argv);
  try {
    await program.parseAsync(argv);
    return result.code;
  } catch (e) {
    if (e instanceof CommanderError) {
      // help and --version exit 0 (commander printed them); every other parse problem is usage.
      if (e.exitCode === 0) return 0;
      if (wantsJson(argv, contexts)) {
        // commander printed the text on stderr; with --json the error is on stdout too.
        const message = e.code === 'commander.help' ? 'no command given (run with --help for usage)' : e.message.replace(/^error: /, '');
        process.stdout.write(ndjsonLine(errorObject(e, EXIT.usage, message, new Date())));
      }
      return EXIT.usage;
    }
    const f = failureOf(e);
    // An error can quote a server (git's "remote:" lines, an SSH disconnect message): no raw controls.
    process.stderr.write(visibleText(f.text));
    // With --json the error is also one JSON object on stdout (docs/reference/events.md "Errors").
    if (wantsJson(argv, contexts)) process.stdout.write(ndjsonLine(errorObject(e, f.code, messageOf(e, f), new Date())));
    return f.code;
  } finally {
    for (const c of contexts) await c.close();
  }
}
