/**
 * An in-process SSH server (ssh2) that runs exec requests for real with /bin/sh, for tests with
 * fault injection and for the `demo` command. It accepts exactly one public key, verifies the
 * client's signature, and listens on a port the OS picks.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import ssh2 from 'ssh2';
import type { Connection, ParsedKey, ServerChannel } from 'ssh2';
import { generateKeyPair } from './keys.js';

const { Server, utils } = ssh2;

export interface SimBehaviour {
  /** accept TCP connections but never send the SSH banner */
  neverAnswer?: boolean;
  /** destroy the connection (no goodbye) this long after an exec starts */
  dieAfterMs?: number;
  /**
   * commands matching this never finish (until the channel or connection closes); tested against
   * each exec request and each piece of a channel's input (where the command loop of
   * src/ssh/channel.ts receives its commands: from a match on, that channel gets no more input)
   */
  hangCommands?: RegExp;
  /** exec handlers pass nothing from the channel to the command's stdin (it stays open, empty) */
  ignoreStdin?: boolean;
  /** the connection is up, but a request to open a session (a channel) is never answered */
  neverOpenSessions?: boolean;
}

export interface SimServerOptions {
  /** host private key (OpenSSH or PEM); an ed25519 key is generated when absent */
  hostKey?: string;
  /** more host keys the server offers (e.g. an ecdsa one next to the ed25519 one) */
  extraHostKeys?: string[];
  /** the one public key accepted, as in authorized_keys: `ssh-ed25519 AAAA… [comment]` */
  authorizedKey: string;
  /** the home directory (cwd and $HOME of commands), fixed or per user name */
  home: string | ((user: string) => string);
  behaviour?: SimBehaviour;
  /** extra environment variables for commands */
  env?: Record<string, string>;
  host?: string;
}

export interface SimServer {
  port: number;
  host: string;
  /** the `[host]:port type base64` line for a known_hosts file */
  hostKeyLine: string;
  /** the host key's type and blob, e.g. for fingerprints */
  hostKeyType: string;
  hostKeyBlob: Buffer;
  /** exec requests received (after authentication), in order */
  commands: string[];
  /** TCP connections accepted so far */
  connections(): number;
  close(): Promise<void>;
}

function parseOne(data: string, passphrase?: string): ParsedKey {
  const parsed = utils.parseKey(data, passphrase);
  if (parsed instanceof Error) throw parsed;
  const key = Array.isArray(parsed) ? (parsed[0] as ParsedKey | undefined) : parsed;
  if (!key) throw new Error('no key found');
  return key;
}

function killTree(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal); // the whole process group (spawned detached)
  } catch {
    try {
      child.kill(signal);
    } catch {
      /* gone */
    }
  }
}

export async function startSimServer(opts: SimServerOptions): Promise<SimServer> {
  const host = opts.host ?? '127.0.0.1';
  const behaviour = opts.behaviour ?? {};
  const hostKeyPem = opts.hostKey ?? generateKeyPair('ed25519').private;
  const hostKey = parseOne(hostKeyPem);
  const hostKeyBlob = hostKey.getPublicSSH();
  const allowed = parseOne(opts.authorizedKey);
  const allowedBlob = allowed.getPublicSSH();
  const homeFor = (user: string) => (typeof opts.home === 'function' ? opts.home(user) : opts.home);

  const sockets = new Set<Socket>();
  const byRemotePort = new Map<number, Socket>();
  const children = new Set<ChildProcess>();
  const commands: string[] = [];
  let connectionCount = 0;

  const ssh = new Server({ hostKeys: [hostKeyPem, ...(opts.extraHostKeys ?? [])] }, (conn: Connection, info) => {
    const socket = byRemotePort.get(info.port);
    let user = '';
    const connChildren = new Set<ChildProcess>();
    const timers = new Set<NodeJS.Timeout>();
    conn.on('error', () => {
      /* a client that goes away is normal here */
    });
    conn.on('close', () => {
      for (const t of timers) clearTimeout(t);
      for (const c of connChildren) killTree(c, 'SIGKILL');
    });
    conn.on('authentication', (ctx) => {
      if (ctx.method !== 'publickey' || !ctx.key.data.equals(allowedBlob)) {
        ctx.reject(['publickey']);
        return;
      }
      if (ctx.signature === undefined || ctx.blob === undefined) {
        ctx.accept(); // the client only asks whether this key would do
        return;
      }
      if (allowed.verify(ctx.blob, ctx.signature, ctx.hashAlgo) !== true) {
        ctx.reject(['publickey']);
        return;
      }
      user = ctx.username;
      ctx.accept();
    });
    conn.on('ready', () => {
      conn.on('session', (acceptSession) => {
        if (behaviour.neverOpenSessions) return; // neither accepted nor rejected: the client waits
        const session = acceptSession();
        let child: ChildProcess | null = null;
        session.on('signal', (accept, _reject, sig) => {
          accept?.();
          if (child) killTree(child, `SIG${sig.name.replace(/^SIG/, '')}` as NodeJS.Signals);
        });
        session.on('exec', (accept, _reject, execInfo) => {
          const channel: ServerChannel = accept();
          commands.push(execInfo.command);
          let channelClosed = false;
          channel.on('close', () => {
            channelClosed = true;
            if (child) killTree(child, 'SIGKILL');
          });
          channel.on('error', () => {});
          if (behaviour.dieAfterMs !== undefined && socket) {
            const t = setTimeout(() => socket.destroy(), behaviour.dieAfterMs);
            timers.add(t);
          }
          if (behaviour.hangCommands?.test(execInfo.command)) return; // never answers

          const home = homeFor(user);
          const proc = spawn('/bin/sh', ['-c', execInfo.command], {
            cwd: home,
            env: {
              PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
              LANG: process.env.LANG ?? 'C.UTF-8',
              ...opts.env,
              HOME: home,
              USER: user,
              LOGNAME: user,
              SHELL: '/bin/sh',
            },
            stdio: ['pipe', 'pipe', 'pipe'],
            detached: true,
          });
          child = proc;
          children.add(proc);
          connChildren.add(proc);
          proc.stdout?.pipe(channel, { end: false });
          proc.stderr?.pipe(channel.stderr, { end: false });
          proc.stdin?.on('error', () => {});
          let frozen = false;
          channel.on('data', (d: Buffer) => {
            if (!frozen && behaviour.hangCommands?.test(d.toString())) frozen = true;
            if (!frozen && !behaviour.ignoreStdin) proc.stdin?.write(d);
          });
          channel.on('end', () => {
            if (!behaviour.ignoreStdin) proc.stdin?.end();
          });
          let spawnError: Error | null = null;
          proc.on('error', (err) => {
            spawnError = err;
          });
          proc.on('close', (code, signal) => {
            children.delete(proc);
            connChildren.delete(proc);
            if (channelClosed) return;
            try {
              if (spawnError) {
                channel.stderr.write(`sim: cannot run command: ${spawnError.message}\n`);
                channel.exit(127);
              } else if (code !== null) {
                channel.exit(code);
              } else {
                channel.exit((signal ?? 'SIGKILL').replace(/^SIG/, ''), false, '');
              }
              channel.end();
            } catch {
              /* the channel went away meanwhile */
            }
          });
        });
      });
    });
  });
  ssh.on('error', () => {});

  const tcp = createServer((socket) => {
    sockets.add(socket);
    connectionCount++;
    socket.on('error', () => {});
    socket.on('close', () => {
      sockets.delete(socket);
      if (socket.remotePort !== undefined) byRemotePort.delete(socket.remotePort);
    });
    if (behaviour.neverAnswer) return; // hold the connection, say nothing
    if (socket.remotePort !== undefined) byRemotePort.set(socket.remotePort, socket);
    ssh.injectSocket(socket);
  });

  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen(0, host, () => {
      tcp.off('error', reject);
      resolve();
    });
  });
  const port = (tcp.address() as AddressInfo).port;
  const name = port === 22 ? host : `[${host}]:${port}`;

  return {
    port,
    host,
    hostKeyLine: `${name} ${hostKey.type} ${hostKeyBlob.toString('base64')}`,
    hostKeyType: hostKey.type,
    hostKeyBlob,
    commands,
    connections: () => connectionCount,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of children) killTree(c, 'SIGKILL');
        for (const s of sockets) s.destroy();
        tcp.close(() => resolve());
      }),
  };
}
