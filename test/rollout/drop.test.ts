/** drop (issue 15, item 2) on a real Store: what it refuses, all or nothing, batches and globs. */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { dropServers } from '../../src/rollout/drop.js';
import { splitUpdate } from '../../src/rollout/split.js';
import { TransitionError, UsageError } from '../../src/errors.js';
import type { NewUpdate, Store } from '../../src/store/port.js';
import { fakeSettings } from '../support/fake-settings.js';
import { makeTempDir } from '../helpers/tmp.js';
import { contents, openStore } from '../helpers/db.js';

const NOW = new Date('2026-12-01T10:00:00Z');
const BY = 'ops@admin1';

function tmpStore(t: { after(fn: () => void | Promise<void>): void }): Store {
  const dir = makeTempDir('agent-update-drop-');
  const store = openStore(join(dir, 'p.db'));
  t.after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return store;
}

/** An update `name` of servers s1..sN, all pending, the update pending. */
async function pendingUpdate(store: Store, name: string, n: number): Promise<void> {
  const u: NewUpdate = {
    name, repo: '/r', branch: 'master', commit: 'c'.repeat(40), configFile: null, settings: fakeSettings, testStopAfter: 0,
    servers: Array.from({ length: n }, (_, i) => ({ name: `s${i + 1}`, host: `h${i + 1}`, port: 22, user: 'u', type: i % 2 ? 'db' : 'app' })),
  };
  await store.createUpdate(u);
  await store.setUpdateStatus(name, 'pending');
}

/** Everything a refused drop must leave as it was. */
const snapshot = async (store: Store) => await contents(store);

const statusOf = async (store: Store, update: string, server: string) => (await store.getServers(update)).find((s) => s.name === server)!;

test('drop: the named pending servers become excluded with who and why; one event each, with the actor', async (t) => {
  const store = tmpStore(t);
  await pendingUpdate(store, 'u1', 4);
  const r = await dropServers(store, 'u1', ['s3', 's2'], { reason: 'disk swap', by: BY, now: NOW });
  assert.deepEqual(r.dropped.map((d) => d.name), ['s2', 's3'], 'in the update order');
  for (const name of ['s2', 's3']) {
    const s = await statusOf(store, 'u1', name);
    assert.equal(s.status, 'excluded');
    assert.equal(s.error, `dropped by ${BY}: disk swap`);
    assert.equal(s.endedAt, NOW.toISOString());
  }
  assert.equal((await statusOf(store, 'u1', 's1')).status, 'pending');
  const events = await store.getEvents('u1');
  const serverEvents = events.filter((e) => e.serverName === 's2');
  assert.equal(serverEvents.at(-1)!.message, `excluded: dropped by ${BY}: disk swap`);
  assert.equal(serverEvents.at(-1)!.actor, BY);
  const own = events.filter((e) => e.kind === 'drop');
  assert.equal(own.length, 1);
  assert.equal(own[0]!.actor, BY);
  assert.match(own[0]!.message, /dropped s2, s3/);
  // default reason: who dropped it
  await dropServers(store, 'u1', ['s4'], { by: BY, now: NOW });
  assert.equal((await statusOf(store, 'u1', 's4')).error, `dropped by ${BY}`);
  assert.equal((await store.getUpdate('u1')).status, 'pending', 'the update itself is unchanged');
});

test('drop refuses, changing nothing: a running, planning or ended update; an unknown, finished or excluded server; any bad one among good ones', async (t) => {
  const store = tmpStore(t);
  await pendingUpdate(store, 'u1', 3);
  const before = await snapshot(store);
  const refused = async (args: string[], re: RegExp, kind: typeof UsageError | typeof TransitionError = UsageError) => {
    await assert.rejects(dropServers(store, 'u1', args, { by: BY, now: NOW }), (e: unknown) => e instanceof kind && re.test((e as Error).message));
    assert.deepEqual(await snapshot(store), before, `nothing changed by drop ${args.join(' ')}`);
  };
  await refused(['s9'], /no server named "s9"; did you mean "s1", "s2" or "s3"\?; nothing was dropped/);
  await refused(['s1', 's9'], /no server named "s9"/);
  await refused(['x*'], /no server of update u1 matches "x\*"/);
  await refused(['s[01:03]'], /inventory range, not a glob/);
  await refused([''], /must not be empty/);
  await assert.rejects(dropServers(store, 'nope', ['s1'], { by: BY, now: NOW }), /no update named "nope"/);
  await assert.rejects(dropServers(store, 'u1', ['s1'], { reason: 'two\nlines', by: BY, now: NOW }), /one line/);
  assert.deepEqual(await snapshot(store), before);

  // a server already done (or already dropped)
  await dropServers(store, 'u1', ['s3'], { by: BY, now: NOW });
  const id = (await statusOf(store, 'u1', 's1')).id;
  await store.setServerStatus(id, 'running', { step: 'update' });
  const now = await snapshot(store);
  await assert.rejects(dropServers(store, 'u1', ['s1'], { by: BY, now: NOW }), /server s1 of update u1 is running \(update\): only a pending server can be dropped/);
  await store.setServerStatus(id, 'success', { step: null });
  const after = await snapshot(store);
  assert.notDeepEqual(now, after);
  await assert.rejects(dropServers(store, 'u1', ['s2', 's1'], { by: BY, now: NOW }), (e: unknown) => e instanceof UsageError && /s1 of update u1 is success/.test((e as Error).message));
  await assert.rejects(dropServers(store, 'u1', ['s3'], { by: BY, now: NOW }), /s3 of update u1 is already excluded \(dropped by ops@admin1\)/);
  // two problems: both named
  await assert.rejects(dropServers(store, 'u1', ['s1', 's3'], { by: BY, now: NOW }), /nothing was dropped:\n {2}server s1[^\n]*\n {2}server s3/);
  assert.deepEqual(await snapshot(store), after);
  assert.equal((await statusOf(store, 'u1', 's2')).status, 'pending');

  // update statuses
  for (const [status, re] of [['running', /it is running/], ['success', /it has ended \(success\)/]] as const) {
    await pendingUpdate(store, `v-${status}`, 2);
    await store.setUpdateStatus(`v-${status}`, 'running');
    if (status === 'success') await store.setUpdateStatus(`v-${status}`, 'success');
    const snap = await snapshot(store);
    await assert.rejects(dropServers(store, `v-${status}`, ['s1'], { by: BY, now: NOW }), (e: unknown) => e instanceof TransitionError && re.test((e as Error).message));
    assert.deepEqual(await snapshot(store), snap);
  }
  await store.createUpdate({ name: 'planning', repo: '/r', branch: 'master', commit: 'c'.repeat(40), configFile: null, settings: fakeSettings, testStopAfter: 0, servers: [{ name: 's1', host: 'h', port: 22, user: 'u', type: 'app' }] });
  await assert.rejects(dropServers(store, 'planning', ['s1'], { by: BY, now: NOW }), /it is planning/);
});

test('drop: a glob drops the pending servers it matches and names the others; one matching no pending server is refused', async (t) => {
  const store = tmpStore(t);
  await pendingUpdate(store, 'u1', 5);
  const s1 = (await statusOf(store, 'u1', 's1')).id;
  await store.setServerStatus(s1, 'running', { step: 'update' });
  await store.setServerStatus(s1, 'success', { step: null });
  const r = await dropServers(store, 'u1', ['s[1-3]', 's3'], { by: BY, now: NOW });
  assert.deepEqual(r.dropped.map((d) => d.name), ['s2', 's3'], 'a name given twice (by a glob and by name) is dropped once');
  assert.deepEqual(r.notPending, [{ name: 's1', update: 'u1', status: 'success' }]);
  await assert.rejects(dropServers(store, 'u1', ['s[1-3]'], { by: BY, now: NOW }), /matches no pending server of update u1 \(it matches s1 success, s2 excluded, s3 excluded\)/);
});

test('drop finds a server in a batch of the split (from the original or from another batch) and refuses one in a running batch', async (t) => {
  const store = tmpStore(t);
  await pendingUpdate(store, 'u1', 6);
  assert.deepEqual(await splitUpdate(store, 'u1', 3), ['u1', 'u1.2', 'u1.3']);
  const r = await dropServers(store, 'u1', ['s4', 's1'], { by: BY, now: NOW });
  assert.deepEqual(r.dropped, [{ name: 's1', update: 'u1', lockHeld: false }, { name: 's4', update: 'u1.2', lockHeld: false }]);
  assert.equal((await statusOf(store, 'u1.2', 's4')).status, 'excluded');
  assert.ok((await store.getEvents('u1.2')).some((e) => e.kind === 'drop' && e.message.startsWith('dropped s4')), 'the batch journals its own drop');
  // named from another batch
  await dropServers(store, 'u1.3', ['s2'], { by: BY, now: NOW });
  assert.equal((await statusOf(store, 'u1', 's2')).status, 'excluded');
  // a batch that runs: refused, naming it
  await store.setUpdateStatus('u1.3', 'running');
  const before = await snapshot(store);
  await assert.rejects(dropServers(store, 'u1', ['s3', 's6'], { by: BY, now: NOW }), /server s6 is in batch u1.3 of u1's split, which is running/);
  assert.deepEqual(await snapshot(store), before);
});
