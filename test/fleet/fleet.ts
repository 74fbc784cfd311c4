/**
 * A test fleet: one real OpenSSH sshd, listening on several loopback addresses of a random
 * 127.0.X.0/24 subnet, each address being its own "server" with its own home folder and its own
 * simulated agent (src/sim/agent.ts) checked out from a local upstream (src/sim/upstream.ts).
 *
 *   servers  s1..sN  at 127.0.X.1..N      type `app` for odd numbers, `db` for even ones
 *                     (beyond 149: s150.. at 127.1.X.1.., s299.. at 127.2.X.1.., and so on)
 *            u1..    at 127.0.X.200+i     unreachable: nothing listens there (connection refused)
 *            h1..    at 127.0.X.150+i     hanging: accepts TCP but never says a word (timeouts)
 *
 * All servers share one port (the sshd's, picked free at start) and the current user (root in
 * CI). A ForceCommand wrapper sets HOME to `<root>/homes/<address>` from $SSH_CONNECTION and
 * runs the requested command with `/bin/sh -c`, so `~` in commands is that server's home (exec
 * requests from ssh2 go through it too); a server's `~/.fleet-bin`, when a test makes one, comes
 * first on its PATH (a reset removes it with the home). sshd binds at most 16 addresses, so fleets of more than
 * 16 servers run one sshd per 16 (same port, same host key). Every live server starts with the
 * agent at `upstream.commits.base`, online, no deploy logged, one `web` restart logged;
 * `probeOnly: true` gives each only a `~/commit` file instead (a 1,000-server fleet for `plan`
 * starts in seconds).
 *
 * Timing (this VM): startFleet ≈ 0.4–0.7 s for 3 servers (1.5 s when two fleets start at once),
 * ≈ 2–3.5 s for 20; one `ssh` client round trip ≈ 0.35 s; one command on an open ssh2 connection
 * ≈ 5 ms (sshd sets SHLVL so the login shell reads no rc file); stop() ≈ 50–300 ms.
 * Set FLEET_SSHD_LOGLEVEL=VERBOSE (or DEBUG1) to get a detailed sshdLog().
 *
 *     const fleet = await startFleet({ servers: 3 });
 *     after(() => fleet.stop());
 *     const file = fleet.writeConfig({ source: { branch: 'good2' } });
 *     // ... run agent-update with -c file, then:
 *     assert.equal(currentCommit(fleet.home('s1')), fleet.upstream.commits.good2);
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, unlink, writeFile, chmod } from 'node:fs/promises';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { TestContext } from 'node:test';
import { execa } from 'execa';
import { stringify } from 'yaml';
import type { ServerSpec, SshConfig } from '../../src/config/types.js';
import { agentCommands, installAgent, setAgentCommit } from '../../src/sim/agent.js';
import { createUpstream, type Upstream, type UpstreamOptions } from '../../src/sim/upstream.js';
import { testTmpRoot } from '../helpers/tmp.js';

export const SSHD = '/usr/sbin/sshd';
const SSH_KEYGEN = 'ssh-keygen';

export interface FleetOptions {
  /**
   * servers with a live sshd and agent (s1..sN); default 3, at most 149 in one 127.0.X.0/24,
   * more (up to 4000) in further subnets 127.K.X.0/24 (K = 1, 2, …, 149 servers each)
   */
  servers?: number;
  /**
   * A light fleet for planning at scale: each live server's home holds only `commit` (the base
   * commit, one line) and no agent, no git checkout; writeConfig() sets `version_command:
   * cat ~/commit`. Enough for `plan` (probes), not for a rollout. setCommit() writes the file;
   * reset() rewrites it. Default false.
   */
  probeOnly?: boolean;
  /** servers nobody listens on (u1..); default 0 */
  unreachable?: number;
  /** servers that accept the TCP connection but never answer (h1..); default 0 */
  hanging?: number;
  upstream?: UpstreamOptions;
}

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface Fleet {
  /** temp folder holding everything; removed by stop() */
  root: string;
  /** the port every server of this fleet uses (unreachable ones included) */
  port: number;
  /** s1..sN, then u1.., then h1.. */
  servers: ServerSpec[];
  upstream: Upstream;
  /** client private key (no passphrase) accepted by every server */
  identityFile: string;
  /** plain `[host]:port ssh-ed25519 …` lines for every server */
  knownHosts: string;
  /** the same, hashed by `ssh-keygen -H` */
  knownHostsHashed: string;
  /** every server listed with a different key: host key mismatch */
  knownHostsWrong: string;
  /** a known_hosts file that lists none of the servers: host key unknown */
  knownHostsMissing: string;
  /** the home folder of a live server (s1..) */
  home(serverName: string): string;
  server(serverName: string): ServerSpec;
  /** the `ssh:` section of a config (snake_case, as in SPEC) */
  sshConfigYaml(): Record<string, unknown>;
  /** the same as the normalised SshConfig (src/config/types.ts), for transport tests; agent: false */
  sshConfig(overrides?: Partial<SshConfig>): SshConfig;
  /** a full valid SPEC config as a plain object, `overrides` deep-merged (see deepMerge) */
  configObject(overrides?: Record<string, unknown>): Record<string, unknown>;
  /** writes configObject(overrides) as YAML to `file` (default: a new file under root); returns its path */
  writeConfig(overrides?: Record<string, unknown>, file?: string): string;
  /** runs `command` on a server through the real `ssh` client */
  ssh(serverName: string, command: string, options?: { knownHosts?: string; timeoutMs?: number }): Promise<CommandResult>;
  /** runs `command` with /bin/sh locally, as the server would (HOME and cwd = its home); no SSH */
  sh(serverName: string, command: string): Promise<CommandResult>;
  /** puts a server's agent at `commit` and restarts it (outside any rollout; not a deploy) */
  setCommit(serverName: string, commit: string): Promise<void>;
  /**
   * Stop accepting SSH connections until release(): every sshd listener is stopped (SIGSTOP), so
   * a new connection is queued by the kernel and never greeted (the client waits in its
   * handshake, up to its connect timeout); connections already open go on. release() resumes
   * the listeners (idempotent; stop() releases too).
   */
  holdNewConnections(): { release(): void };
  /**
   * Put live servers back as startFleet left them: their sessions killed (commands a test left
   * running, waiting on a gate or a `sleep`), each home replaced by a fresh agent at base, online,
   * no deploy logged, one `web` restart logged, no gates. `names` defaults to this fleet's live
   * servers; held connections are released.
   */
  reset(names?: string[]): Promise<void>;
  /**
   * This fleet seen as a smaller one (test/helpers/cli.ts sharedFleet): only the first
   * `servers` live servers, `unreachable` and `hanging` ones, with `root` as its own folder for
   * configs and databases (made if missing); its stop() does nothing.
   */
  view(size: Pick<FleetOptions, 'servers' | 'unreachable' | 'hanging'>, root: string): Fleet;
  /** the sshd's log (stderr, LogLevel from $FLEET_SSHD_LOGLEVEL, default ERROR) */
  sshdLog(): string;
  /** kills sshd and its sessions, closes hanging listeners, removes root; idempotent */
  stop(): Promise<void>;
}

/** True when this machine can run a fleet. */
/**
 * A known_hosts file at `file` naming the fleet's host key (one for every server) under each
 * endpoint given: another name for a server, a proxy in front of it. Returns `file`.
 */
export function knownHostsAs(fleet: Pick<Fleet, 'knownHosts'>, file: string, endpoints: ReadonlyArray<{ host: string; port: number }>): string {
  const key = readFileSync(fleet.knownHosts, 'utf8').split('\n')[0]!.split(' ').slice(1).join(' ');
  writeFileSync(file, endpoints.map((e) => `[${e.host}]:${e.port} ${key}\n`).join(''));
  return file;
}

export function sshdAvailable(): boolean {
  return existsSync(SSHD) && whichSync(SSH_KEYGEN) && whichSync('ssh') && whichSync('git');
}

/**
 * Call first in a test needing a fleet: `if (!requireSshd(t)) return;`. Skips the test when
 * sshd (or ssh, ssh-keygen, git) is missing, unless REQUIRE_SSHD=1, where it throws instead.
 */
export function requireSshd(t: TestContext): boolean {
  if (sshdAvailable()) return true;
  const message = `${SSHD}, ssh, ssh-keygen or git is not installed`;
  if (process.env.REQUIRE_SSHD === '1') throw new Error(`${message} (REQUIRE_SSHD=1)`);
  t.skip(message);
  return false;
}

function whichSync(cmd: string): boolean {
  return (process.env.PATH ?? '/usr/bin:/bin').split(':').some((dir) => dir !== '' && existsSync(path.join(dir, cmd)));
}

/** Plain objects merge recursively; arrays, scalars and null replace; `undefined` deletes the key. */
export function deepMerge(base: Record<string, unknown>, overrides: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) {
      delete out[key];
    } else if (isPlainObject(value) && isPlainObject(out[key])) {
      out[key] = deepMerge(out[key] as Record<string, unknown>, value);
    } else {
      out[key] = value;
    }
  }
  return out;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * sshd processes alive and temp folders not yet removed: killed / removed when the process exits
 * if a test forgot stop() (or crashed).
 */
const liveDaemons = new Set<number>();
const pendingRoots = new Set<string>();
process.on('exit', () => {
  for (const daemon of liveDaemons) killDaemonTree(daemon, 'SIGKILL');
  for (const root of pendingRoots) {
    try {
      rmSync(root, { recursive: true, force: true });
    } catch {
      // best effort
    }
  }
});
function trackDaemon(pid: number): void {
  liveDaemons.add(pid);
}

/** All descendants of `pid` (the sshd listener's per-connection processes and their shells), from /proc. */
function descendantsOf(pid: number): number[] {
  const parents = new Map<number, number[]>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const siblings = parents.get(ppid) ?? [];
      siblings.push(Number(entry));
      parents.set(ppid, siblings);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const queue = [pid];
  for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    for (const child of parents.get(next) ?? []) {
      out.push(child);
      queue.push(child);
    }
  }
  return out;
}

/** Kills the sshd listener and every process it started (sessions run in their own sessions). */
function killDaemonTree(pid: number, signal: NodeJS.Signals): void {
  const descendants = descendantsOf(pid);
  for (const target of [pid, ...descendants]) {
    try {
      process.kill(target, signal);
    } catch {
      // already gone
    }
  }
}

function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function randomInt(min: number, max: number): number {
  return min + Math.floor(Math.random() * (max - min + 1));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function shQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

async function keygen(file: string, comment: string): Promise<string> {
  await execa(SSH_KEYGEN, ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file]);
  await chmod(file, 0o600);
  const pub = (await readFile(`${file}.pub`, 'utf8')).trim().split(/\s+/);
  return `${pub[0]} ${pub[1]}`;
}

interface Daemon {
  child: ChildProcess;
  exited: Promise<void>;
  logFile: string;
}

/** sshd binds at most 16 listen sockets (MAX_LISTEN_SOCKS): bigger fleets run several daemons. */
const ADDRESSES_PER_SSHD = 16;

interface SshdParams {
  root: string;
  index: number;
  addresses: string[];
  port: number;
  hostKey: string;
  identityFile: string;
  wrapper: string;
}

/**
 * Starts one sshd listening on `addresses` at `port`; resolves once every socket is bound (sshd
 * writes its pid file after binding, and logs a bind failure before). On failure the daemon is killed and `error` says why (`inUse` when
 * an address:port was taken, so the caller retries elsewhere).
 */
async function startSshd(p: SshdParams): Promise<{ daemon: Daemon } | { error: string; inUse: boolean }> {
  const configFile = path.join(p.root, `sshd_config.${p.index}`);
  const pidFile = path.join(p.root, `sshd.${p.index}.pid`);
  const logFile = path.join(p.root, `sshd.${p.index}.log`);
  const logLevel = process.env.FLEET_SSHD_LOGLEVEL ?? 'ERROR';
  await writeFile(
    configFile,
    [
      ...p.addresses.map((address) => `ListenAddress ${address}:${p.port}`),
      `HostKey ${p.hostKey}`,
      `PidFile ${pidFile}`,
      `AuthorizedKeysFile ${p.identityFile}.pub`,
      `ForceCommand ${p.wrapper}`,
      'StrictModes no',
      'UsePAM no',
      'PermitRootLogin yes',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      `LogLevel ${logLevel}`,
      'MaxStartups 100',
      'MaxSessions 100',
      'UseDNS no',
      'PrintMotd no',
      'PrintLastLog no',
      'X11Forwarding no',
      'AllowTcpForwarding no',
      'AllowAgentForwarding no',
      'LoginGraceTime 30',
      // sshd runs every command through the user's login shell. Debian's bash sources ~/.bashrc
      // for `bash -c` from sshd when SHLVL is unset (SSH_SOURCE_BASHRC); a developer's or CI
      // image's .bashrc (pyenv init, nvm, …) then costs ~100 ms per remote command, seven per
      // server. With SHLVL set bash is not a "top-level" shell and reads no rc file.
      'SetEnv SHLVL=1',
      '',
    ].join('\n'),
  );
  await rm(pidFile, { force: true });
  const logFd = openSync(logFile, 'w');
  const child = spawn(SSHD, ['-D', '-e', '-f', configFile], { stdio: ['ignore', 'ignore', logFd], detached: true });
  closeSync(logFd);
  child.unref();
  let exited = false;
  const exitedPromise = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true;
      if (child.pid !== undefined) liveDaemons.delete(child.pid);
      resolve();
    });
    child.once('error', () => {
      exited = true;
      resolve();
    });
  });
  if (child.pid === undefined) {
    await exitedPromise;
    return { error: `could not start ${SSHD}`, inUse: false };
  }
  trackDaemon(child.pid);

  // The pid file is written once every listen socket is bound (or failed to bind).
  const deadline = Date.now() + 15_000;
  let ready = false;
  while (!exited && Date.now() < deadline) {
    const pid = existsSync(pidFile) ? readFileSync(pidFile, 'utf8') : '';
    if (/^\d+\n/.test(pid)) {
      ready = true;
      break;
    }
    await sleep(10);
  }
  const log = readFileSync(logFile, 'utf8');
  let error: string;
  if (ready && !exited && !/Bind to port|Cannot bind/i.test(log)) {
    return { daemon: { child, exited: exitedPromise, logFile } };
  }
  if (exited) {
    error = `sshd exited (code ${child.exitCode ?? child.signalCode})\n${log}`;
  } else {
    error = ready ? `sshd could not bind every address\n${log}` : `sshd did not start within 15s\n${log}`;
  }
  killDaemonTree(child.pid, 'SIGKILL');
  await exitedPromise;
  return { error, inUse: /Address already in use|Bind to port|Cannot bind/i.test(error) };
}

async function stopDaemon(daemon: Daemon): Promise<void> {
  const pid = daemon.child.pid;
  if (pid === undefined || daemon.child.exitCode !== null || daemon.child.signalCode !== null) return;
  // the listener and its per-connection children (each in its own session)
  killDaemonTree(pid, 'SIGTERM');
  const timer = setTimeout(() => killDaemonTree(pid, 'SIGKILL'), 2000);
  await daemon.exited;
  clearTimeout(timer);
}

const SESSION_WRAPPER = (homes: string) => `#!/bin/sh
# ForceCommand of the test fleet: the local address of the connection picks the server.
set -- $SSH_CONNECTION
addr=\${3:-}
HOME=${shQuote(homes)}/"$addr"
if [ -z "$addr" ] || [ ! -d "$HOME" ]; then
  echo "fleet: no server at address '$addr'" >&2
  exit 255
fi
export HOME
cd "$HOME" || exit 255
# a test's own commands for this server (a ps that does not work, …): first on the PATH
if [ -d "$HOME/.fleet-bin" ]; then PATH=$HOME/.fleet-bin:$PATH; export PATH; fi
if [ -n "\${SSH_ORIGINAL_COMMAND:-}" ]; then
  exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"
fi
exec /bin/sh -i
`;

/** Live servers per 127.K.X.0/24 subnet: .1 to .149 (.150+ are hanging, .200+ unreachable ones). */
const LIVE_PER_SUBNET = 149;

/** The address of live server `i` (1-based): 127.0.X.i up to 149, then 127.1.X.1…, 127.2.X.1… */
function liveAddress(subnet: number, i: number): string {
  const k = Math.floor((i - 1) / LIVE_PER_SUBNET);
  return `127.${k}.${subnet}.${((i - 1) % LIVE_PER_SUBNET) + 1}`;
}

export async function startFleet(options: FleetOptions = {}): Promise<Fleet> {
  const count = options.servers ?? 3;
  const unreachable = options.unreachable ?? 0;
  const hanging = options.hanging ?? 0;
  const probeOnly = options.probeOnly ?? false;
  if (!Number.isInteger(count) || count < 1 || count > 4000) throw new Error(`servers must be 1..4000, got ${count}`);
  if (unreachable < 0 || unreachable > 50 || hanging < 0 || hanging > 49) throw new Error('too many unreachable/hanging servers');
  if (!existsSync(SSHD)) throw new Error(`${SSHD} is not installed`);

  const root = await mkdtemp(path.join(testTmpRoot(), 'agent-update-fleet-'));
  if (/\s/.test(root)) throw new Error(`temp folder has whitespace: ${root}`);
  const daemons: Daemon[] = [];
  pendingRoots.add(root);
  const hangingServers: net.Server[] = [];
  const hangingSockets = new Set<net.Socket>();
  try {
    const keys = path.join(root, 'keys');
    const homes = path.join(root, 'homes');
    const bin = path.join(root, 'bin');
    await Promise.all([mkdir(keys), mkdir(homes), mkdir(bin), mkdir(path.join(root, 'configs'))]);
    await mkdir('/run/sshd', { recursive: true }).catch(() => undefined);

    const identityFile = path.join(keys, 'id_ed25519');
    const hostKey = path.join(keys, 'ssh_host_ed25519_key');
    const [, hostPub, wrongPub, upstream] = await Promise.all([
      keygen(identityFile, 'agent-update-fleet-client'),
      keygen(hostKey, 'agent-update-fleet-host'),
      keygen(path.join(keys, 'wrong_host_ed25519_key'), 'agent-update-fleet-wrong-host'),
      createUpstream(path.join(root, 'upstream'), options.upstream),
    ]);

    const wrapper = path.join(bin, 'session');
    await writeFile(wrapper, SESSION_WRAPPER(homes), { mode: 0o755 });

    const user = os.userInfo().username;

    // Start sshd on a free port and a random subnet; retry elsewhere when an address:port is taken.
    let lastError = '';
    let port = 0;
    let subnet = 0;
    for (let attempt = 0; attempt < 6 && daemons.length === 0; attempt++) {
      subnet = randomInt(2, 250);
      port = await freePort();
      const addresses = Array.from({ length: count }, (_, i) => liveAddress(subnet, i + 1));
      const groups: string[][] = [];
      for (let i = 0; i < addresses.length; i += ADDRESSES_PER_SSHD) groups.push(addresses.slice(i, i + ADDRESSES_PER_SSHD));
      const results = await Promise.all(
        groups.map((group, index) =>
          startSshd({ root, index, addresses: group, port, hostKey, identityFile, wrapper }),
        ),
      );
      const started = results.flatMap((r) => ('daemon' in r ? [r.daemon] : []));
      const failed = results.flatMap((r) => ('error' in r ? [r] : []));
      if (failed.length === 0) {
        daemons.push(...started);
        break;
      }
      await Promise.all(started.map(stopDaemon));
      lastError = failed.map((f) => f.error).join('\n');
      if (!failed.every((f) => f.inUse)) break;
    }
    if (daemons.length === 0) throw new Error(`could not start the fleet's sshd: ${lastError}`);

    const servers: ServerSpec[] = [];
    for (let i = 1; i <= count; i++) {
      servers.push({ name: `s${i}`, host: liveAddress(subnet, i), port, user, type: i % 2 === 1 ? 'app' : 'db', types: [i % 2 === 1 ? 'app' : 'db'] });
    }
    for (let i = 1; i <= unreachable; i++) {
      servers.push({ name: `u${i}`, host: `127.0.${subnet}.${200 + i}`, port, user, type: i % 2 === 1 ? 'app' : 'db', types: [i % 2 === 1 ? 'app' : 'db'] });
    }
    for (let i = 1; i <= hanging; i++) {
      const host = `127.0.${subnet}.${150 + i}`;
      const server = net.createServer((socket) => {
        hangingSockets.add(socket);
        socket.on('error', () => undefined);
        socket.on('close', () => hangingSockets.delete(socket));
      });
      server.unref();
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => resolve());
      });
      hangingServers.push(server);
      servers.push({ name: `h${i}`, host, port, user, type: i % 2 === 1 ? 'app' : 'db', types: [i % 2 === 1 ? 'app' : 'db'] });
    }
    const live = new Map(servers.filter((s) => s.name.startsWith('s')).map((s) => [s.name, path.join(homes, s.host)]));

    // Each live server gets its agent at base, started (probe-only: just the commit file).
    const install = (home: string): Promise<void> =>
      probeOnly ? mkdir(home).then(() => writeFile(path.join(home, 'commit'), `${upstream.commits.base}\n`)) : installAgent(home, upstream.repo, upstream.commits.base);
    await Promise.all([...live.values()].map(install));

    // known_hosts: plain, hashed, wrong key, missing.
    const knownHosts = path.join(root, 'known_hosts');
    const knownHostsHashed = path.join(root, 'known_hosts.hashed');
    const knownHostsWrong = path.join(root, 'known_hosts.wrong');
    const knownHostsMissing = path.join(root, 'known_hosts.missing');
    const lines = (key: string) => servers.map((s) => `[${s.host}]:${s.port} ${key}\n`).join('');
    await writeFile(knownHosts, lines(hostPub));
    await writeFile(knownHostsWrong, lines(wrongPub));
    await writeFile(knownHostsMissing, `[127.0.0.1]:1 ${wrongPub}\n`);
    await copyFile(knownHosts, knownHostsHashed);
    await execa(SSH_KEYGEN, ['-q', '-H', '-f', knownHostsHashed]);
    await unlink(`${knownHostsHashed}.old`).catch(() => undefined);

    const sshConfigYaml = (): Record<string, unknown> => ({
      user,
      port,
      identity_file: identityFile,
      known_hosts: knownHosts,
      connect_timeout: '5s',
      command_timeout: '30s',
    });
    const configObjectOf = (list: ServerSpec[], overrides: Record<string, unknown> = {}): Record<string, unknown> => {
      const commands = agentCommands();
      const base: Record<string, unknown> = {
        source: { repo: upstream.repo, branch: 'master' },
        servers: list.map((s) => ({ name: s.name, host: s.host, type: s.type })),
        ssh: sshConfigYaml(),
        agent: {
          ...commands,
          ...(probeOnly ? { version_command: 'cat ~/commit' } : {}),
          health: { ...commands.health, timeout: '5s', interval: '100ms' },
        },
        restart: ['web'],
        rollback: { enabled: true, continue_after_rollback: false },
      };
      return deepMerge(base, overrides);
    };
    let configCounter = 0;
    let stopped = false;
    const holds = new Set<number[]>();
    const releaseHolds = () => {
      for (const held of holds) {
        for (const pid of held) {
          try {
            process.kill(pid, 'SIGCONT');
          } catch {
            // already gone
          }
        }
      }
      holds.clear();
    };
    const liveNames = (list: ServerSpec[]) => list.filter((s) => live.has(s.name)).map((s) => s.name);
    const reset = async (names: string[]): Promise<void> => {
      releaseHolds();
      // Every process under a listener is a session (a connection's sshd and its commands).
      for (const d of daemons) {
        if (d.child.pid === undefined) continue;
        for (const pid of descendantsOf(d.child.pid)) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
      }
      await Promise.all(
        names.map(async (name) => {
          const dir = live.get(name);
          if (dir === undefined) throw new Error(`the fleet has no live server ${JSON.stringify(name)}`);
          await rm(dir, { recursive: true, force: true, maxRetries: 3 });
          await install(dir);
        }),
      );
    };

    /** The Fleet object for `list` (all servers, or a view's), keeping its configs under `dir`. */
    const build = (list: ServerSpec[], dir: string, own: boolean): Fleet => {
      const server = (name: string): ServerSpec => {
        const found = list.find((s) => s.name === name);
        if (found === undefined) throw new Error(`the fleet has no server ${JSON.stringify(name)}`);
        return found;
      };
      const home = (name: string): string => {
        const found = list.some((s) => s.name === name) ? live.get(name) : undefined;
        if (found === undefined) throw new Error(`the fleet has no live server ${JSON.stringify(name)}`);
        return found;
      };
      const configObject = (overrides: Record<string, unknown> = {}) => configObjectOf(list, overrides);
      return {
        root: dir,
        port,
        servers: list,
        upstream,
        identityFile,
        knownHosts,
        knownHostsHashed,
        knownHostsWrong,
        knownHostsMissing,
        home,
        server,
        sshConfigYaml,
        sshConfig: (overrides = {}) => ({
          user,
          port,
          identityFile,
          passphraseEnv: 'AGENT_UPDATE_SSH_PASSPHRASE',
          agent: false,
          knownHosts,
          connectTimeoutMs: 5000,
          commandTimeoutMs: 30_000,
          keepaliveIntervalMs: 15_000,
          outputLimitBytes: 65_536,
          ...overrides,
        }),
        configObject,
        writeConfig(overrides = {}, file?: string): string {
          configCounter += 1;
          const target = file ?? path.join(dir, 'configs', `config-${configCounter}.yaml`);
          writeFileSync(target, stringify(configObject(overrides)));
          return target;
        },
        async ssh(name, command, opts = {}) {
          const s = server(name);
          const result = await execa(
            'ssh',
            [
              '-F',
              '/dev/null',
              '-i',
              identityFile,
              '-o',
              'IdentitiesOnly=yes',
              '-o',
              `UserKnownHostsFile=${opts.knownHosts ?? knownHosts}`,
              '-o',
              'GlobalKnownHostsFile=/dev/null',
              '-o',
              'StrictHostKeyChecking=yes',
              '-o',
              'BatchMode=yes',
              '-o',
              'ConnectTimeout=5',
              '-o',
              'LogLevel=ERROR',
              '-p',
              String(s.port),
              `${s.user}@${s.host}`,
              command,
            ],
            { reject: false, timeout: opts.timeoutMs ?? 30_000, stdin: 'ignore' },
          );
          return { code: result.exitCode ?? null, stdout: result.stdout, stderr: result.stderr };
        },
        async sh(name, command) {
          const dir = home(name);
          const result = await execa('/bin/sh', ['-c', command], {
            reject: false,
            cwd: dir,
            env: { HOME: dir },
            stdin: 'ignore',
          });
          return { code: result.exitCode ?? null, stdout: result.stdout, stderr: result.stderr };
        },
        async setCommit(name, commit) {
          if (probeOnly) await writeFile(path.join(home(name), 'commit'), `${commit}\n`);
          else await setAgentCommit(home(name), commit, upstream.repo);
        },
        holdNewConnections() {
          const held = daemons.flatMap((d) => (d.child.pid !== undefined && d.child.exitCode === null ? [d.child.pid] : []));
          for (const pid of held) process.kill(pid, 'SIGSTOP');
          holds.add(held);
          return {
            release() {
              if (!holds.delete(held)) return;
              for (const pid of held) {
                try {
                  process.kill(pid, 'SIGCONT');
                } catch {
                  // already gone
                }
              }
            },
          };
        },
        reset: (names) => reset(names ?? liveNames(list)),
        view(size, viewRoot) {
          const pick = (prefix: string, n: number) => list.filter((s) => new RegExp(`^${prefix}\\d+$`).test(s.name)).slice(0, n);
          const want = { s: size.servers ?? 3, u: size.unreachable ?? 0, h: size.hanging ?? 0 };
          const chosen = [...pick('s', want.s), ...pick('u', want.u), ...pick('h', want.h)];
          for (const [prefix, n] of Object.entries(want)) {
            if (pick(prefix, n).length < n) throw new Error(`the fleet has fewer than ${n} ${prefix}.. servers`);
          }
          mkdirSync(path.join(viewRoot, 'configs'), { recursive: true });
          return build(chosen, viewRoot, false);
        },
        sshdLog: () => daemons.map((d) => (existsSync(d.logFile) ? readFileSync(d.logFile, 'utf8') : '')).join(''),
        async stop() {
          if (!own || stopped) return;
          stopped = true;
          releaseHolds(); // a stopped listener would not see its SIGTERM until continued
          await Promise.all(daemons.map(stopDaemon));
          for (const socket of hangingSockets) socket.destroy();
          await Promise.all(hangingServers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
          await rm(root, { recursive: true, force: true, maxRetries: 3 });
          pendingRoots.delete(root);
        },
      };
    };
    return build(servers, root, true);
  } catch (error) {
    await Promise.all(daemons.map(stopDaemon));
    for (const socket of hangingSockets) socket.destroy();
    for (const s of hangingServers) s.close();
    await rm(root, { recursive: true, force: true }).catch(() => undefined);
    pendingRoots.delete(root);
    throw error;
  }
}

/**
 * Upstream options for a fleet whose agents know their version (agent.semver_command:
 * SEMVER_COMMAND of src/sim/agent.ts): releases 1.0.0 → 1.1.0 → 1.2.0 → 1.3.0 → 2.0.0, each the
 * child of the one before, from base (whose VERSION, `base`, is not a version).
 */
export const VERSIONED: UpstreamOptions = { versions: ['1.0.0', '1.1.0', '1.2.0', '1.3.0', '2.0.0'] };

/** Put each named server's agent at the release of that version (a fleet started with VERSIONED). */
export async function atVersions(fleet: Fleet, versions: Record<string, string>): Promise<void> {
  for (const [name, v] of Object.entries(versions)) {
    const commit = fleet.upstream.versions[v];
    if (commit === undefined) throw new Error(`the fleet's upstream has no release ${v} (start it with upstream: VERSIONED)`);
    await fleet.setCommit(name, commit);
  }
}
