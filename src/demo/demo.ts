/**
 * The simulated fleet behind `agent-update demo`: everything a real rollout needs, on this
 * machine, without OpenSSH, keys, network or a config of the user's.
 *
 *     DIR/
 *       rollout.yaml           config: branch master (the `good` commit) to every server
 *       rollout-broken.yaml    config: branch broken (never comes online), short health timeout
 *       agent-update.db        the plan database (unless the caller chooses another)
 *       ssh/id_ed25519         client key (0600), accepted by every simulated server
 *       ssh/known_hosts        the host key of every simulated server
 *       upstream/              git repository of the agent (see src/sim/upstream.ts)
 *       servers/demo-N/        home folder of server demo-N, with the agent in agent/ (src/sim/agent.ts)
 *
 * Each server is an in-process SSH server (src/sim/ssh-server.ts) on 127.0.0.1 speaking the real
 * protocol: our client verifies its host key against ssh/known_hosts and authenticates with
 * ssh/id_ed25519; commands run for real with /bin/sh in the server's home folder. The servers
 * live only as long as this process.
 *
 * prepareDemoFleet() claims the folder synchronously, so a caller can clean it up from a signal
 * handler even while start() is still building the fleet.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { stringify } from 'yaml';
import { generateKeyPair } from '../sim/keys.js';
import { UsageError } from '../errors.js';
import { repoProblem } from '../config/check-source.js';
import { agentCommands, currentCommit, installAgent } from '../sim/agent.js';
import { startSimServer, type SimServer } from '../sim/ssh-server.js';
import { createUpstream, type Upstream } from '../sim/upstream.js';

export const DEMO_MAX_SERVERS = 20;
/** Marks a folder made by the demo: only such a folder is ever emptied by a later `--dir`. */
const MARKER = '.agent-update-demo';
/** What the demo writes at the top of its folder (removed when `--dir` reuses the folder). */
const ENTRIES = [
  'rollout.yaml',
  'rollout-broken.yaml',
  'my-rollout.yaml',
  'agent-update.db',
  'agent-update.db-wal',
  'agent-update.db-shm',
  'ssh',
  'upstream',
  'servers',
  MARKER,
];

export interface DemoFleetOptions {
  /** how many servers, demo-1..demo-N (1..20) */
  servers: number;
  /** keep the fleet in this folder (created when missing) instead of a temp folder removed by stop() */
  dir?: string;
  /** the ssh user of the servers; any name works, the simulated servers accept it */
  user?: string;
}

export interface DemoServer {
  name: string;
  host: string;
  port: number;
  /** the server's home folder: `~` of its commands */
  home: string;
}

export interface DemoFleetInfo {
  dir: string;
  /** true when `dir` stays after stop() (`--dir`) */
  kept: boolean;
  /** scenario 1: branch master to every server */
  configFile: string;
  /** scenario 2: branch broken, 3s health timeout, stop after a rollback */
  brokenConfigFile: string;
  /** the database's default place, in the folder */
  dbPath: string;
  identityFile: string;
  knownHostsFile: string;
  upstream: Upstream;
  servers: DemoServer[];
  /** the server installed at the target of scenario 1 already, if any (skipped by it) */
  alreadyAtTarget: string | null;
  /** seconds of scenario 2's health timeout */
  brokenHealthTimeoutS: number;
  /** the commit the agent of a server is at now, read from its repository */
  commitOf(server: string): string;
}

export interface DemoFleet {
  readonly dir: string;
  readonly kept: boolean;
  /** build the upstream, the servers' agents and SSH servers, the keys and the configs */
  start(): Promise<DemoFleetInfo>;
  /** stop the servers at once (their running commands are killed); the folder stays */
  closeServers(): void;
  /** stop the servers and remove the folder unless it is kept; idempotent */
  stop(): Promise<void>;
  /** the same, synchronously, for `process.on('exit')` and a second Ctrl-C */
  stopSync(): void;
}

const BROKEN_HEALTH_TIMEOUT_S = 3;

/** The server that already runs the target in scenario 1: the middle one (none with 1 server). */
export function alreadyAtTargetIndex(servers: number): number | null {
  return servers >= 2 ? Math.ceil(servers / 2) : null;
}

/** Claim the folder (a new temp folder, or `dir` when empty, missing or made by an earlier demo). */
export function prepareDemoFleet(opts: DemoFleetOptions): DemoFleet {
  if (!Number.isInteger(opts.servers) || opts.servers < 1 || opts.servers > DEMO_MAX_SERVERS) {
    throw new UsageError(`--servers must be a whole number from 1 to ${DEMO_MAX_SERVERS}, not ${opts.servers}`);
  }
  const kept = opts.dir !== undefined;
  // The config names the upstream by its path, and source.repo refuses spaces and shell
  // metacharacters: say so before anything is made.
  const where = kept ? path.resolve(opts.dir!) : os.tmpdir();
  const why = repoProblem(path.join(where, 'upstream'));
  if (why !== null) {
    throw new UsageError(
      `${kept ? '--dir' : 'the temp folder ($TMPDIR)'} ${where} cannot hold the demo: its upstream repository there would be refused as source.repo ` +
        `(${why.replace(/^"[^"]*" /, '')}); ${kept ? 'choose another folder' : 'set TMPDIR to another folder, or pass --dir'}`,
    );
  }
  const dir = kept ? claimDir(where) : mkdtempSync(path.join(where, 'agent-update-demo-'));
  writeFileSync(
    path.join(dir, MARKER),
    'Made by `agent-update demo`. A later `agent-update demo --dir` on this folder replaces what the demo put here.\n',
  );

  const sims: SimServer[] = [];
  let stopped = false;
  const closeServers = () => {
    for (const s of sims.splice(0)) void s.close(); // kills commands and sockets at once; the rest is a formality
  };
  const removeDir = () => {
    if (!kept) rmSync(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 50 });
  };

  return {
    dir,
    kept,
    start: () => buildFleet(dir, kept, opts, sims),
    closeServers,
    async stop() {
      const closing = sims.splice(0).map((s) => s.close());
      await Promise.all(closing);
      if (stopped) return;
      stopped = true;
      removeDir();
    },
    stopSync() {
      closeServers();
      if (stopped) return;
      stopped = true;
      removeDir();
    },
  };
}

function claimDir(dir: string): string {
  if (!existsSync(dir)) {
    mkdirSync(dir, { recursive: true });
    return dir;
  }
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch (e) {
    throw new UsageError(`--dir ${dir}: ${(e as NodeJS.ErrnoException).code === 'ENOTDIR' ? 'is a file, not a folder' : (e as Error).message}`);
  }
  if (entries.length === 0) return dir;
  if (!entries.includes(MARKER)) {
    throw new UsageError(`--dir ${dir}: the folder is not empty and was not made by \`agent-update demo\`; give a new or empty folder`);
  }
  // A folder from an earlier demo: start afresh (its servers' ports are gone anyway).
  for (const e of ENTRIES) rmSync(path.join(dir, e), { recursive: true, force: true });
  return dir;
}

async function buildFleet(dir: string, kept: boolean, opts: DemoFleetOptions, sims: SimServer[]): Promise<DemoFleetInfo> {
  const sshDir = path.join(dir, 'ssh');
  mkdirSync(sshDir, { recursive: true, mode: 0o700 });
  const identityFile = path.join(sshDir, 'id_ed25519');
  const keys = generateKeyPair('ed25519', 'agent-update-demo');
  writeFileSync(identityFile, keys.private, { mode: 0o600 });
  chmodSync(identityFile, 0o600); // in case the file existed with other permissions
  writeFileSync(`${identityFile}.pub`, keys.public + '\n');

  const upstream = await createUpstream(path.join(dir, 'upstream'));
  const atTarget = alreadyAtTargetIndex(opts.servers);
  const names = Array.from({ length: opts.servers }, (_, i) => `demo-${i + 1}`);

  const servers = await Promise.all(
    names.map(async (name, i): Promise<DemoServer & { hostKeyLine: string }> => {
      const home = path.join(dir, 'servers', name);
      await installAgent(home, upstream.repo, i + 1 === atTarget ? upstream.commits.good : upstream.commits.base);
      const sim = await startSimServer({ authorizedKey: keys.public, home });
      sims.push(sim);
      return { name, host: sim.host, port: sim.port, home, hostKeyLine: sim.hostKeyLine };
    }),
  );

  const knownHostsFile = path.join(sshDir, 'known_hosts');
  writeFileSync(knownHostsFile, servers.map((s) => s.hostKeyLine).join('\n') + '\n');

  const configFile = path.join(dir, 'rollout.yaml');
  const brokenConfigFile = path.join(dir, 'rollout-broken.yaml');
  const common = { repo: upstream.repo, servers, identityFile, knownHostsFile, user: opts.user ?? 'demo' };
  writeFileSync(configFile, configText({ ...common, scenario: 'good' }));
  writeFileSync(brokenConfigFile, configText({ ...common, scenario: 'broken' }));

  return {
    dir,
    kept,
    configFile,
    brokenConfigFile,
    dbPath: path.join(dir, 'agent-update.db'),
    identityFile,
    knownHostsFile,
    upstream,
    servers: servers.map(({ name, host, port, home }) => ({ name, host, port, home })),
    alreadyAtTarget: atTarget === null ? null : (names[atTarget - 1] ?? null),
    brokenHealthTimeoutS: BROKEN_HEALTH_TIMEOUT_S,
    commitOf(server: string): string {
      const s = servers.find((x) => x.name === server);
      if (!s) throw new Error(`no demo server ${server}`);
      return currentCommit(s.home);
    },
  };
}

/** `line  # comment`, the comments of a file aligned on one column. */
function note(line: string, comment: string): string {
  return `${line.padEnd(40)} # ${comment}`;
}

/** One YAML scalar, quoted only when YAML needs it (`~/…` and `{…}` do). */
function y(value: string | number | boolean): string {
  return stringify(value).trimEnd();
}

interface ConfigInput {
  scenario: 'good' | 'broken';
  repo: string;
  servers: DemoServer[];
  identityFile: string;
  knownHostsFile: string;
  user: string;
}

/**
 * A config as an operator would write it, with comments: only the ports, paths and the ssh
 * section differ from a real fleet's.
 */
export function configText(c: ConfigInput): string {
  const agent = agentCommands();
  const broken = c.scenario === 'broken';
  const width = Math.max(...c.servers.map((s) => s.name.length));
  const lines = [
    broken
      ? '# agent-update demo, scenario 2: roll out branch `broken`, whose agent never comes online.'
      : '# agent-update demo, scenario 1: roll out branch `master` to every server.',
    '# Written by `agent-update demo`; the servers are simulated SSH servers on 127.0.0.1 that',
    '# exist only while the demo runs (the ports change every run). Copy it as a starting point',
    '# for a real fleet: change source.repo, servers, ssh and the agent commands.',
    '',
    'source:',
    `  repo: ${y(c.repo)}`,
    note(`  branch: ${broken ? 'broken' : 'master'}`, 'the commit is its tip, resolved when planning'),
    '',
    'servers:',
    ...c.servers.map(
      (s) => `  - { name: ${s.name},${' '.repeat(width - s.name.length)} host: ${s.host}, port: ${s.port}, type: app }`,
    ),
    '',
    'ssh:',
    `  user: ${y(c.user)}`,
    `  identity_file: ${y(c.identityFile)}`,
    note(`  known_hosts: ${y(c.knownHostsFile)}`, 'host keys are always verified'),
    note('  agent: false', 'only identity_file, not a running ssh-agent'),
    '  connect_timeout: 5s',
    '  command_timeout: 1m',
    '',
    'agent:',
    note(`  version_command: ${y(agent.version_command)}`, 'prints the installed commit'),
    note('  update:', 'run in order; a non-zero exit fails the server'),
    ...agent.update.map((cmd) => `    - ${y(cmd)}`),
    note('  restart:', 'named restart commands'),
    ...Object.entries(agent.restart).map(([name, cmd]) => `    ${name}: ${y(cmd)}`),
    '  health:',
    note(`    command: ${y(agent.health.command)}`, 'prints {"status":"online","commit":"<hex>"} when up'),
    note(`    expect: ${y(agent.health.expect)}`, 'the output must contain the target commit'),
    note(`    timeout: ${broken ? `${BROKEN_HEALTH_TIMEOUT_S}s` : '15s'}`, 'give up on a server after this'),
    note('    interval: 500ms', 'time between two health checks'),
    '',
    note('restart: [web, workers]', 'which agent.restart commands this update runs'),
    '',
    'rollback:',
    note('  enabled: true', 'a server that is not healthy in time gets its previous commit back'),
    note('  continue_after_rollback: false', 'and the rollout stops there'),
    '',
  ];
  return lines.join('\n');
}
