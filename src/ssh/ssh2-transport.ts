/**
 * The real Transport, over the `ssh2` library. Host keys are always verified against the
 * configured known_hosts file before authentication; nothing runs on a server whose key is
 * unknown, changed or revoked.
 */
import { readFileSync } from 'node:fs';
import type { Client, ClientChannel, ConnectConfig, ParsedKey } from 'ssh2';
import type { ServerSpec, SshConfig } from '../config/types.js';
import { formatDuration } from '../util/duration.js';
import { TransportError } from './transport.js';
import { splitRunOutput, supervised } from './remote-run.js';
import type { ExecOptions, ExecResult, Session, Transport } from './transport.js';
import { blobKeyType, knownKeyTypes, readKnownHosts, verifyHostKey } from './known-hosts.js';
import type { KnownHostsFile } from './known-hosts.js';

type Ssh2 = typeof import('ssh2');
let ssh2Module: Promise<Ssh2> | null = null;
/**
 * ssh2 is loaded on the first connection, not at start-up: the commands that never connect
 * (status, pause, a refused second start) answer sooner.
 */
function loadSsh2(): Promise<Ssh2> {
  // a CommonJS module: its exports are the ESM namespace's default
  ssh2Module ??= import('ssh2').then((m) => (m as unknown as { default: Ssh2 }).default);
  return ssh2Module;
}

/** Host key algorithms ssh2 supports, in its default preference order, by key type. */
const HOST_KEY_ALGOS: Record<string, string[]> = {
  'ssh-ed25519': ['ssh-ed25519'],
  'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'],
  'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'],
  'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
};
const DEFAULT_HOST_KEY_ORDER = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
];

/**
 * Host key algorithms to offer, those of the key types already known for the host first (as
 * OpenSSH does), so a server with several host keys presents the one we can check.
 */
export function hostKeyAlgorithms(knownTypes: readonly string[]): string[] {
  const first: string[] = [];
  for (const t of knownTypes) for (const a of HOST_KEY_ALGOS[t] ?? []) if (!first.includes(a)) first.push(a);
  return [...first, ...DEFAULT_HOST_KEY_ORDER.filter((a) => !first.includes(a))];
}

/** Keeps the last `limit` bytes written to it. */
export class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  private total = 0;
  constructor(private readonly limit: number) {}

  push(chunk: Buffer): void {
    this.total += chunk.length;
    if (this.limit <= 0) return;
    this.chunks.push(chunk);
    this.size += chunk.length;
    if (this.size > this.limit * 2) this.compact();
  }

  private compact(): void {
    const all = Buffer.concat(this.chunks);
    const tail = Buffer.from(all.subarray(Math.max(0, all.length - this.limit)));
    this.chunks = [tail];
    this.size = tail.length;
  }

  toString(): string {
    if (this.size > this.limit) this.compact();
    let buf = Buffer.concat(this.chunks);
    if (this.total > this.limit) {
      // The tail may start inside a multi-byte character: drop its orphaned continuation bytes.
      let skip = 0;
      while (skip < 3 && skip < buf.length && ((buf[skip] ?? 0) & 0xc0) === 0x80) skip++;
      buf = buf.subarray(skip);
    }
    return buf.toString('utf8');
  }
}

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function errorLevel(err: unknown): string | undefined {
  const level = (err as { level?: unknown } | null)?.level;
  return typeof level === 'string' ? level : undefined;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ECONNRESET',
  'EPIPE',
  'EADDRNOTAVAIL',
  'ECONNABORTED',
]);

interface Target {
  host: string;
  port: number;
  user: string;
  /** `user@host:port`, for messages */
  label: string;
}

/**
 * Identity files that parsed, with the passphrase they parsed with. Parsing an encrypted key
 * costs about 0.3 s of CPU (its bcrypt KDF), and every connection (and each preflight) loads the
 * identity again; the same bytes with the same passphrase need not be checked twice. Kept in
 * memory only, like the passphrase itself in the environment.
 */
const parsedIdentities = new Map<string, { key: Buffer; passphrase: string | undefined }>();

/** Load the identity file, turning every problem into a TransportError without key material. */
function loadIdentity(utils: Ssh2['utils'], sshCfg: SshConfig): { key: Buffer; passphrase: string | undefined } | null {
  if (!sshCfg.identityFile) return null;
  const file = sshCfg.identityFile;
  let key: Buffer;
  try {
    key = readFileSync(file);
  } catch (err) {
    const code = errorCode(err);
    const why = code === 'ENOENT' ? 'it does not exist' : code === 'EACCES' ? 'permission denied' : errorMessage(err);
    throw new TransportError('config', `cannot read identity file ${file}: ${why}`);
  }
  const envName = sshCfg.passphraseEnv;
  const fromEnv = envName ? process.env[envName] : undefined;
  const passphrase = fromEnv === undefined || fromEnv === '' ? undefined : fromEnv;
  const known = parsedIdentities.get(file);
  if (known && known.passphrase === passphrase && known.key.equals(key)) return { key, passphrase };
  const parsed = utils.parseKey(key, passphrase);
  if (parsed instanceof Error) {
    const msg = parsed.message;
    if (/no passphrase given/i.test(msg)) {
      throw new TransportError(
        'auth',
        `identity file ${file} is encrypted and no passphrase was given: put the passphrase in the environment ` +
          `variable ${envName || '(ssh.passphrase_env is not set)'}, or load the key into ssh-agent`,
      );
    }
    if (passphrase !== undefined && /passphrase|decrypt|integrity/i.test(msg)) {
      throw new TransportError(
        'auth',
        `cannot decrypt identity file ${file} with the passphrase from the environment variable ${envName}: ` +
          `wrong passphrase?`,
      );
    }
    // ssh2's parse messages carry no key material; strip the passphrase anyway, to be sure.
    const safe = passphrase ? msg.split(passphrase).join('***') : msg;
    throw new TransportError('config', `identity file ${file} is not a usable private key (${safe})`);
  }
  const first = (Array.isArray(parsed) ? parsed[0] : parsed) as ParsedKey | undefined;
  if (!first || !first.isPrivateKey()) {
    throw new TransportError('config', `identity file ${file} does not contain a private key (is it the .pub file?)`);
  }
  parsedIdentities.set(file, { key, passphrase });
  return { key, passphrase };
}

/** An open connection to one server. */
export class Ssh2Session implements Session {
  /** why the connection is gone; null while it is up */
  private lost: string | null = null;
  /** the last error ssh2 reported on this connection (usually just before `close`) */
  private lastError: string | null = null;
  private closedByUs = false;
  private readonly pending = new Set<(reason: string) => void>();

  constructor(
    private readonly client: Client,
    private readonly target: Target,
    private readonly sshCfg: SshConfig,
    private readonly onClose: (s: Ssh2Session) => void,
  ) {
    client.on('error', (err: unknown) => {
      // After `ready`, an error usually precedes `close`: keep it as the reason.
      this.lastError = describeDrop(err);
    });
    client.on('close', () => {
      const reason = this.closedByUs ? 'session closed' : (this.lastError ?? 'the server closed the connection');
      this.lost = reason;
      for (const fail of [...this.pending]) fail(reason);
      this.pending.clear();
      this.onClose(this);
    });
  }

  get connected(): boolean {
    return this.lost === null && !this.closedByUs;
  }

  exec(command: string, options: ExecOptions = {}): Promise<ExecResult> {
    const started = Date.now();
    const limit = this.sshCfg.outputLimitBytes;
    const timeoutMs = options.timeoutMs ?? this.sshCfg.commandTimeoutMs;
    const result = (
      code: number | null,
      error: string | null,
      timedOut = false,
      out?: { stdout: TailBuffer; stderr: TailBuffer },
    ): ExecResult => {
      const run = splitRunOutput(out ? out.stderr.toString() : '');
      // The supervisor on the server killed it at its timeout (see remote-run.ts).
      if (run.timedOut && !timedOut) {
        code = null;
        timedOut = true;
        error = `timed out after ${formatDuration(timeoutMs)}; killed on the server, with everything it started`;
      }
      return {
        code,
        stdout: out ? out.stdout.toString() : '',
        stderr: run.stderr,
        timedOut,
        error,
        durationMs: Date.now() - started,
      };
    };

    if (this.closedByUs) return Promise.resolve(result(null, `not connected: the session to ${this.target.label} was closed`));
    if (this.lost !== null) return Promise.resolve(result(null, `not connected: connection lost: ${this.lost}`));
    if (options.signal?.aborted) return Promise.resolve(result(null, 'aborted'));

    return new Promise<ExecResult>((resolve) => {
      const stdout = new TailBuffer(limit);
      const stderr = new TailBuffer(limit);
      const out = { stdout, stderr };
      let channel: ClientChannel | null = null;
      let exitCode: number | null = null;
      let exitSignal: string | null = null;
      let done = false;
      let timer: NodeJS.Timeout | undefined;

      const finish = (r: ExecResult) => {
        if (done) return;
        done = true;
        if (timer) clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        this.pending.delete(onLost);
        resolve(r);
      };
      const killChannel = () => {
        if (!channel) return;
        try {
          sendSignal(channel, 'KILL');
        } catch {
          /* the server may not support signals; closing is what matters */
        }
        try {
          channel.close();
        } catch {
          /* already closed */
        }
      };
      const onLost = (reason: string) => {
        finish(result(null, this.closedByUs ? 'session closed' : `connection lost: ${reason}`, false, out));
      };
      const onAbort = () => {
        killChannel();
        finish(result(null, 'aborted', false, out));
      };
      this.pending.add(onLost);
      options.signal?.addEventListener('abort', onAbort, { once: true });
      if (timeoutMs > 0) {
        // The supervisor kills it on the server at timeoutMs; this is for a server that does not
        // answer at all. Closing the channel then makes the supervisor kill it too (hang-up).
        timer = setTimeout(() => {
          killChannel();
          finish(result(null, `timed out after ${formatDuration(timeoutMs)} with no answer from the server; the channel was closed, which kills the command there`, true, out));
        }, timeoutMs + SUPERVISOR_GRACE_MS);
      }

      try {
        this.client.exec(supervised(command, timeoutMs), (err, ch) => {
          if (err) {
            finish(result(null, `could not start the command: ${err.message}`, false, out));
            return;
          }
          channel = ch;
          if (done) {
            // timed out or aborted while the channel was opening
            killChannel();
            return;
          }
          ch.on('data', (d: Buffer) => stdout.push(d));
          ch.stderr.on('data', (d: Buffer) => stderr.push(d));
          ch.on('exit', (code: number | null, signal?: string) => {
            if (typeof code === 'number') exitCode = code;
            else if (signal) exitSignal = signal.replace(/^SIG/, '');
          });
          ch.on('close', () => {
            if (exitCode !== null) finish(result(exitCode, null, false, out));
            else if (exitSignal !== null) finish(result(null, `killed by signal ${exitSignal}`, false, out));
            else if (this.lost !== null) onLost(this.lost);
            else finish(result(null, 'the channel closed without an exit status', false, out));
          });
          // The command's own stdin is /dev/null; the channel's stays open while it runs: its
          // end tells the supervisor we are gone (an interrupt, our timeout, a dead connection).
        });
      } catch (err) {
        finish(result(null, `not connected: ${errorMessage(err)}`, false, out));
      }
    });
  }

  close(): void {
    if (this.closedByUs) return;
    this.closedByUs = true;
    this.client.end();
    // end() is polite; make sure the socket goes even if the server does not answer.
    setTimeout(() => this.client.destroy(), 2000).unref();
  }
}

/**
 * Send a `signal` channel request. ssh2's public `channel.signal()` silently does nothing once we
 * have sent EOF (which we do right after starting every command, so it cannot wait on stdin), yet
 * the protocol allows requests after EOF, and OpenSSH's sshd (>= 7.9) then kills the command's
 * process group. So go through the protocol object when it is there. (sshd refuses signals for
 * sessions under a ForceCommand; closing the channel then leaves the remote command running.)
 */
function sendSignal(ch: ClientChannel, name: string): void {
  const internal = ch as unknown as {
    outgoing?: { id?: unknown; state?: unknown };
    _client?: { _protocol?: { signal?: (id: number, signal: string) => void } };
  };
  const proto = internal._client?._protocol;
  const id = internal.outgoing?.id;
  const state = internal.outgoing?.state;
  if (proto && typeof proto.signal === 'function' && typeof id === 'number' && (state === 'open' || state === 'eof')) {
    proto.signal(id, name);
  } else {
    ch.signal(name);
  }
}

/** How long after its timeout a command's supervisor has to report it killed before we stop waiting. */
const SUPERVISOR_GRACE_MS = 5_000;

function describeDrop(err: unknown): string {
  const code = errorCode(err);
  const msg = errorMessage(err);
  if (/keepalive/i.test(msg)) return 'no answer to keepalives (the server or the network is down)';
  return code && !msg.includes(code) ? `${msg} (${code})` : msg;
}

/**
 * The half of connecting that is the same for every server: known_hosts, the identity file (and
 * its passphrase), some way to authenticate. A problem here is ours, not the server's.
 */
function localSetup(ssh2: Ssh2, sshCfg: SshConfig): { known: KnownHostsFile; identity: ReturnType<typeof loadIdentity>; agentSock: string | undefined } {
  let known: KnownHostsFile;
  try {
    known = readKnownHosts(sshCfg.knownHosts);
  } catch (err) {
    throw new TransportError('config', `cannot read known_hosts file ${sshCfg.knownHosts}: ${errorMessage(err)}`);
  }
  const identity = loadIdentity(ssh2.utils, sshCfg);
  const agentSock = sshCfg.agent ? process.env.SSH_AUTH_SOCK || undefined : undefined;
  if (!identity && !agentSock) {
    throw new TransportError(
      'config',
      sshCfg.agent
        ? 'no way to authenticate: no identity file is configured and SSH_AUTH_SOCK is not set'
        : 'no way to authenticate: no identity file is configured and ssh-agent is disabled',
    );
  }
  return { known, identity, agentSock };
}

export class Ssh2Transport implements Transport {
  private readonly sessions = new Set<Ssh2Session>();

  async preflight(sshCfg: SshConfig): Promise<void> {
    localSetup(await loadSsh2(), sshCfg);
  }

  async connect(server: ServerSpec, sshCfg: SshConfig, signal?: AbortSignal): Promise<Session> {
    const ssh2 = await loadSsh2();
    const target: Target = {
      host: server.host,
      port: server.port || sshCfg.port || 22,
      user: server.user || sshCfg.user,
      label: '',
    };
    target.label = `${target.user}@${target.host}:${target.port}`;
    try {
      return await this.open(ssh2, target, sshCfg, signal);
    } catch (err) {
      throw err instanceof TransportError ? err : new TransportError('config', errorMessage(err));
    }
  }

  private open(ssh2: Ssh2, target: Target, sshCfg: SshConfig, signal?: AbortSignal): Promise<Session> {
    if (signal?.aborted) throw new TransportError('network', `connecting to ${target.label} was aborted`);

    const { known, identity, agentSock } = localSetup(ssh2, sshCfg);

    const client = new ssh2.Client();
    let hostKeyFailure: TransportError | null = null;
    const notes: string[] = [];

    const cfg: ConnectConfig = {
      host: target.host,
      port: target.port,
      username: target.user,
      readyTimeout: sshCfg.connectTimeoutMs,
      keepaliveInterval: sshCfg.keepaliveIntervalMs,
      keepaliveCountMax: 3,
      algorithms: { serverHostKey: hostKeyAlgorithms(knownKeyTypes(known.entries, target.host, target.port)) as never },
      hostVerifier: (key: Buffer, verify: (valid: boolean) => void) => {
        const type = blobKeyType(key) ?? 'unknown';
        const verdict = verifyHostKey(known.entries, target.host, target.port, type, key, known.file);
        if (verdict.ok) {
          verify(true);
          return;
        }
        let message = verdict.message;
        if (verdict.kind === 'unknown' && !known.exists) message += ` (${known.file} does not exist yet)`;
        hostKeyFailure = new TransportError(verdict.kind === 'unknown' ? 'host-key-unknown' : 'host-key-mismatch', message);
        verify(false);
      },
    };
    if (identity) {
      cfg.privateKey = identity.key;
      if (identity.passphrase !== undefined) cfg.passphrase = identity.passphrase;
    }
    if (agentSock) cfg.agent = agentSock;

    return new Promise<Session>((resolve, reject) => {
      let settled = false;
      const cleanup = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const fail = (err: TransportError) => {
        if (settled) return;
        settled = true;
        cleanup();
        client.removeAllListeners('ready');
        client.destroy();
        reject(err);
      };
      const timer = setTimeout(() => {
        fail(new TransportError('timeout', `connecting to ${target.label} timed out after ${formatDuration(sshCfg.connectTimeoutMs)}`));
      }, sshCfg.connectTimeoutMs);
      const onAbort = () => fail(new TransportError('network', `connecting to ${target.label} was aborted`));
      signal?.addEventListener('abort', onAbort, { once: true });

      const mapError = (err: unknown): TransportError => {
        if (hostKeyFailure) return hostKeyFailure;
        const level = errorLevel(err);
        const code = errorCode(err);
        const msg = errorMessage(err);
        if (level === 'client-timeout' || code === 'ETIMEDOUT') {
          return new TransportError('timeout', `connecting to ${target.label} timed out after ${formatDuration(sshCfg.connectTimeoutMs)}`);
        }
        if (level === 'client-authentication' || /authentication methods failed/i.test(msg)) {
          const tried = [
            identity ? `public key from ${sshCfg.identityFile}` : null,
            agentSock ? `ssh-agent (${agentSock})` : null,
          ]
            .filter(Boolean)
            .join(' and ');
          const extra = notes.length ? ` (${notes.join('; ')})` : '';
          return new TransportError(
            'auth',
            `authentication to ${target.label} failed: no key was accepted (tried ${tried || 'nothing'})${extra}. ` +
              `Check that the key is in ~${target.user}/.ssh/authorized_keys on the server.`,
          );
        }
        if (code && NETWORK_CODES.has(code)) {
          const what =
            code === 'ECONNREFUSED'
              ? 'connection refused (is sshd running, is the port right?)'
              : code === 'ENOTFOUND' || code === 'EAI_AGAIN'
                ? 'host name not found'
                : code === 'EHOSTUNREACH' || code === 'ENETUNREACH'
                  ? 'host unreachable'
                  : msg;
          return new TransportError('network', `cannot connect to ${target.label}: ${what} (${code})`);
        }
        return new TransportError('network', `cannot connect to ${target.label}: ${msg}`);
      };

      client.on('error', (err: unknown) => {
        if (settled) return;
        const level = errorLevel(err);
        const msg = errorMessage(err);
        // ssh2 reports these and goes on with the next authentication method.
        if (level === 'agent') {
          notes.push(`ssh-agent: ${msg}`);
          return;
        }
        if (level === 'client-authentication' && !/authentication methods failed/i.test(msg)) {
          notes.push(msg);
          return;
        }
        fail(mapError(err));
      });
      client.on('close', () => {
        if (settled) return;
        fail(hostKeyFailure ?? new TransportError('network', `${target.label} closed the connection before it was ready`));
      });
      client.once('ready', () => {
        if (settled) return;
        settled = true;
        cleanup();
        const session = new Ssh2Session(client, target, sshCfg, (s) => this.sessions.delete(s));
        this.sessions.add(session);
        resolve(session);
      });

      try {
        client.connect(cfg);
      } catch (err) {
        fail(new TransportError('config', `cannot connect to ${target.label}: ${errorMessage(err)}`));
      }
    });
  }

  close(): void {
    for (const s of [...this.sessions]) s.close();
    this.sessions.clear();
  }
}
