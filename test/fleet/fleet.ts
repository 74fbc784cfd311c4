/**
 * A test fleet: one real OpenSSH sshd, listening on several loopback addresses of a random
 * 127.0.X.0/24 subnet, each address being its own "server" with its own home folder and its own
 * simulated agent (src/sim/agent.ts) checked out from a local upstream (src/sim/upstream.ts).
 *
 *   servers  s1..sN  at 127.0.X.1..N      type `app` for odd numbers, `db` for even ones
 *            u1..    at 127.0.X.200+i     unreachable: nothing listens there (connection refused)
 *            h1..    at 127.0.X.150+i     hanging: accepts TCP but never says a word (timeouts)
 *
 * All servers share one port (the sshd's, picked free at start) and the current user (root in
 * CI). A ForceCommand wrapper sets HOME to `<root>/homes/<address>` from $SSH_CONNECTION and
 * runs the requested command with `/bin/sh -c`, so `~` in commands is that server's home.
 *
 *     const fleet = await startFleet({ servers: 3 });
 *     after(() => fleet.stop());
 *     const file = fleet.writeConfig({ source: { branch: 'good2' } });
 *     // ... run agent-update with -c file, then:
 *     assert.equal(currentCommit(fleet.home('s1')), fleet.upstream.commits.good2);
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
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

export const SSHD = '/usr/sbin/sshd';
const SSH_KEYGEN = 'ssh-keygen';

export interface FleetOptions {
  /** servers with a live sshd and agent (s1..sN); default 3, at most 149 */
  servers?: number;
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
  /** the same as the normalised SshConfig (src/config/types.ts), for transport tests */
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
  /** the sshd's log (stderr, LogLevel from $FLEET_SSHD_LOGLEVEL, default ERROR) */
  sshdLog(): string;
  /** kills sshd and its sessions, closes hanging listeners, removes root; idempotent */
  stop(): Promise<void>;
}

/** True when this machine can run a fleet. */
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

/** sshd processes alive in this process, killed on exit if a test forgot stop(). */
const liveDaemons = new Set<number>();
let exitHookInstalled = false;
function trackDaemon(pid: number): void {
  liveDaemons.add(pid);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const daemon of liveDaemons) killDaemonTree(daemon, 'SIGKILL');
  });
}

/** Children of `pid` (the sshd listener's per-connection processes), from /proc. */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === pid) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function killDaemonTree(pid: number, signal: NodeJS.Signals): void {
  const children = childrenOf(pid);
  for (const target of [pid, ...children]) {
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

/** Connects and reads the SSH banner, so the probe is a clean (if short) client to sshd. */
function sshBanner(host: string, port: number, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    let received = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      if (received.includes('\n')) done(received.startsWith('SSH-2.0-'));
    });
    socket.once('error', () => done(false));
    socket.once('close', () => done(false));
  });
}

interface Daemon {
  child: ChildProcess;
  exited: Promise<void>;
  port: number;
  subnet: number;
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
if [ -n "\${SSH_ORIGINAL_COMMAND:-}" ]; then
  exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"
fi
exec /bin/sh -i
`;

export async function startFleet(options: FleetOptions = {}): Promise<Fleet> {
  const count = options.servers ?? 3;
  const unreachable = options.unreachable ?? 0;
  const hanging = options.hanging ?? 0;
  if (!Number.isInteger(count) || count < 1 || count > 149) throw new Error(`servers must be 1..149, got ${count}`);
  if (unreachable < 0 || unreachable > 50 || hanging < 0 || hanging > 49) throw new Error('too many unreachable/hanging servers');
  if (!existsSync(SSHD)) throw new Error(`${SSHD} is not installed`);

  const root = await mkdtemp(path.join(os.tmpdir(), 'agent-update-fleet-'));
  if (/\s/.test(root)) throw new Error(`temp folder has whitespace: ${root}`);
  let daemon: Daemon | null = null;
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
    const logFile = path.join(root, 'sshd.log');
    const pidFile = path.join(root, 'sshd.pid');
    const configFile = path.join(root, 'sshd_config');
    const logLevel = process.env.FLEET_SSHD_LOGLEVEL ?? 'ERROR';

    // Start sshd on a free port and random subnet; retry when an address:port is taken.
    let lastError = '';
    for (let attempt = 0; attempt < 6 && daemon === null; attempt++) {
      const subnet = randomInt(2, 250);
      const port = await freePort();
      const listen = Array.from({ length: count }, (_, i) => `ListenAddress 127.0.${subnet}.${i + 1}:${port}`);
      await writeFile(
        configFile,
        [
          ...listen,
          `HostKey ${hostKey}`,
          `PidFile ${pidFile}`,
          `AuthorizedKeysFile ${identityFile}.pub`,
          `ForceCommand ${wrapper}`,
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
          '',
        ].join('\n'),
      );
      await rm(pidFile, { force: true });
      const logFd = openSync(logFile, 'w');
      const child = spawn(SSHD, ['-D', '-e', '-f', configFile], { stdio: ['ignore', 'ignore', logFd], detached: true });
      closeSync(logFd);
      child.unref();
      if (child.pid === undefined) throw new Error(`could not start ${SSHD}`);
      trackDaemon(child.pid);
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
      if (ready && !exited && !/Bind to port|Cannot bind/i.test(log)) {
        const reachable = await Promise.all(
          Array.from({ length: count }, (_, i) => sshBanner(`127.0.${subnet}.${i + 1}`, port)),
        );
        if (reachable.every(Boolean)) {
          daemon = { child, exited: exitedPromise, port, subnet };
          break;
        }
        lastError = `sshd started but not every address accepts connections\n${log}`;
      } else {
        lastError = exited
          ? `sshd exited (code ${child.exitCode ?? child.signalCode})\n${log}`
          : ready
            ? `sshd could not bind every address\n${log}`
            : `sshd did not start within 15s\n${log}`;
      }
      if (child.pid !== undefined) killDaemonTree(child.pid, 'SIGKILL');
      if (!/Address already in use|Bind to port|Cannot bind/i.test(lastError)) break;
    }
    if (daemon === null) throw new Error(`could not start the fleet's sshd: ${lastError}`);
    const { port, subnet } = daemon;

    const servers: ServerSpec[] = [];
    for (let i = 1; i <= count; i++) {
      servers.push({ name: `s${i}`, host: `127.0.${subnet}.${i}`, port, user, type: i % 2 === 1 ? 'app' : 'db' });
    }
    for (let i = 1; i <= unreachable; i++) {
      servers.push({ name: `u${i}`, host: `127.0.${subnet}.${200 + i}`, port, user, type: i % 2 === 1 ? 'app' : 'db' });
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
      servers.push({ name: `h${i}`, host, port, user, type: i % 2 === 1 ? 'app' : 'db' });
    }
    const live = new Map(servers.filter((s) => s.name.startsWith('s')).map((s) => [s.name, path.join(homes, s.host)]));

    // Each live server gets its agent at base, started.
    await Promise.all([...live.values()].map((home) => installAgent(home, upstream.repo, upstream.commits.base)));

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

    const server = (name: string): ServerSpec => {
      const found = servers.find((s) => s.name === name);
      if (found === undefined) throw new Error(`the fleet has no server ${JSON.stringify(name)}`);
      return found;
    };
    const home = (name: string): string => {
      const dir = live.get(name);
      if (dir === undefined) throw new Error(`the fleet has no live server ${JSON.stringify(name)}`);
      return dir;
    };
    const sshConfigYaml = (): Record<string, unknown> => ({
      user,
      port,
      identity_file: identityFile,
      known_hosts: knownHosts,
      connect_timeout: '5s',
      command_timeout: '30s',
    });
    const configObject = (overrides: Record<string, unknown> = {}): Record<string, unknown> => {
      const commands = agentCommands();
      const base: Record<string, unknown> = {
        source: { repo: upstream.repo, branch: 'master' },
        servers: servers.map((s) => ({ name: s.name, host: s.host, type: s.type })),
        ssh: sshConfigYaml(),
        agent: { ...commands, health: { ...commands.health, timeout: '5s', interval: '100ms' } },
        restart: ['web'],
        rollback: { enabled: true, continue_after_rollback: false },
      };
      return deepMerge(base, overrides);
    };
    let configCounter = 0;
    const fleetDaemon = daemon;
    let stopped = false;

    const fleet: Fleet = {
      root,
      port,
      servers,
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
        keepaliveIntervalMs: 0,
        outputLimitBytes: 1024 * 1024,
        ...overrides,
      }),
      configObject,
      writeConfig(overrides = {}, file?: string): string {
        configCounter += 1;
        const target = file ?? path.join(root, 'configs', `config-${configCounter}.yaml`);
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
        await setAgentCommit(home(name), commit, upstream.repo);
      },
      sshdLog: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
      async stop() {
        if (stopped) return;
        stopped = true;
        const pid = fleetDaemon.child.pid;
        if (pid !== undefined) {
          // the listener and its per-connection children (each in its own session)
          killDaemonTree(pid, 'SIGTERM');
          const timer = setTimeout(() => killDaemonTree(pid, 'SIGKILL'), 2000);
          await fleetDaemon.exited;
          clearTimeout(timer);
        }
        for (const socket of hangingSockets) socket.destroy();
        await Promise.all(hangingServers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
        await rm(root, { recursive: true, force: true, maxRetries: 3 });
      },
    };
    return fleet;
  } catch (error) {
    if (daemon !== null && daemon.child.pid !== undefined) killDaemonTree(daemon.child.pid, 'SIGKILL');
    for (const socket of hangingSockets) socket.destroy();
    for (const s of hangingServers) s.close();
    await rm(root, { recursive: true, force: true }).catch(() => undefined);
    throw error;
  }
}
