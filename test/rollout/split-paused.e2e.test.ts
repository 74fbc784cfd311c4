/**
 * Canary, then fan out (issue 12, item 4): `split` of a paused update divides the servers still
 * pending, so `start NAME --stop-after 1` → `split NAME --batches N` → `resume NAME NAME.2 …`
 * works; the canary stays with NAME and is not touched again. A running update is not split.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readDeployCount } from '../../src/sim/agent.js';
import { cli, planned, sharedFleet, spawnCli, statusJson } from '../helpers/cli.js';
import { heldInVerify, openGate } from '../helpers/gates.js';
import { waitForStore, withStore } from '../helpers/db.js';

/** One sshd fleet for the file; each test sees its first servers, reset (test/helpers/cli.ts). */
const fleetFor = sharedFleet({ servers: 7 });

const plan = planned;

/** What the database holds, to compare before and after a refused command. */
async function snapshot(db: string): Promise<string> {
  return await withStore(db, async (store) => {
    const updates = await store.listUpdates();
    const servers = [];
    const events = [];
    for (const u of updates) {
      servers.push((await store.getServers(u.name)).map((s) => [s.name, s.status, s.position]));
      events.push((await store.getEvents(u.name)).length);
    }
    return JSON.stringify({ updates: updates.map((u) => [u.name, u.status, u.batchOf]), servers, events });
  });
}

test('canary then fan out: start --stop-after 1, split the paused update in 3, resume all; the canary is not touched again', async (t) => {
  const fleet = await fleetFor(t, { servers: 7 });
  if (!fleet) return;
  // The config's test mode pauses the first start after one server: the canary.
  const { db, name } = await plan(fleet, { test_mode: { stop_after: 1 } });
  const canary = await cli(['start', name], { db });
  assert.equal(canary.code, 3, canary.stdout + canary.stderr);
  assert.equal((await statusJson(db, name)).status, 'paused');
  const canaryJournal = await withStore(db, async (store) => ({
    steps: (await store.getJournal(name, 's1')).map((s) => s.id),
    events: (await store.getEvents(name)).filter((e) => e.serverName === 's1').map((e) => e.message),
  }));
  assert.ok(canaryJournal.steps.length > 0);

  const r = await cli(['split', name, '--batches', '3'], { db });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^u1: s2, s3$/m);
  assert.match(r.stdout, /^u1\.2: s4, s5$/m);
  assert.match(r.stdout, /^u1\.3: s6, s7$/m);
  assert.match(r.stdout, /^u1 also keeps the server not pending: s1 \(success\)$/m);
  const docs = await Promise.all([name, `${name}.2`, `${name}.3`].map((n) => statusJson(db, n)));
  assert.deepEqual(docs.map((d) => d.servers.map((s) => s.name)), [['s1', 's2', 's3'], ['s4', 's5'], ['s6', 's7']]);
  assert.deepEqual(docs.map((d) => d.status), ['paused', 'paused', 'paused']);
  assert.deepEqual(docs.map((d) => d.batchOf), [null, name, name]);
  // The canary's journal and events stayed with the original.
  assert.deepEqual(docs[0]!.servers[0]!.status, 'success');

  // The command split prints continues them all.
  const m = /^continue them in parallel with: agent-update --db (\S+) (resume .*)$/m.exec(r.stdout);
  assert.ok(m, r.stdout);
  assert.equal(m[1], db);
  assert.deepEqual(m[2]!.split(' '), ['resume', name, `${name}.2`, `${name}.3`]);
  const resumed = await cli(m[2]!.split(' '), { db });
  // Test mode stays with the first batch (and applied to the first start only): nothing pauses.
  assert.equal(resumed.code, 0, resumed.stdout + resumed.stderr);

  const after = await Promise.all([name, `${name}.2`, `${name}.3`].map((n) => statusJson(db, n)));
  for (const d of after) assert.equal(d.status, 'success', d.name);
  assert.deepEqual(after.map((d) => d.counts), [{ total: 3, success: 3 }, { total: 2, success: 2 }, { total: 2, success: 2 }]);
  assert.equal(after.reduce((n, d) => n + (d.counts.total ?? 0), 0), 7, 'the counts add up to the planned servers');
  // Every server deployed exactly once: the canary was not updated again.
  for (const s of ['s1', 's2', 's3', 's4', 's5', 's6', 's7']) assert.equal(readDeployCount(fleet.home(s)), 1, s);
  await withStore(db, async (store) => {
    assert.deepEqual((await store.getJournal(name, 's1')).map((s) => s.id), canaryJournal.steps, 'no step run on the canary after the split');
    assert.deepEqual((await store.getEvents(name)).filter((e) => e.serverName === 's1').map((e) => e.message), canaryJournal.events);
    assert.equal((await store.getJournal(`${name}.2`, 's1')).length, 0);
  });
});

test('a batch split from a paused update can also be begun with start; the paused original needs resume', async (t) => {
  const fleet = await fleetFor(t, { servers: 4 });
  if (!fleet) return;
  const { db, name } = await plan(fleet, { test_mode: { stop_after: 0 } });
  assert.equal((await cli(['start', name, '--stop-after', '1'], { db })).code, 3);
  assert.equal((await cli(['split', name, '--batches', '2'], { db })).code, 0);
  const batch = await cli(['start', `${name}.2`], { db });
  assert.equal(batch.code, 0, batch.stdout + batch.stderr);
  assert.equal((await statusJson(db, `${name}.2`)).status, 'success');
  // The original ran before: it is continued with resume, as any paused update.
  const wrong = await cli(['start', name], { db });
  assert.equal(wrong.code, 2);
  assert.match(wrong.stderr, /is paused; continue it with/);
  assert.equal((await cli(['resume', name], { db })).code, 0);
  assert.deepEqual((await statusJson(db, name)).counts, { total: 3, success: 3 }, 's1, the canary, and s2, s3');
});

test('split refuses a running update, and more batches than a paused update has pending servers, writing nothing', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  const { db, name } = await plan(fleet, { test_mode: { stop_after: 0 }, ...heldInVerify() });
  const run = spawnCli(['start', name, '--stop-after', '2'], { db });
  // s1 is held in verify: the update is running.
  await waitForStore(db, 's1 verifying', async (store) => (await store.getServers(name)).some((s) => s.name === 's1' && s.step === 'verify'));
  const before = await snapshot(db);
  const running = await cli(['split', name, '--batches', '2'], { db });
  assert.equal(running.code, 2, running.stdout + running.stderr);
  assert.match(running.stderr, /cannot split update u1: it is running, and only a pending or paused update can be split/);
  assert.equal(await snapshot(db), before, 'nothing written');
  openGate(fleet, 'online');
  const done = await run;
  assert.equal(done.exitCode, 3, String(done.stdout) + String(done.stderr));

  // Paused with one pending server: two batches would leave one empty.
  const paused = await snapshot(db);
  const tooMany = await cli(['split', name, '--batches', '2'], { db });
  assert.equal(tooMany.code, 2);
  assert.match(tooMany.stderr, /cannot split 1 pending server into 2 batches/);
  assert.equal(await snapshot(db), paused, 'nothing written');
  assert.equal((await cli(['resume', name], { db })).code, 0);
  assert.equal((await statusJson(db, name)).status, 'success');
  // An ended update is refused for its status.
  const ended = await cli(['split', name, '--batches', '1'], { db });
  assert.equal(ended.code, 2);
  assert.match(ended.stderr, /cannot split update u1: it is success/);
});

test('split of an update with no pending server left is refused, writing nothing', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  // Every server already at the target: the plan settles them all (skipped), the update stays pending.
  for (const s of ['s1', 's2']) await fleet.setCommit(s, fleet.upstream.commits.good);
  const { db, name } = await plan(fleet);
  const doc = await statusJson(db, name);
  assert.equal(doc.status, 'pending');
  assert.deepEqual(doc.counts, { total: 2, skipped: 2 });
  const before = await snapshot(db);
  const r = await cli(['split', name, '--batches', '1'], { db });
  assert.equal(r.code, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /cannot split update u1: it has no pending server left/);
  assert.equal(await snapshot(db), before);
});
