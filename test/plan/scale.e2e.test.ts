/**
 * Planning at scale on the real OpenSSH fleet (probe-only servers: a `~/commit` file each):
 * 200 servers probed in parallel, never more connections at once than --concurrency, every
 * server recorded; and a version command printing 50 MB kept to the output limit.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { join } from 'node:path';
import { systemClock } from '../../src/clock.js';
import { loadConfig } from '../../src/config/load.js';
import { createPlan } from '../../src/plan/plan.js';
import { Ssh2Transport } from '../../src/ssh/ssh2-transport.js';
import type { Session, Transport } from '../../src/ssh/transport.js';
import { sshdAvailable, startFleet, type Fleet } from '../fleet/fleet.js';
import { requireSshd } from '../fleet/fleet.js';
import { openStore } from '../helpers/db.js';

const SERVERS = 200;
let fleet: Fleet | null = null;
before(async () => {
  if (sshdAvailable()) fleet = await startFleet({ servers: SERVERS, probeOnly: true });
});
after(() => fleet?.stop());

/** The real transport, counting the sessions open at once (from connect's start to close). */
function counting(inner: Transport): Transport & { max: number; open: number; connects: number } {
  const t = {
    max: 0,
    open: 0,
    connects: 0,
    preflight: inner.preflight?.bind(inner),
    close: () => inner.close(),
    async connect(...args: Parameters<Transport['connect']>): Promise<Session> {
      t.open += 1;
      t.connects += 1;
      t.max = Math.max(t.max, t.open);
      let closed = false;
      const done = () => {
        if (!closed) t.open -= 1;
        closed = true;
      };
      try {
        const s = await inner.connect(...args);
        return {
          exec: (command, options) => s.exec(command, options),
          close: () => {
            done();
            s.close();
          },
        };
      } catch (e) {
        done();
        throw e;
      }
    },
  };
  return t;
}

test('plan of 200 servers: every one probed and recorded, at most --concurrency connections at once', async (t) => {
  if (!requireSshd(t) || !fleet) return;
  const f = fleet;
  // A few already at the target: skipped.
  const target = f.upstream.commits.good;
  await Promise.all(['s2', 's50', 's199'].map((s) => f.setCommit(s, target)));
  t.after(() => Promise.all(['s2', 's50', 's199'].map((s) => f.setCommit(s, f.upstream.commits.base))));
  const config = loadConfig(f.writeConfig({ source: { commit: target } }));
  const store = openStore(join(f.root, 'plan200.db'));
  const transport = counting(new Ssh2Transport());
  const concurrency = 12;
  try {
    const u = await createPlan({ store, transport, clock: systemClock, emit: () => {} }, config, { name: 'p200', concurrency });
    assert.equal(u.status, 'pending');
    const servers = await store.getServers('p200');
    assert.equal(servers.length, SERVERS);
    const skipped = servers.filter((s) => s.status === 'skipped').map((s) => s.name);
    assert.deepEqual(skipped, ['s2', 's50', 's199']);
    const pending = servers.filter((s) => s.status === 'pending');
    assert.equal(pending.length, SERVERS - 3);
    for (const s of pending) assert.equal(s.fromCommit, f.upstream.commits.base, `${s.name} probed`);
    const probes = (await store.getJournal('p200')).filter((s) => s.phase === 'probe');
    assert.equal(probes.length, SERVERS, 'one journalled probe per server');
    assert.ok(probes.every((p) => p.exitCode === 0 && p.endedAt !== null));
    assert.equal(transport.connects, SERVERS, 'one connection per server');
    assert.ok(transport.max <= concurrency, `${transport.max} connections at once, more than ${concurrency}`);
    assert.ok(transport.max > 1, 'probes ran in parallel');
    assert.equal(transport.open, 0, 'every session closed');
  } finally {
    transport.close();
    await store.close();
  }
});

test('a version command printing 50 MB: the probe reads the commit on its last line and the journal keeps only the output limit', async (t) => {
  if (!requireSshd(t) || !fleet) return;
  const big = 50 * 1024 * 1024;
  const limit = 65_536;
  const config = loadConfig(
    fleet.writeConfig({
      servers: fleet.servers.slice(0, 2).map((s) => ({ name: s.name, host: s.host, type: s.type })),
      agent: { version_command: `head -c ${big} /dev/zero | tr '\\0' x; echo; cat ~/commit` },
      ssh: { output_limit: limit },
    }),
  );
  const store = openStore(join(fleet.root, 'big-output.db'));
  const transport = new Ssh2Transport();
  try {
    await createPlan({ store, transport, clock: systemClock, emit: () => {} }, config, { name: 'loud', concurrency: 2 });
    const servers = await store.getServers('loud');
    assert.deepEqual(servers.map((s) => [s.status, s.fromCommit]), servers.map(() => ['pending', fleet!.upstream.commits.base]));
    for (const step of await store.getJournal('loud')) {
      assert.ok((step.stdout ?? '').length <= limit + 200, `${step.serverName}: ${step.stdout?.length} characters of stdout journalled`);
      assert.ok((step.stdout ?? '').endsWith(`${fleet.upstream.commits.base}\n`));
    }
  } finally {
    transport.close();
    await store.close();
  }
});
