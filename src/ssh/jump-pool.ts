/**
 * The jump-host connections, shared: one authenticated connection per jump host (per hop of a
 * chain) carries the forwarded connections of many servers, up to JUMP_CHANNELS each, and a
 * new one is opened when every one is at the cap. A thousand servers behind one bastion are a
 * hundred bastion logins at most, not a thousand, and only as many as are in use at once.
 *
 * A connection is keyed by its chain: every endpoint up to it, in order, with all that decides
 * how it is reached, who we authenticate as and how its host key is verified (host, port,
 * user, identity files, known_hosts, the agent). Its host key is verified in its own handshake,
 * once per connection. A connection that closes or fails leaves the pool at once (the servers
 * reached through it see their connection lost, and their reconnect goes through another one);
 * one with no server left is closed after JUMP_IDLE_MS; all are closed with the pool.
 */
import type { Endpoint } from './connect.js';
import { TransportError } from './transport.js';

/**
 * Forwarded connections at once per jump connection. OpenSSH's default MaxSessions is 10
 * (channels multiplexed on one connection); each server's connection through a jump host holds
 * one channel for its whole life, as does the connection to a next hop.
 */
export const JUMP_CHANNELS = 10;

/** How long a jump connection no server uses any more stays open for the next one. */
export const JUMP_IDLE_MS = 10_000;

/** What the pool needs of a connection (an ssh2 Client). */
export interface PooledClient {
  once(event: 'close', listener: () => void): unknown;
  end(): unknown;
  destroy(): unknown;
}

/** One channel's worth of a pooled connection, held by a server (or a next hop) for its life. */
export interface JumpLease<C extends PooledClient = PooledClient> {
  readonly client: C;
  /** the channel is closed: the count goes down (the connection closed when idle) */
  release(): void;
  /** the connection does not answer: out of the pool and destroyed (its other channels die too) */
  retire(): void;
}

/**
 * Open the connection to the last of `chain` (a jump host), through `via` (a lease on the
 * connection to the hop before it) when there is one; `ctx` is that of the acquire that opens it
 * (the transport's ssh settings).
 */
export type OpenJump<C extends PooledClient, X> = (chain: readonly Endpoint[], via: C | undefined, ctx: X, signal: AbortSignal) => Promise<C>;

interface Entry<C extends PooledClient> {
  key: string;
  /** channels held or promised */
  channels: number;
  /** resolved once the connection is up; rejected when it could not be opened */
  ready: Promise<C>;
  client: C | null;
  gone: boolean;
  idle: NodeJS.Timeout | undefined;
  /** aborts the opening once nobody waits for it any more */
  opening: AbortController;
  /** the lease on the previous hop's connection this one is carried by */
  via: JumpLease<C> | undefined;
}

/** The pool's key of a chain of jump hosts: everything that changes where, who, or which host key. */
export function chainKey(chain: readonly Endpoint[], agentSock: string | undefined): string {
  return JSON.stringify([agentSock ?? null, ...chain.map((e) => [e.host.toLowerCase(), e.port, e.user, e.identityFiles, e.knownHosts])]);
}

export class JumpPool<C extends PooledClient = PooledClient, X = unknown> {
  private readonly entries = new Map<string, Entry<C>[]>();
  /** jump connections opened so far (for tests and diagnostics) */
  opened = 0;

  constructor(
    private readonly openJump: OpenJump<C, X>,
    private readonly opts: { channels?: number; idleMs?: number } = {},
  ) {}

  private get cap(): number {
    return Math.max(1, this.opts.channels ?? JUMP_CHANNELS);
  }

  /** Connections in the pool for `chain`'s key now, with their channel counts (for tests). */
  counts(key: string): number[] {
    return (this.entries.get(key) ?? []).map((e) => e.channels);
  }

  /**
   * A channel's worth of a connection to the last of `chain` (its jump hosts in order, each
   * reached through the one before), opened if none in the pool has room. Throws the
   * TransportError of opening it (or of the hop before it).
   */
  async acquire(chain: readonly Endpoint[], agentSock: string | undefined, ctx: X, signal?: AbortSignal): Promise<JumpLease<C>> {
    const key = chainKey(chain, agentSock);
    const list = this.entries.get(key) ?? [];
    this.entries.set(key, list);
    // the fullest connection with room: the others empty out and close when idle
    let entry = list.filter((e) => !e.gone && e.channels < this.cap).sort((a, b) => b.channels - a.channels)[0];
    if (!entry) {
      entry = this.open(key, chain, agentSock, ctx);
      list.push(entry);
    }
    const e = entry;
    e.channels++;
    clearTimeout(e.idle);
    e.idle = undefined;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.release(e);
    };
    try {
      const client = await abortable(e.ready, signal);
      const retire = () => {
        release();
        this.drop(e, true);
      };
      return { client, release, retire };
    } catch (err) {
      release();
      throw err;
    }
  }

  private open(key: string, chain: readonly Endpoint[], agentSock: string | undefined, ctx: X): Entry<C> {
    const opening = new AbortController();
    const entry: Entry<C> = { key, channels: 0, ready: undefined as never, client: null, gone: false, idle: undefined, opening, via: undefined };
    entry.ready = (async () => {
      try {
        if (chain.length > 1) entry.via = await this.acquire(chain.slice(0, -1), agentSock, ctx, opening.signal);
        const client = await this.openJump(chain, entry.via?.client, ctx, opening.signal);
        this.opened++;
        if (entry.gone) {
          client.destroy();
          throw new TransportError('network', 'the transport was closed while connecting to the jump host');
        }
        entry.client = client;
        client.once('close', () => this.drop(entry, false));
        return client;
      } catch (err) {
        this.drop(entry, false);
        throw err;
      }
    })();
    // each waiter sees the rejection through acquire; this one only keeps it from being unhandled
    entry.ready.catch(() => undefined);
    return entry;
  }

  private release(e: Entry<C>): void {
    e.channels = Math.max(0, e.channels - 1);
    if (e.channels > 0 || e.gone) return;
    // nobody waits for it any more: stop opening it
    if (!e.client) return this.drop(e, false);
    const idleMs = this.opts.idleMs ?? JUMP_IDLE_MS;
    if (idleMs <= 0) return this.drop(e, false, true);
    e.idle = setTimeout(() => {
      if (e.channels === 0) this.drop(e, false, true);
    }, idleMs);
    e.idle.unref();
  }

  /** Out of the pool; its connection ended (politely when idle, at once when it failed) and the hop before it released. */
  private drop(e: Entry<C>, destroy: boolean, polite = false): void {
    const list = this.entries.get(e.key);
    const at = list?.indexOf(e) ?? -1;
    if (list && at !== -1) list.splice(at, 1);
    if (list && list.length === 0) this.entries.delete(e.key);
    if (e.gone) return;
    e.gone = true;
    clearTimeout(e.idle);
    e.opening.abort();
    const c = e.client;
    if (c && (destroy || polite)) {
      if (destroy) c.destroy();
      else {
        c.end();
        // end() is polite; make sure the socket goes even if the jump host does not answer
        setTimeout(() => c.destroy(), 2000).unref();
      }
    }
    if (e.via) {
      e.via.release();
      e.via = undefined;
    }
  }

  /** Close every jump connection (the servers behind them are closed first by the transport); the pool can be used again. */
  close(): void {
    for (const list of [...this.entries.values()]) for (const e of [...list]) this.drop(e, false, true);
  }
}

/** `p`, or a rejection when `signal` aborts first (`p` goes on for the others waiting on it). */
function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortError());
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err instanceof Error ? err : new TransportError('network', String(err)));
      },
    );
  });
}

function abortError(): TransportError {
  return new TransportError('network', 'aborted while waiting for the jump host connection');
}
