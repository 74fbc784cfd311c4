/**
 * Local helpers for the transport tests: temp folders, user keys made by ssh-keygen, a minimal
 * real OpenSSH sshd, an ssh-agent. (The shared fleet helper lives in test/fleet/.)
 */
import { strict as assert } from 'node:assert';
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ServerSpec, SshConfig } from '../../src/config/types.js';
import { TransportError } from '../../src/ssh/transport.js';
import { makeTempDir } from '../helpers/tmp.js';

export const execFileP = promisify(execFile);
export const SSHD = '/usr/sbin/sshd';

export function tempDir(prefix = 'au-ssh-'): { dir: string; remove(): void } {
  const dir = makeTempDir(prefix);
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface KeyPair {
  privateFile: string;
  publicLine: string;
}

/** A user key pair made by ssh-keygen (OpenSSH format), optionally passphrase-protected. */
export async function makeUserKey(dir: string, name = 'id_ed25519', passphrase = '', type = 'ed25519'): Promise<KeyPair> {
  const file = join(dir, name);
  await execFileP('ssh-keygen', ['-q', '-t', type, '-N', passphrase, '-C', `test-${name}`, '-f', file]);
  return { privateFile: file, publicLine: readFileSync(`${file}.pub`, 'utf8').trim() };
}

export function server(host: string, port: number, user = userInfo().username): ServerSpec {
  return { name: `srv-${port}`, host, port, user, type: 'app', types: ['app'] };
}

export function sshConfig(overrides: Partial<SshConfig> & Pick<SshConfig, 'knownHosts'>): SshConfig {
  return {
    user: userInfo().username,
    port: 22,
    identityFile: null,
    passphraseEnv: 'AGENT_UPDATE_TEST_PASSPHRASE',
    agent: false,
    connectTimeoutMs: 5000,
    commandTimeoutMs: 20_000,
    keepaliveIntervalMs: 1000,
    outputLimitBytes: 64 * 1024,
    ...overrides,
  };
}

/** A free TCP port on 127.0.0.1: bind port 0, read it, close. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export interface Sshd {
  host: string;
  port: number;
  /** `[host]:port ssh-ed25519 AAAA…` */
  hostKeyLine: string;
  dir: string;
  log(): string;
  stop(): Promise<void>;
}

/** Why a real sshd cannot be used here, or null when it can. */
export function sshdUnavailable(): string | null {
  if (!existsSync(SSHD)) return `${SSHD} is not installed`;
  return null;
}

/**
 * Start a minimal OpenSSH sshd on 127.0.0.1 accepting `authorizedKeys` for the current user.
 * `extra` sshd_config lines come first, so they win over the defaults below (sshd keeps the first
 * value of a keyword): e.g. `LogLevel DEBUG1`, `MaxStartups 3`, `MaxAuthTries 1`.
 */
export async function startSshd(dir: string, authorizedKeys: string[], extra: string[] = []): Promise<Sshd> {
  const host = '127.0.0.1';
  const hostKey = join(dir, 'ssh_host_ed25519_key');
  if (!existsSync(hostKey)) await execFileP('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
  const authFile = join(dir, 'authorized_keys');
  writeFileSync(authFile, authorizedKeys.join('\n') + '\n', { mode: 0o600 });
  if (process.getuid?.() === 0) mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });

  for (let attempt = 0; ; attempt++) {
    const port = await freePort(host);
    const cfgFile = join(dir, 'sshd_config');
    writeFileSync(
      cfgFile,
      [
        ...extra,
        `Port ${port}`,
        `ListenAddress ${host}`,
        `HostKey ${hostKey}`,
        `AuthorizedKeysFile ${authFile}`,
        'StrictModes no',
        'UsePAM no',
        `PidFile ${join(dir, 'sshd.pid')}`,
        'PermitRootLogin yes',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'LogLevel VERBOSE',
        // As in the fleet: with SHLVL set, the `bash -c` sshd runs reads no rc file (a machine's
        // ~/.bashrc, pyenv's rehash and its lock, would otherwise run for every command).
        'SetEnv SHLVL=1',
        '',
      ].join('\n'),
    );
    const child: ChildProcess = spawn(SSHD, ['-D', '-e', '-f', cfgFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    child.stderr?.on('data', (d: Buffer) => (log += d.toString()));
    const ready = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 10_000);
      const check = () => {
        if (/Server listening on/.test(log)) {
          clearTimeout(timer);
          resolve(true);
        }
      };
      child.stderr?.on('data', check);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve(false);
      });
    });
    if (!ready) {
      child.kill('SIGKILL');
      if (attempt < 2 && /Address already in use/.test(log)) continue;
      throw new Error(`sshd did not start:\n${log}`);
    }
    const pub = readFileSync(`${hostKey}.pub`, 'utf8').trim().split(/\s+/);
    return {
      host,
      port,
      hostKeyLine: `[${host}]:${port} ${pub[0]} ${pub[1]}`,
      dir,
      log: () => log,
      stop: () =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGTERM');
        }),
    };
  }
}

export interface Agent {
  sock: string;
  stop(): Promise<void>;
}

/** Start `ssh-agent -a SOCK -D` and add `keyFile` to it; null when ssh-agent is not installed. */
export async function startAgent(dir: string, keyFile: string): Promise<Agent | null> {
  try {
    await execFileP('sh', ['-c', 'command -v ssh-agent && command -v ssh-add']);
  } catch {
    return null;
  }
  const sock = join(dir, 'agent.sock');
  const child = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' });
  // The socket file appears at bind(), before the agent listens: wait until it answers a connect.
  const answers = () =>
    new Promise<boolean>((resolve) => {
      const c = connect(sock);
      c.once('connect', () => (c.destroy(), resolve(true)));
      c.once('error', () => resolve(false));
    });
  try {
    for (let i = 0; i < 200 && !(existsSync(sock) && (await answers())); i++) await new Promise((r) => setTimeout(r, 25));
    await execFileP('ssh-add', [keyFile], { env: { ...process.env, SSH_AUTH_SOCK: sock } });
  } catch (e) {
    // an agent left running would keep the test file's process alive until its timeout
    child.kill('SIGKILL');
    throw e;
  }
  return {
    sock,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/** Hash every host name of a known_hosts file in place with `ssh-keygen -H`. */
export async function hashKnownHosts(file: string): Promise<void> {
  await execFileP('ssh-keygen', ['-q', '-H', '-f', file]);
  rmSync(`${file}.old`, { force: true });
}

let knownHostsFiles = 0;
/** A new known_hosts file in `dir` holding `lines`. */
export function writeKnownHosts(dir: string, ...lines: string[]): string {
  const file = join(dir, `known_hosts.${++knownHostsFiles}`);
  writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

/** The TransportError `p` rejects with; fails the test if it resolves or rejects with something else. */
export async function rejection(p: Promise<unknown>): Promise<TransportError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof TransportError, `expected a TransportError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the promise to reject');
}
