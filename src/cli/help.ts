import type { Command } from 'commander';

/**
 * What each command's --help teaches after its options: two or three examples an operator can
 * adapt, and the exit codes a script can rely on (SPEC "Exit codes"). The global options are
 * listed by commander itself (showGlobalOptions).
 */
interface CommandHelp {
  examples: Array<[string, string]>;
  exits: Array<[number, string]>;
}

const BAD_INPUT: [number, string] = [2, 'bad input: usage, an unknown update, a state that does not allow it; nothing was changed'];

const RUN_EXITS: Array<[number, string]> = [
  [0, 'every update ended success'],
  [1, 'an update ended failure or partial-success, or stopped on a server it could not recover'],
  BAD_INPUT,
  [3, 'paused (pause asked, Ctrl-C, the test-mode limit reached, outside execution.window without --wait-for-window, or a freeze of its repo found before the next server); or refused, nothing started: its repo is frozen (`freeze`)'],
  [4, 'busy: another process is executing this update'],
  [5, 'paused, and a server of this run failed or was rolled back (a canary that failed, with rollback.continue_after_rollback or a failure budget; a guard or bake trip): look before resuming'],
  [130, 'stopped at once by a second Ctrl-C; `start NAME` takes over'],
];

export const HELP: Record<string, CommandHelp> = {
  plan: {
    examples: [
      ['agent-update plan -c rollout.yaml', 'probe every server and record the plan; prints its name'],
      ['agent-update plan -c rollout.yaml --name canary-2026-12 --json', 'the same, named, with the plan as JSON on stdout'],
      ['agent-update plan --show-commands canary-2026-12', 'every command each step will send, placeholders filled in; runs nothing'],
      ['agent-update plan --refresh canary-2026-12', 'probe again the servers that were unreachable'],
      ['agent-update plan -c rollout.yaml --only required', 'plan only the servers below source.min_compatible (the others are left out)'],
      ['agent-update plan -c rollout.yaml --wide', 'the server table whole (by default, in a terminal, it fits its width)'],
      ["agent-update plan -c rollout.yaml --limit 'web*:!web3'", 'only the servers of the config named web*, but not web3 (Ansible\'s --limit)'],
      ['agent-update plan -c rollout.yaml --version 1.4.0', "roll out the release tagged v1.4.0 instead of the config's source (also --branch, --commit)"],
    ],
    exits: [
      [0, 'planned (servers that could not be reached are listed as unreachable)'],
      [2, 'bad config (the file, the key and the problem are named), unknown branch, commit or version tag, a --limit pattern that matches none of the servers; nothing was written'],
      [69, 'no server could be reached: the plan is recorded, nothing to start; check the servers, then plan --refresh NAME'],
      [130, 'interrupted while probing; nothing was written'],
    ],
  },
  config: {
    examples: [
      ['agent-update config -c rollout.yaml', 'the config as plan reads it, site defaults merged, each key with its file and line'],
      ['agent-update config -c rollout.yaml --json', 'the same as { file, defaults, config, origins } on stdout'],
      ['AGENT_UPDATE_DEFAULTS= agent-update config -c rollout.yaml', 'the config alone, without the site defaults'],
    ],
    exits: [
      [0, 'shown'],
      [2, 'a bad config or site defaults (the file, line, key and problem are named), or a defaults file that is not there'],
    ],
  },
  servers: {
    examples: [
      ['agent-update servers -c rollout.yaml', 'each server as it will be reached (host, port, user, keys, jump hosts, known_hosts) and where each value came from'],
      ['agent-update servers -c rollout.yaml --json', 'the same as { servers: [{ name, types, host, port, user, identityFiles, identityAgent, identitiesOnly, jump, knownHosts }] }'],
      ['agent-update servers -c rollout.yaml --json | jq -r \'.servers[] | "\\(.user)@\\(.host):\\(.port)"\'', 'the accounts, one a line'],
    ],
    exits: [
      [0, 'shown; nothing was connected to or written'],
      [2, 'a bad config, or a server plan would refuse (the file, line, key and problem are named)'],
    ],
  },
  start: {
    examples: [
      ['agent-update start agent-2026-12', 'roll out, one server at a time, in the foreground'],
      ['agent-update start agent-2026-12 --stop-after 1', 'a canary: pause after the first server (exit 3; 5 if it failed or was rolled back)'],
      ['agent-update start agent-2026-12 --wait-for-window', 'outside the config\'s execution.window, wait for it to open instead of pausing'],
      ['agent-update --json start agent-2026-12 | tee events.ndjson', 'for CI: one JSON event per line, the last one the result'],
    ],
    exits: RUN_EXITS,
  },
  resume: {
    examples: [
      ['agent-update resume agent-2026-12', 'continue a paused update to the end'],
      ['agent-update resume agent-2026-12 --stop-after 5', 'five more servers, then pause again'],
      ['agent-update resume agent-2026-12 agent-2026-12.2 agent-2026-12.3', 'continue the batches of a split in parallel'],
    ],
    exits: RUN_EXITS,
  },
  pause: {
    examples: [
      ['agent-update pause agent-2026-12', 'from any terminal: the server in flight finishes, then it pauses'],
      ['agent-update status agent-2026-12 --watch', 'watch it come to a stop'],
    ],
    exits: [[0, 'pause requested, or already paused'], BAD_INPUT],
  },
  cancel: {
    examples: [
      ['agent-update cancel agent-2026-12', 'end a pending or paused update; nothing more runs'],
      ['agent-update pause agent-2026-12 && agent-update status agent-2026-12 --watch && agent-update cancel agent-2026-12', 'a running one: pause it, wait until it has paused (the server in flight finishes), then cancel'],
    ],
    exits: [[0, 'cancelled, or already cancelled'], [2, 'running with a live executor (pause it first), finished, or unknown; nothing was changed']],
  },
  forget: {
    examples: [
      ['agent-update forget agent-2026-12', 'remove an update that never ran (pending, cancelled before it began, or left planning by a killed plan); its name is free again'],
      ['agent-update cancel agent-2026-12 && agent-update forget agent-2026-12', 'the same, in two steps: end it first, remove it once you are sure'],
    ],
    exits: [
      [0, 'forgotten (with the batches split from it): the update, its servers, its probes and events removed; a `forgotten` event records who and what'],
      [2, 'unknown update, or one that started (its record is the audit trail of that work), or being planned by a live auto run; nothing was changed'],
    ],
  },
  split: {
    examples: [
      ['agent-update split agent-2026-12 --batches 4', 'four parallel batches: agent-2026-12, agent-2026-12.2 … .4'],
      ['agent-update split agent-2026-12 --batches 4 && agent-update resume agent-2026-12 agent-2026-12.2 agent-2026-12.3 agent-2026-12.4', 'once a canary (start --stop-after 1) has paused it and looks good: fan out the rest'],
    ],
    exits: [[0, 'split; the batch names are printed'], [2, 'running, finished, no pending server, or more batches than pending servers; nothing was changed']],
  },
  status: {
    examples: [
      ['agent-update status', 'every update in the database'],
      ['agent-update status agent-2026-12', 'one update, a row per server'],
      ['agent-update status agent-2026-12 --watch', 'redraw until it ends or pauses, with k/N done and the ETA; exits with its outcome'],
      ['agent-update status agent-2026-12 --wide', 'every column and whole errors, however narrow the terminal (by default the table fits it)'],
      ['agent-update --json status agent-2026-12 --watch', 'one JSON document per line until it ends or pauses'],
    ],
    exits: [
      [0, 'shown; with --watch: the update ended success'],
      [1, 'with --watch: it ended failure, partial-success or cancelled'],
      BAD_INPUT,
      [3, 'with --watch: it paused'],
      [5, 'with --watch: it paused, and a server of the run that paused it failed or was rolled back'],
    ],
  },
  logs: {
    examples: [
      ['agent-update logs agent-2026-12', 'every command run on every server, with its output'],
      ['agent-update logs agent-2026-12 --server app3', 'one server'],
    ],
    exits: [[0, 'shown'], BAD_INPUT],
  },
  unlock: {
    examples: [
      ['agent-update unlock app3', 'show the lock on app3 and whether it is stale'],
      ['agent-update unlock app3 --yes', 'clear it, if nobody is working on app3'],
    ],
    exits: [
      [0, 'cleared, or no lock'],
      [1, 'a server could not be reached'],
      [2, 'refused (someone is working on it), or a stale lock found without --yes'],
    ],
  },
  drop: {
    examples: [
      ['agent-update drop agent-2026-12 app7 app9 --reason "disk replacement on Friday"', 'take two servers out before start; status shows why'],
      ["agent-update drop agent-2026-12 'db*'", 'every pending server whose name matches (a batch of its split included)'],
      ['agent-update drop agent-2026-12 app3 && agent-update resume agent-2026-12', 'once a canary (start --stop-after 1) has paused it: drop one, then resume'],
    ],
    exits: [[0, 'dropped: the servers are excluded'], [2, 'the update is not pending or paused, a server is unknown or not pending; nothing was changed']],
  },
  freeze: {
    examples: [
      ['agent-update freeze -c rollout.yaml --reason "incident 4711: hold all agent deploys"', "stop deploys of the config's repo for everyone on this plan database"],
      ['agent-update status', 'shows the freeze (who, when, why) above the updates'],
      ['agent-update --json freeze -c rollout.yaml --reason "release day"', 'the same, with { repo, repoKey, frozen, created, freeze, updates } on stdout'],
    ],
    exits: [
      [0, 'frozen, or already frozen (nothing changed: the freeze in force is shown, with who froze it and why)'],
      [2, 'no --reason, a bad config, or bad usage; nothing was written'],
    ],
  },
  unfreeze: {
    examples: [
      ['agent-update unfreeze -c rollout.yaml', 'deploys of its repo may go on; a rollout the freeze paused waits for resume'],
      ['agent-update unfreeze -c rollout.yaml && agent-update resume agent-2026-12', 'lift it and continue the rollout it paused'],
    ],
    exits: [
      [0, 'lifted, or not frozen (nothing changed)'],
      [2, 'a bad config, or bad usage; nothing was written'],
    ],
  },
  history: {
    examples: [
      ['agent-update history', "every server's commits over time, a table per server"],
      ['agent-update history --server app3', 'one server'],
      ['agent-update history --server app3 --json', 'the same as JSON'],
      ['agent-update history -c rollout.yaml', "the updates of the config's repo in order: commit, status, who, retry/undo lineage, freezes (kubectl rollout history)"],
      ['agent-update history --updates --json', 'every update in order, per repo, as JSON'],
      ['agent-update history agent-2026-12', 'one update: where it came from and every event recorded for it'],
    ],
    exits: [[0, 'shown'], [2, 'no database, an unknown server or update, a bad config, or options that do not go together']],
  },
  auto: {
    examples: [
      ['agent-update auto -c /etc/agent-update/rollout.yaml', 'from cron, as often as you like: plans and starts only when a server is behind'],
      ['agent-update --json auto -c rollout.yaml', 'for CI: the first line says what auto found, then the start\'s events and result'],
      ['agent-update auto -c rollout.yaml --version 1.4.0 --limit canary1', 'the release tagged v1.4.0 on canary1 alone; nothing to do once it runs it'],
    ],
    exits: [
      [0, 'success, nothing to do, or already running (another process or auto run is at it; nothing touched), or outside execution.window (nothing planned or started; a rollout paused by the window closing is resumed by the next auto inside it)'],
      [1, 'the rollout ended failure or partial-success, or this commit already failed here (nothing touched)'],
      [2, 'bad config, unknown branch, commit or version tag, a --limit pattern that matches none of the servers; nothing was written'],
      [3, 'an update of this config is paused (auto does not resume it, unless only its window or a freeze since lifted paused it) or pending from a person (auto does not start it), or test mode or a freeze paused the new one; or its repo is frozen (nothing touched)'],
      [4, 'busy: another process took the update in the instant before auto started it'],
      [5, 'the new rollout paused (test mode, its window) after a server of it failed or was rolled back'],
      [130, 'interrupted'],
    ],
  },
  undo: {
    examples: [
      ['agent-update undo agent-2026-12', 'a new pending update, agent-2026-12-undo: each server it changed back to its own previous commit'],
      ['agent-update undo agent-2026-12 && agent-update start agent-2026-12-undo', 'undo and run it (verified like any update)'],
    ],
    exits: [
      [0, 'planned (its name is printed), or nothing to undo (nothing written)'],
      [2, 'unknown update, it or a batch pending or running, an unfinished undo of it exists, or the name is taken; nothing was written'],
      [130, 'interrupted while probing; nothing was written'],
    ],
  },
  restart: {
    examples: [
      ['agent-update restart -c rollout.yaml', 'restart the agent on every server of the config, one at a time, each verified healthy at the commit it runs'],
      ["agent-update restart -c rollout.yaml --limit 'web*' --stop-after 1", 'a canary: the first web server, then paused (resume NAME for the rest)'],
      ['agent-update restart -c rollout.yaml --no-start', 'plan it only: review it (plan --show-commands NAME), then start NAME'],
    ],
    exits: [
      [0, 'every server restarted and verified (or, with --no-start, planned)'],
      [1, 'a server failed its restart or its verify (it is failed: a restart is not rolled back), or the run stopped on a server it could not recover'],
      [2, 'bad config, a --limit pattern that matches none of the servers, no restart listed; nothing was written'],
      [3, 'paused (--stop-after, pause, Ctrl-C, outside execution.window)'],
      [4, 'busy: another process took the update'],
      [5, 'paused after a server of the run failed (under execution.max_failures)'],
      [69, 'no server could be reached: the plan is recorded, nothing was restarted'],
      [130, 'interrupted'],
    ],
  },
  retry: {
    examples: [
      ['agent-update retry agent-2026-12', 'a new pending update, agent-2026-12-retry, of the servers that did not make it'],
      ['agent-update retry agent-2026-12 --include-fatal --name agent-2026-12-again', 'fatal ones too, once a person has fixed them'],
      ['agent-update retry agent-2026-12 && agent-update start agent-2026-12-retry', 'retry and run it'],
    ],
    exits: [
      [0, 'planned (its name is printed), or nothing to retry (nothing written)'],
      [2, 'unknown update, it or a batch still running or pending, an unfinished retry of it exists, or the name is taken; nothing was written'],
      [130, 'interrupted while probing; nothing was written'],
    ],
  },
  demo: {
    examples: [
      ['agent-update demo', 'five simulated servers: a good rollout, then a broken one rolled back'],
      ['agent-update demo --dir ./demo --keep-running', 'keep the fleet up and run plan and start on it by hand'],
    ],
    exits: [
      [0, 'the demo went as it should'],
      [1, 'it did not (a bug, please report it)'],
      [2, 'bad options'],
    ],
  },
  db: {
    examples: [
      ['agent-update db copy ~/.local/state/agent-update/agent-update.db postgres://ops@db.example/fleet', 'move the plan from your file into PostgreSQL (schema agent_update), history and all'],
      ["agent-update db copy 'postgres://ops@db.example/fleet?schema=team_a' ./plan-backup.db", 'a copy of a shared plan in a local file'],
      ["agent-update --json db copy old.db 'postgres://ops@db.example/fleet?schema=team_b'", 'the same, with { from, to, dbId, updates, servers, journal, events, autoRuns } on stdout'],
    ],
    exits: [
      [0, 'copied: TO holds everything FROM does, with the same ids and identity'],
      [1, 'the copy failed while writing (TO is left empty), or a database did not answer'],
      [2, 'refused, nothing written: FROM does not exist, TO holds a plan already, an update of FROM is being executed (pause it first), or bad usage'],
    ],
  },
};

function helpText(h: CommandHelp): string {
  const examples = h.examples.map(([c, d]) => `  # ${d}\n  $ ${c}`);
  const exits = h.exits.map(([code, what]) => `  ${String(code).padStart(3)}  ${what}`);
  return `\nExamples:\n${examples.join('\n')}\n\nExit codes:\n${exits.join('\n')}\n`;
}

export const ROOT_HELP = `
Getting started:
  $ agent-update demo                        # see a rollout and a rollback, nothing to set up
  $ agent-update plan -c rollout.yaml        # probe the fleet, record the plan, print its name
  $ agent-update start NAME --stop-after 1   # a canary; then: resume NAME (or split it)
  $ agent-update <command> --help            # examples and exit codes of one command

Not on your PATH yet? \`npm link\` (or \`npm install -g .\`) in the project puts it there once;
until then run \`./bin/agent-update.js …\` from the project's folder. Avoid \`npx agent-update\` for
rollouts: npm stands between you and it (a Ctrl-C's pause exits 130, a kill reaches npm only).
The plan database is $AGENT_UPDATE_DB, else $XDG_STATE_HOME/agent-update/agent-update.db
(~/.local/state/agent-update/agent-update.db); --db PATH picks another.

Exit codes:
    0  done (start/resume: the update ended success)
    1  an update ended failure or partial-success, or stopped on a server it could not recover
    2  bad input: usage, config, name, a state transition not allowed; nothing was changed
    3  the update is paused (pause asked, the test-mode limit reached, or outside its window),
       or start/resume/auto refused: its repo is frozen (freeze / unfreeze)
    4  busy: another process is already executing this update
    5  paused, and a server of this run failed or was rolled back (not a clean pause)
   69  plan: no server could be reached (recorded; check them, then plan --refresh NAME)
  130  interrupted
`;

/** Examples and exit codes under every command's --help, global options listed in each. */
export function addHelp(program: Command): void {
  program.configureHelp({ showGlobalOptions: true });
  program.addHelpText('after', ROOT_HELP);
  for (const c of program.commands) {
    c.configureHelp({ showGlobalOptions: true });
    const h = HELP[c.name()];
    if (h) c.addHelpText('after', helpText(h));
    // a command's subcommands (`db copy`): the same help
    for (const sub of c.commands) {
      sub.configureHelp({ showGlobalOptions: true });
      if (h) sub.addHelpText('after', helpText(h));
    }
  }
}

/**
 * Options other tools have that agent-update takes from the config (or only on the commands that
 * make a plan from it): an unknown one of these is answered with where its value goes, not
 * commander's nearest option (`--commit` is not "did you mean --config?").
 */
const FROM_THE_CONFIG: Record<string, string> = {
  '--commit':
    'the target commit is chosen when the update is planned: source.commit in the config (-c FILE), or `plan -c FILE --commit SHA` (also auto); a planned update keeps its commit',
  '--branch': 'the branch is chosen when the update is planned: source.branch in the config (-c FILE), or `plan -c FILE --branch NAME` (also auto)',
  '--repo': 'the repository is source.repo in the config (-c FILE)',
};

/**
 * commander's error text, with an unknown option of FROM_THE_CONFIG explained instead of a
 * guess (configureOutput's outputError).
 */
export function explainUnknownOption(text: string): string {
  const m = /^error: unknown option '([^'=]+)(?:=[^']*)?'/.exec(text);
  const why = m ? FROM_THE_CONFIG[m[1]!] : undefined;
  if (!m || why === undefined) return text;
  return `error: unknown option '${m[1]}': ${why}\n`;
}

