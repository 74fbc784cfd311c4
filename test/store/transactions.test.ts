/**
 * The port's transaction rule on the SQLite store (store/port.ts, store/sqlite/store.ts): `tx(fn)`
 * commits what `fn` wrote through its handle or nothing; a call on the store while a transaction
 * is open waits for its end, in the order the calls were made (what keeps the parallel batches
 * of one process out of each other's transactions); a `tx` of the handle is nested.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import type { NewUpdate } from '../../src/store/port.js';
import { openStore } from '../helpers/db.js';
import { makeTempDir } from '../helpers/tmp.js';
import { fakeSettings } from '../support/fake-settings.js';

async function storeWith(t: TestContext, ...names: string[]) {
  const dir = makeTempDir('agent-update-tx-');
  const store = openStore(join(dir, 'p.db'));
  t.after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  for (const name of names) {
    const u: NewUpdate = {
      name, repo: '/r', branch: 'master', commit: 'c'.repeat(40), configFile: null, settings: fakeSettings, testStopAfter: 0,
      servers: [{ name: 's1', host: 'h1', port: 22, user: 'u', type: 'app' }],
    };
    await store.createUpdate(u);
  }
  return store;
}

/** A promise and the function that settles it: something a transaction waits on across event-loop turns. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

test('tx: what the function wrote through its handle is committed; when it throws, none of it is', async (t) => {
  const store = await storeWith(t, 'a', 'b');
  await store.tx(async (tx) => {
    await tx.setUpdateStatus('a', 'pending');
    await tx.addEvent('a', null, 'note', 'inside');
  });
  assert.equal((await store.getUpdate('a')).status, 'pending');
  await assert.rejects(
    store.tx(async (tx) => {
      await tx.setUpdateStatus('b', 'pending');
      await tx.addEvent('b', null, 'note', 'inside');
      throw new Error('changed my mind');
    }),
    /changed my mind/,
  );
  assert.equal((await store.getUpdate('b')).status, 'planning');
  assert.deepEqual((await store.getEvents('b')).map((e) => e.kind), ['planning']);
});

test('a call on the store while a transaction is open waits for its end, and the calls run in the order they were made', async (t) => {
  const store = await storeWith(t, 'a');
  const held = gate();
  const order: string[] = [];
  const inside = store.tx(async (tx) => {
    await tx.setUpdateStatus('a', 'pending');
    await held.opened; // the transaction stays open across turns of the event loop
    await tx.addEvent('a', null, 'note', 'last write of the transaction');
    order.push('committed');
  });
  const read = store.getUpdate('a').then((u) => {
    order.push(`read ${u.status}`);
    return u;
  });
  const write = store.addEvent('a', null, 'note', 'after the transaction').then(() => order.push('wrote after'));
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(order, [], 'nothing ran beside the open transaction');
  held.open();
  await Promise.all([inside, read, write]);
  assert.deepEqual(order, ['committed', 'read pending', 'wrote after']);
  assert.deepEqual((await store.getEvents('a')).map((e) => e.message).slice(-2), ['last write of the transaction', 'after the transaction']);
});

test('transactions of one store run one after the other, in the order they were asked for', async (t) => {
  const store = await storeWith(t, 'a');
  const held = gate();
  const order: string[] = [];
  const first = store.tx(async (tx) => {
    order.push('first begins');
    await held.opened;
    await tx.addEvent('a', null, 'note', 'first');
    order.push('first ends');
  });
  const second = store.tx(async (tx) => {
    order.push('second begins');
    await tx.addEvent('a', null, 'note', 'second');
    order.push('second ends');
  });
  await new Promise((r) => setTimeout(r, 20));
  held.open();
  await Promise.all([first, second]);
  assert.deepEqual(order, ['first begins', 'first ends', 'second begins', 'second ends']);
});

test('a tx of the handle is nested: its throw undoes its own writes only; the handle is refused once its transaction ended', async (t) => {
  const store = await storeWith(t, 'a');
  let kept: Parameters<Parameters<typeof store.tx>[0]>[0] | null = null;
  await store.tx(async (tx) => {
    kept = tx;
    await tx.addEvent('a', null, 'note', 'outer');
    await assert.rejects(
      tx.tx(async (inner) => {
        await inner.addEvent('a', null, 'note', 'inner');
        throw new Error('inner fails');
      }),
      /inner fails/,
    );
    await tx.tx(async (inner) => inner.addEvent('a', null, 'note', 'inner kept'));
  });
  assert.deepEqual((await store.getEvents('a')).map((e) => e.message).slice(1), ['outer', 'inner kept']);
  await assert.rejects(kept!.getUpdate('a'), /used after its transaction ended/);
});

test('close waits for the transaction open', async (t) => {
  const dir = makeTempDir('agent-update-tx-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'p.db');
  const store = openStore(file);
  const held = gate();
  const inside = store.tx(async (tx) => {
    await held.opened;
    await tx.createUpdate({ name: 'late', repo: '/r', branch: 'master', commit: 'c'.repeat(40), configFile: null, settings: fakeSettings, testStopAfter: 0, servers: [] });
  });
  const closed = store.close();
  held.open();
  await Promise.all([inside, closed]);
  const again = openStore(file);
  t.after(() => again.close());
  assert.equal(await again.hasUpdate('late'), true);
});

test('a call on the store from inside its own transaction is refused, not left waiting for itself; other callers still wait', async (t) => {
  const store = await storeWith(t, 'a');
  await assert.rejects(
    store.tx(async (tx) => {
      await tx.setUpdateStatus('a', 'pending');
      await store.getUpdate('a');
    }),
    /inside its own transaction/,
  );
  assert.equal((await store.getUpdate('a')).status, 'planning', 'the transaction was rolled back');
  await assert.rejects(store.tx(async () => store.tx(async () => undefined)), /inside its own transaction/, 'a tx of the store, not of the handle');
  // a call from outside (another batch of the same process) made while a transaction is open still waits and runs
  const g = gate();
  const open = store.tx(async (tx) => {
    await g.opened;
    await tx.setUpdateStatus('a', 'pending');
  });
  const outside = store.getUpdate('a');
  g.open();
  await open;
  assert.equal((await outside).status, 'pending');
  // once the transaction has ended, work it started may use the store again
  const started: { later?: Promise<string> } = {};
  await store.tx(async () => {
    started.later = new Promise((resolve) => setImmediate(() => void store.getUpdate('a').then((u) => resolve(u.status))));
  });
  assert.equal(await started.later, 'pending');
});
