import { TransportError } from './transport.js';

/**
 * At most `limit` SSH handshakes at once per key (a host, or a chain of hosts up to it): sshd
 * drops connections beyond its `MaxStartups` (10:30:100 by default: unauthenticated connections
 * at once), and a shared jump host sees every server's handshake. The wait does not count
 * against the connect timeout; an abort ends it.
 */
export class HandshakeLimiter {
  private readonly active = new Map<string, number>();
  private readonly waiting = new Map<string, (() => void)[]>();
  /** the most handshakes seen at once, per key (for tests and diagnostics) */
  readonly peak = new Map<string, number>();

  async acquire(key: string, limit: number, signal?: AbortSignal): Promise<() => void> {
    while ((this.active.get(key) ?? 0) >= Math.max(1, limit)) {
      if (signal?.aborted) throw new TransportError('network', 'aborted while waiting for a handshake slot');
      await new Promise<void>((resolve) => {
        const queue = this.waiting.get(key) ?? [];
        const wake = () => {
          signal?.removeEventListener('abort', wake);
          const q = this.waiting.get(key);
          const at = q?.indexOf(wake) ?? -1;
          if (q && at !== -1) q.splice(at, 1);
          resolve();
        };
        queue.push(wake);
        this.waiting.set(key, queue);
        signal?.addEventListener('abort', wake, { once: true });
      });
    }
    if (signal?.aborted) throw new TransportError('network', 'aborted while waiting for a handshake slot');
    const now = (this.active.get(key) ?? 0) + 1;
    this.active.set(key, now);
    if (now > (this.peak.get(key) ?? 0)) this.peak.set(key, now);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.active.get(key) ?? 1) - 1;
      if (left <= 0) this.active.delete(key);
      else this.active.set(key, left);
      const q = this.waiting.get(key);
      const next = q?.shift();
      if (q && q.length === 0) this.waiting.delete(key);
      next?.();
    };
  }
}

export const DEFAULT_MAX_HANDSHAKES = 8;
