/**
 * The jump-host pool's bookkeeping (src/ssh/jump-pool.ts) with fake connections: the cap per
 * connection, one opening shared by those who wait for it, the key, a closed or failed
 * connection leaving the pool, the idle close, a chain of two hops.
 */
import { strict as assert } from 'node:assert';
import { EventEmitter } from 'node:events';
import { describe, test } from 'node:test';
import type { Endpoint } from '../../src/ssh/connect.js';
import { JumpPool } from '../../src/ssh/jump-pool.js';
import { TransportError } from '../../src/ssh/transport.js';

class FakeClient extends EventEmitter {
  ended = false;
  destroyed = false;
  constructor(
    readonly chain: string,
    readonly via: FakeClient | undefined,
  ) {
    super();
  }
  end(): void {
    this.ended = true;
    this.emit('close');
  }
  destroy(): void {
    this.destroyed = true;
    this.emit('close');
  }
}

const ep = (host: string, extra: Partial<Endpoint> = {}): Endpoint => ({ host, port: 22, user: 'u', identityFiles: ['/k'], knownHosts: '/kh', label: `u@${host}:22`, ...extra });

function pool(opts: { channels?: number; idleMs?: number; fail?: (chain: readonly Endpoint[]) => boolean } = {}) {
  const opened: FakeClient[] = [];
  const p = new JumpPool<FakeClient, null>(
    async (chain, via) => {
      await new Promise((r) => setTimeout(r, 5));
      if (opts.fail?.(chain)) throw new TransportError('auth', `authentication to jump host ${chain[chain.length - 1]!.label} failed`);
      const c = new FakeClient(chain.map((e) => e.host).join('>'), via);
      opened.push(c);
      return c;
    },
    { channels: opts.channels ?? 3, idleMs: opts.idleMs ?? 0 },
  );
  return { p, opened };
}

describe('JumpPool', () => {
  test('up to the cap on one connection, then a new one; those waiting at once share one opening', async () => {
    const { p, opened } = pool({ channels: 3 });
    const leases = await Promise.all(Array.from({ length: 7 }, () => p.acquire([ep('b')], undefined, null)));
    assert.equal(opened.length, 3, 'ceil(7 / 3) connections');
    const per = new Map<FakeClient, number>();
    for (const l of leases) per.set(l.client, (per.get(l.client) ?? 0) + 1);
    assert.deepEqual([...per.values()].sort(), [1, 3, 3]);
    for (const l of leases) l.release();
    // idle time 0: each closed with its last channel
    assert.ok(opened.every((c) => c.ended));
    assert.equal(p.opened, 3);
  });

  test('everything that changes who we are or how the key is checked is part of the key', async () => {
    const { p, opened } = pool();
    const variants = [ep('b'), ep('B'), ep('b', { port: 2222 }), ep('b', { user: 'v' }), ep('b', { identityFiles: ['/k2'] }), ep('b', { knownHosts: '/kh2' })];
    const leases = await Promise.all(variants.map((v) => p.acquire([v], undefined, null)));
    // host names are not case-sensitive: 'b' and 'B' are one
    assert.equal(opened.length, 5);
    leases.push(await p.acquire([ep('b')], '/agent.sock', null));
    assert.equal(opened.length, 6, 'another agent is another key');
    for (const l of leases) l.release();
  });

  test('a connection that closes leaves the pool; the next acquire opens another', async () => {
    const { p, opened } = pool({ idleMs: 60_000 });
    const a = await p.acquire([ep('b')], undefined, null);
    opened[0]!.emit('close');
    const b = await p.acquire([ep('b')], undefined, null);
    assert.notEqual(b.client, a.client);
    a.release();
    assert.equal(opened[1]!.ended, false, 'releasing a lease of the dead connection does not touch the new one');
    b.release();
    assert.equal(opened[1]!.ended, false, 'idle, kept for a while');
    p.close();
    assert.equal(opened[1]!.ended, true, 'closed with the pool');
  });

  test('retire destroys the connection at once, with every channel on it', async () => {
    const { p, opened } = pool({ idleMs: 60_000 });
    const a = await p.acquire([ep('b')], undefined, null);
    const b = await p.acquire([ep('b')], undefined, null);
    a.retire();
    assert.equal(opened[0]!.destroyed, true);
    const c = await p.acquire([ep('b')], undefined, null);
    assert.notEqual(c.client, b.client);
    b.release();
    c.release();
    p.close();
  });

  test('an opening that fails fails everyone waiting for it, and is not kept', async () => {
    let failing = true;
    const { p, opened } = pool({ fail: () => failing });
    const results = await Promise.allSettled([p.acquire([ep('b')], undefined, null), p.acquire([ep('b')], undefined, null)]);
    assert.deepEqual(
      results.map((r) => r.status === 'rejected' && (r.reason as TransportError).kind),
      ['auth', 'auth'],
    );
    failing = false;
    const l = await p.acquire([ep('b')], undefined, null);
    assert.equal(opened.length, 1);
    l.release();
  });

  test('an abort while waiting ends that wait; the opening goes on for the others', async () => {
    const { p, opened } = pool({ idleMs: 60_000 });
    const ac = new AbortController();
    const first = p.acquire([ep('b')], undefined, null, ac.signal);
    const second = p.acquire([ep('b')], undefined, null);
    ac.abort();
    await assert.rejects(first, /aborted/);
    const l = await second;
    assert.equal(opened.length, 1);
    assert.deepEqual(p.counts(JSON.stringify([null, ['b', 22, 'u', ['/k'], '/kh']])), [1]);
    l.release();
    p.close();
  });

  test('two hops: the second over a channel of the first, each pooled; the first released when the second closes', async () => {
    const { p, opened } = pool({ channels: 2 });
    const chain = [ep('b1'), ep('b2')];
    const leases = await Promise.all(Array.from({ length: 4 }, () => p.acquire(chain, undefined, null)));
    const firsts = opened.filter((c) => c.chain === 'b1');
    const seconds = opened.filter((c) => c.chain === 'b1>b2');
    assert.equal(seconds.length, 2, '4 servers, 2 a connection');
    assert.equal(firsts.length, 1, 'both second-hop connections over one first-hop connection');
    assert.ok(seconds.every((c) => c.via === firsts[0]));
    for (const l of leases) l.release();
    assert.ok(seconds.every((c) => c.ended));
    assert.equal(firsts[0]!.ended, true, 'its last channel (the second hop) closed: idle, closed');
  });
});
