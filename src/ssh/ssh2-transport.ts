/**
 * The real Transport, over the `ssh2` library. Host keys are always verified against the
 * configured known_hosts file before authentication; nothing runs on a server whose key is
 * unknown, changed or revoked. It composes connect.ts (the connections through to a server),
 * handshake-limiter.ts (how many handshakes at once per host) and session.ts (the commands).
 */
import type { ServerSpec, SshConfig } from '../config/types.js';
import type { Session, Transport } from './transport.js';
import { chainLabel, checkLocalSide, endpointsOf, openChain } from './connect.js';
import { HandshakeLimiter } from './handshake-limiter.js';
import { loadSsh2 } from './ssh2-lib.js';
import { Ssh2Session } from './session.js';

export class Ssh2Transport implements Transport {
  private readonly sessions = new Set<Ssh2Session>();
  readonly handshakes = new HandshakeLimiter();

  async preflight(sshCfg: SshConfig, servers?: readonly ServerSpec[]): Promise<void> {
    checkLocalSide(await loadSsh2(), sshCfg, servers);
  }

  async connect(server: ServerSpec, sshCfg: SshConfig, signal?: AbortSignal): Promise<Session> {
    const ssh2 = await loadSsh2();
    const eps = endpointsOf(server, sshCfg);
    const clients = await openChain(ssh2, eps, sshCfg, this.handshakes, signal);
    const hops = clients.slice(0, -1);
    const client = clients[clients.length - 1]!;
    const closeHops = () => {
      for (const h of hops) {
        h.end();
        setTimeout(() => h.destroy(), 2000).unref();
      }
    };
    const session = new Ssh2Session(client, { label: chainLabel(eps) }, sshCfg, (s) => {
      this.sessions.delete(s);
      closeHops();
    });
    this.sessions.add(session);
    return session;
  }

  close(): void {
    for (const s of [...this.sessions]) s.close();
    this.sessions.clear();
  }
}
