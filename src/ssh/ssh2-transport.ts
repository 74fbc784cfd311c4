/**
 * The real Transport, over the `ssh2` library. Host keys are always verified against the
 * configured known_hosts file before authentication; nothing runs on a server whose key is
 * unknown, changed or revoked. It composes connect.ts (the connections through to a server),
 * jump-pool.ts (the jump-host connections, shared by the servers behind them),
 * handshake-limiter.ts (how many handshakes at once per host) and session.ts (the commands).
 */
import type { Client } from 'ssh2';
import type { ServerSpec, SshConfig } from '../config/types.js';
import type { Session, Transport } from './transport.js';
import { chainLabel, checkLocalSide, endpointsOf, isForwardTimeout, openHop } from './connect.js';
import { HandshakeLimiter } from './handshake-limiter.js';
import { agentSocket } from './identities.js';
import { JumpPool, type JumpLease } from './jump-pool.js';
import { loadSsh2 } from './ssh2-lib.js';
import { Ssh2Session } from './session.js';

export class Ssh2Transport implements Transport {
  private readonly sessions = new Set<Ssh2Session>();
  readonly handshakes = new HandshakeLimiter();
  /** the jump-host connections, keyed by their chain, each opened with the ssh settings of the connect that opened it */
  readonly jumps: JumpPool<Client, SshConfig>;

  /** `jumpChannels`, `jumpIdleMs`: the pool's cap and idle time (jump-pool.ts; for tests) */
  constructor(opts: { jumpChannels?: number; jumpIdleMs?: number } = {}) {
    this.jumps = new JumpPool<Client, SshConfig>(
      async (chain, via, sshCfg, signal) => openHop(await loadSsh2(), chain, sshCfg, this.handshakes, via, 'jump', signal),
      { ...(opts.jumpChannels !== undefined ? { channels: opts.jumpChannels } : {}), ...(opts.jumpIdleMs !== undefined ? { idleMs: opts.jumpIdleMs } : {}) },
    );
  }

  async preflight(sshCfg: SshConfig, servers?: readonly ServerSpec[]): Promise<void> {
    checkLocalSide(await loadSsh2(), sshCfg, servers);
  }

  async connect(server: ServerSpec, sshCfg: SshConfig, signal?: AbortSignal): Promise<Session> {
    const ssh2 = await loadSsh2();
    const eps = endpointsOf(server, sshCfg);
    let lease: JumpLease<Client> | undefined;
    if (eps.length > 1) lease = await this.jumps.acquire(eps.slice(0, -1), agentSocket(sshCfg), sshCfg, signal);
    let client: Client;
    try {
      client = await openHop(ssh2, eps, sshCfg, this.handshakes, lease?.client, 'server', signal);
    } catch (err) {
      // a jump connection that does not even answer a forward is dead: the next try opens another
      if (isForwardTimeout(err)) lease?.retire();
      else lease?.release();
      throw err;
    }
    const session = new Ssh2Session(client, { label: chainLabel(eps) }, sshCfg, (s) => {
      this.sessions.delete(s);
      lease?.release();
    });
    this.sessions.add(session);
    return session;
  }

  close(): void {
    for (const s of [...this.sessions]) s.close();
    this.sessions.clear();
    this.jumps.close();
  }
}
