/**
 * The liveness PostgreSQL offers beyond a heartbeat: a session advisory lock lives exactly as
 * long as the connection that took it. An executor holding an update's lease also holds the
 * lease's advisory lock on a connection of its own, so when its process dies (kill -9, a crash,
 * a machine whose TCP connection is reset) the lock is gone the moment PostgreSQL sees the
 * connection close, on whatever host it ran: the next `start` anywhere takes over at once instead
 * of waiting out the heartbeat's staleness. See docs/decisions.md ("Liveness in PostgreSQL").
 *
 * The connection is this store's alone (not the pool's: a pooled connection is shared and
 * recycled, and a lock taken on it would outlive or escape its holder). When it drops (the
 * database restarted, a network blip), the locks drop with it; `keep()` (called with each
 * heartbeat) reconnects and takes them again. A lock another session took meanwhile is not
 * taken: the lease row then decides, and the fencing token makes a wrong guess harmless.
 */
import type pg from 'pg';
import type { Shared } from './conn.js';

export class SessionLocks {
  private client: pg.Client | null = null;
  private connecting: Promise<pg.Client> | null = null;
  /** the keys this session holds (a session lock is re-entrant: it is taken once per key) */
  private readonly held = new Set<string>();
  private closed = false;

  constructor(
    private readonly shared: Shared,
    private readonly connect: () => pg.Client,
  ) {}

  holds(key: string): boolean {
    return this.held.has(key);
  }

  /** Take `key` unless another session holds it: true when taken (or held by this session already). */
  async tryLock(key: string): Promise<boolean> {
    if (this.held.has(key)) return true;
    const c = await this.session();
    const r = await c.query<{ got: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS got', [key]);
    const got = r.rows[0]?.got === true;
    if (got) this.held.add(key);
    return got;
  }

  async unlock(key: string): Promise<void> {
    if (!this.held.delete(key)) return;
    const c = this.client;
    if (c) await c.query('SELECT pg_advisory_unlock($1::bigint)', [key]).catch(() => undefined);
  }

  /**
   * After a lost connection: connect again and take back the locks it held. One another session
   * has taken meanwhile is given up here (that session's holder owns it now).
   */
  async keep(): Promise<void> {
    if (this.client || this.held.size === 0 || this.closed) return;
    const wanted = [...this.held];
    this.held.clear();
    for (const key of wanted) await this.tryLock(key).catch(() => false);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.held.clear();
    const c = this.client ?? (await this.connecting?.catch(() => null));
    this.client = null;
    await c?.end().catch(() => undefined);
  }

  private async session(): Promise<pg.Client> {
    if (this.closed) throw new Error(`the plan database ${this.shared.location} is closed`);
    if (this.client) return this.client;
    this.connecting ??= (async () => {
      const c = this.connect();
      // a dropped connection takes its locks with it: forget it, keep() takes them again
      c.on('error', () => this.lost(c));
      c.on('end', () => this.lost(c));
      try {
        await c.connect();
      } catch (e) {
        await c.end().catch(() => undefined);
        throw e;
      }
      this.client = c;
      return c;
    })().finally(() => {
      this.connecting = null;
    });
    return this.connecting;
  }

  private lost(c: pg.Client): void {
    if (this.client === c) this.client = null;
  }
}
