/**
 * Opening a connection: the endpoints a server is reached through (its jump hosts, then
 * itself), our side of each checked first (known_hosts, identity files, a way to authenticate),
 * then one handshake per hop (openHop: the host key verified before any key is offered), each
 * later hop over a forward opened on the connection to the one before, each under a handshake
 * slot. The jump hosts' connections are shared by the servers behind them (jump-pool.ts).
 */
import type { Duplex } from 'node:stream';
import type { AuthMethod, Client, ConnectConfig, ParsedKey } from 'ssh2';
import type { ServerSpec, SshConfig } from '../config/types.js';
import { formatDuration } from '../util/duration.js';
import { TransportError } from './transport.js';
import { knownKeyTypes } from './known-hosts.js';
import type { KnownHostsFile } from './known-hosts.js';
import { checkHostKey, hostKeyAlgorithms, readKnown } from './host-keys.js';
import { DEFAULT_MAX_HANDSHAKES, type HandshakeLimiter } from './handshake-limiter.js';
import { errorCode, errorLevel, errorMessage, type Ssh2 } from './ssh2-lib.js';
import { agentSocket, loadIdentity, noWayToAuthenticate } from './identities.js';

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

/** One SSH endpoint on the way to a server: a jump host, or the server itself. */
export interface Endpoint {
  host: string;
  port: number;
  user: string;
  /** private key files offered in order (then ssh-agent) */
  identityFiles: string[];
  knownHosts: string;
  /** `user@host:port`, for messages */
  label: string;
}

/** The endpoints connected to in order to reach `server`: its jump hosts, then itself. */
export function endpointsOf(server: ServerSpec, sshCfg: SshConfig): Endpoint[] {
  const ids = (list: string[] | undefined) => list ?? (sshCfg.identityFile ? [sshCfg.identityFile] : []);
  const ep = (e: { host: string; port: number; user: string; identityFiles?: string[]; knownHosts?: string }): Endpoint => ({
    host: e.host,
    port: e.port,
    user: e.user,
    identityFiles: ids(e.identityFiles),
    knownHosts: e.knownHosts ?? sshCfg.knownHosts,
    label: `${e.user}@${e.host.includes(':') ? `[${e.host}]` : e.host}:${e.port}`,
  });
  const target = ep({
    host: server.host,
    port: server.port || sshCfg.port || 22,
    user: server.user || sshCfg.user,
    ...(server.identityFiles ? { identityFiles: server.identityFiles } : {}),
    ...(server.knownHosts ? { knownHosts: server.knownHosts } : {}),
  });
  return [...(server.jump ?? []).map(ep), target];
}

/**
 * One request answered by the server's session process (a `keepalive@openssh.com` global
 * request, as ssh2's keepalives send), which exists only once sshd has finished counting the
 * connection as a startup. Bounded by `timeoutMs`; a client without ssh2's internals resolves
 * at once.
 */
function postAuthRoundTrip(client: Client, timeoutMs: number): Promise<void> {
  const internal = client as unknown as { _callbacks?: unknown[]; _protocol?: { ping?: () => void } };
  if (!Array.isArray(internal._callbacks) || typeof internal._protocol?.ping !== 'function') return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    try {
      internal._callbacks!.push(done);
      internal._protocol!.ping!();
    } catch {
      done();
    }
    client.once('close', done);
  });
}

interface LocalSetup {
  known: KnownHostsFile;
  identities: { file: string; parsed: ParsedKey }[];
  agentSock: string | undefined;
}

/**
 * The half of connecting to one endpoint that is on this side: its known_hosts, its identity
 * files (and their passphrase), some way to authenticate. A problem here is ours, not the server's.
 */
function localSetup(ssh2: Ssh2, sshCfg: SshConfig, ep: Pick<Endpoint, 'identityFiles' | 'knownHosts'>): LocalSetup {
  const known = readKnown(ep.knownHosts);
  const identities = ep.identityFiles.map((f) => loadIdentity(ssh2.utils, f, sshCfg.passphraseEnv));
  const agentSock = agentSocket(sshCfg);
  if (identities.length === 0 && !agentSock) throw noWayToAuthenticate(sshCfg);
  return { known, identities, agentSock };
}

/**
 * Our side of every endpoint `servers` are reached through (their jump hosts included), each
 * distinct known_hosts file and identity file checked once; without servers, the `ssh` block's
 * (with an empty list, nothing: no connection will be opened).
 */
export function checkLocalSide(ssh2: Ssh2, sshCfg: SshConfig, servers?: readonly ServerSpec[]): void {
  if (!servers) {
    localSetup(ssh2, sshCfg, { identityFiles: sshCfg.identityFile ? [sshCfg.identityFile] : [], knownHosts: sshCfg.knownHosts });
    return;
  }
  // Each known_hosts file and each identity file once, however many endpoints use it.
  const seen = new Set<string>();
  const agentSock = agentSocket(sshCfg);
  for (const server of servers) {
    for (const ep of endpointsOf(server, sshCfg)) {
      if (!seen.has(`kh:${ep.knownHosts}`)) readKnown(ep.knownHosts);
      seen.add(`kh:${ep.knownHosts}`);
      for (const f of ep.identityFiles) {
        if (!seen.has(`id:${f}`)) loadIdentity(ssh2.utils, f, sshCfg.passphraseEnv);
        seen.add(`id:${f}`);
      }
      if (ep.identityFiles.length === 0 && !agentSock) throw noWayToAuthenticate(sshCfg);
    }
  }
}

/** The server's `user@host:port`, with the jump hosts it is reached through: how messages name a connection. */
export function chainLabel(eps: readonly Endpoint[]): string {
  return `${eps[eps.length - 1]!.label}${viaOf(eps)}`;
}

function viaOf(eps: readonly Endpoint[]): string {
  return eps.length > 1 ? ` (via ${eps.slice(0, -1).map((e) => e.label).join(', ')})` : '';
}

/** The handshake limiter's key of the last of `eps`: the chain of hosts up to it. */
export function slotKey(eps: readonly Endpoint[]): string {
  return eps.map((e) => `${e.host.toLowerCase()}:${e.port}`).join(' > ');
}

/**
 * Connect to the last of `eps` (the chain up to and including it: a jump host, or the server),
 * through a forward on `via` (the connection to the one before it) when it has one, under a
 * handshake slot of its chain: the authenticated client. Throws a TransportError; `via` is
 * left as it was (its forward, if opened, is closed with the failed handshake).
 */
export async function openHop(
  ssh2: Ssh2,
  eps: readonly Endpoint[],
  sshCfg: SshConfig,
  handshakes: HandshakeLimiter,
  via: Client | undefined,
  role: 'jump' | 'server',
  signal?: AbortSignal,
): Promise<Client> {
  const i = eps.length - 1;
  const ep = eps[i]!;
  const label = role === 'jump' ? `jump host ${ep.label}` : `${ep.label}${viaOf(eps)}`;
  try {
    // The slot covers the TCP connection too (a jump host's forward opens it), since sshd
    // counts a connection from its accept.
    const release = await handshakes.acquire(slotKey(eps), sshCfg.maxHandshakes ?? DEFAULT_MAX_HANDSHAKES, signal);
    try {
      const sock = via ? await forward(via, eps[i - 1]!, ep, sshCfg, signal) : undefined;
      const client = await handshake(ssh2, ep, label, sshCfg, sock, signal);
      // sshd counts a connection against MaxStartups until its monitor has seen the
      // authentication through, a little after it told us so: one round trip answered
      // after that, and only then is the slot given to the next handshake.
      await postAuthRoundTrip(client, sshCfg.connectTimeoutMs);
      return client;
    } finally {
      release();
    }
  } catch (err) {
    throw err instanceof TransportError ? err : new TransportError('config', errorMessage(err));
  }
}

/** Errors of a forward that got no answer in time: the jump connection itself does not answer. */
const forwardTimeouts = new WeakSet<object>();

/** Whether `err` is a forward on a jump connection that got no answer (that connection is likely dead). */
export function isForwardTimeout(err: unknown): boolean {
  return typeof err === 'object' && err !== null && forwardTimeouts.has(err);
}

/** Open a channel from `hop` to `next` (a `direct-tcpip` forward): the socket of the next handshake. */
function forward(hop: Client, ep: Endpoint, next: Endpoint, sshCfg: SshConfig, signal?: AbortSignal): Promise<Duplex> {
  return new Promise<Duplex>((resolve, reject) => {
    let settled = false;
    const done = (err: TransportError | null, stream?: Duplex) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve(stream!);
    };
    const what = `jump host ${ep.label} could not open a connection to ${next.host}:${next.port}`;
    const timer = setTimeout(() => {
      const err = new TransportError('timeout', `${what}: timed out after ${formatDuration(sshCfg.connectTimeoutMs)}`);
      forwardTimeouts.add(err);
      done(err);
    }, sshCfg.connectTimeoutMs);
    const onAbort = () => done(new TransportError('network', `connecting to ${next.label} through ${ep.label} was aborted`));
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      hop.forwardOut('127.0.0.1', 0, next.host, next.port, (err, stream) => {
        if (err) {
          const msg = errorMessage(err).replace(/^\(SSH\) /, '');
          // A jump host that forbids forwarding will not allow it on a retry either.
          const kind = /prohibited/i.test(msg) ? 'config' : 'network';
          done(new TransportError(kind, `${what}: ${msg}${kind === 'config' ? ' (does it allow TCP forwarding: AllowTcpForwarding?)' : ''}`));
          return;
        }
        if (settled) {
          stream.destroy();
          return;
        }
        done(null, stream);
      });
    } catch (err) {
      done(new TransportError('network', `${what}: ${errorMessage(err)}`));
    }
  });
}

/** Connect, verify the host key, authenticate: one endpoint, over `sock` when reached through a jump host. */
function handshake(ssh2: Ssh2, ep: Endpoint, label: string, sshCfg: SshConfig, sock: Duplex | undefined, signal?: AbortSignal): Promise<Client> {
  if (signal?.aborted) throw new TransportError('network', `connecting to ${label} was aborted`);

  const { known, identities, agentSock } = localSetup(ssh2, sshCfg, ep);

  const client = new ssh2.Client();
  let hostKeyFailure: TransportError | null = null;
  const notes: string[] = [];

  const cfg: ConnectConfig = {
    host: ep.host,
    port: ep.port,
    username: ep.user,
    readyTimeout: sshCfg.connectTimeoutMs,
    keepaliveInterval: sshCfg.keepaliveIntervalMs,
    keepaliveCountMax: 3,
    algorithms: { serverHostKey: hostKeyAlgorithms(knownKeyTypes(known.entries, ep.host, ep.port)) as never },
    hostVerifier: (key: Buffer, verify: (valid: boolean) => void) => {
      const failure = checkHostKey(known, ep, key, label.startsWith('jump host'));
      if (failure) hostKeyFailure = failure;
      verify(failure === null);
    },
    // The configured identities first, in order, then the agent's keys (ssh2's own order when
    // given a privateKey and an agent is the same, but that is not a documented promise).
    authHandler: [
      ...identities.map((id): AuthMethod => ({ type: 'publickey', username: ep.user, key: id.parsed }) as AuthMethod),
      ...(agentSock ? [{ type: 'agent', username: ep.user, agent: agentSock } as AuthMethod] : []),
    ],
  };
  if (sock) cfg.sock = sock as ConnectConfig['sock'];

  return new Promise<Client>((resolve, reject) => {
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
      fail(new TransportError('timeout', `connecting to ${label} timed out after ${formatDuration(sshCfg.connectTimeoutMs)}`));
    }, sshCfg.connectTimeoutMs);
    const onAbort = () => fail(new TransportError('network', `connecting to ${label} was aborted`));
    signal?.addEventListener('abort', onAbort, { once: true });

    const mapError = (err: unknown): TransportError => {
      if (hostKeyFailure) return hostKeyFailure;
      const level = errorLevel(err);
      const code = errorCode(err);
      const msg = errorMessage(err);
      if (level === 'client-timeout' || code === 'ETIMEDOUT') {
        return new TransportError('timeout', `connecting to ${label} timed out after ${formatDuration(sshCfg.connectTimeoutMs)}`);
      }
      if (/too many authentication failures/i.test(msg)) {
        return new TransportError(
          'auth',
          `authentication to ${label} failed: the server allows fewer attempts (MaxAuthTries) than the keys offered, and ended it ` +
            `(offered in order: ${[...identities.map((i) => i.file), ...(agentSock ? ['the keys of ssh-agent'] : [])].join(', ') || 'nothing'})`,
        );
      }
      if (level === 'client-authentication' || /authentication methods failed/i.test(msg)) {
        const tried = [
          identities.length ? `public key from ${identities.map((i) => i.file).join(', ')}` : null,
          agentSock ? `ssh-agent (${agentSock})` : null,
        ]
          .filter(Boolean)
          .join(' and ');
        const extra = notes.length ? ` (${notes.join('; ')})` : '';
        return new TransportError(
          'auth',
          `authentication to ${label} failed: no key was accepted (tried ${tried || 'nothing'})${extra}. ` +
            `Check that the key is in ~${ep.user}/.ssh/authorized_keys on ${label.startsWith('jump host') ? 'the jump host' : 'the server'}.`,
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
        return new TransportError('network', `cannot connect to ${label}: ${what} (${code})`);
      }
      return new TransportError('network', `cannot connect to ${label}: ${msg}`);
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
      fail(hostKeyFailure ?? new TransportError('network', `${label} closed the connection before it was ready`));
    });
    client.once('ready', () => {
      if (settled) return;
      settled = true;
      cleanup();
      resolve(client);
    });

    try {
      client.connect(cfg);
      // Small request/answer packets: with Nagle's algorithm on, each waits for the peer's
      // delayed ACK (~40 ms) before it is sent. A hop reached through a forward has no socket
      // of its own (ssh2 then does nothing); its first hop's socket carries it.
      client.setNoDelay(true);
    } catch (err) {
      fail(new TransportError('config', `cannot connect to ${label}: ${errorMessage(err)}`));
    }
  });
}
