/**
 * `forget NAME` (plan/forget.ts) on a real SQLite database, and through the CLI: an update that
 * never ran is removed with everything recorded for it (its name free again, one `forgotten`
 * event left); one that ran, or is being planned by a live auto run, is refused (exit 2) with
 * nothing changed.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { forgetUpdate } from '../../src/plan/forget.js';
import { claimAuto } from '../../src/plan/auto.js';
import { planInput, recordPlan } from '../../src/plan/plan.js';
import { splitUpdate } from '../../src/rollout/split.js';
import { systemLiveness } from '../../src/liveness.js';
import { base, ok } from '../config/helpers.js';
import { tempDirFor } from '../helpers/tmp.js';
import { contents, openStore } from '../helpers/db.js';
import { cli } from '../helpers/cli.js';

const COMMIT = 'a'.repeat(40);

async function setup(t: Parameters<typeof tempDirFor>[0]) {
  const db = join(tempDirFor(t, 'forget-'), 'plan.db');
  const store = openStore(db);
  t.after(() => store.close());
  const config = ok(base());
  const plan = async (name: string) => {
    await recordPlan(store, planInput(config, name, COMMIT, null));
    const [s] = await store.getServers(name);
    await store.endCommand(await store.beginCommand(s!, 'probe', 'version'), { code: 0, stdout: COMMIT, stderr: '' } as never);
  };
  return { db, store, config, plan };
}

test('forget: pending, cancelled before it began, and planning (a killed plan) are removed, their names free; a forgotten event is left', async (t) => {
  const { store, plan } = await setup(t);
  await plan('pend');
  await store.setUpdateStatus('pend', 'pending');
  await plan('canc');
  await store.setUpdateStatus('canc', 'pending');
  await store.setUpdateStatus('canc', 'cancelled', { endedAt: new Date().toISOString() });
  await plan('left-planning');
  for (const name of ['pend', 'canc', 'left-planning']) {
    const gone = await forgetUpdate(store, name, new Date(), systemLiveness, 'op@host');
    assert.deepEqual(gone.map((g) => g.name), [name]);
    assert.equal(await store.hasUpdate(name), false, name);
    assert.deepEqual(await store.getServers(name), [], name);
    assert.deepEqual(await store.getJournal(name), [], name);
    const events = await store.getEvents(name);
    assert.equal(events.length, 1, `${name}: the forgotten event alone`);
    assert.equal(events[0]!.kind, 'forgotten');
    assert.equal(events[0]!.actor, 'op@host');
    assert.match(events[0]!.message, new RegExp(`update ${name} \\(\\w+, \\d+ servers?, target aaaaaaaaaaaa.*forgotten by op@host; it never ran`));
  }
});

test('forget: a pending update that was split goes with its batches, all or nothing', async (t) => {
  const { store, plan } = await setup(t);
  await plan('big');
  await store.setUpdateStatus('big', 'pending');
  const names = await splitUpdate(store, 'big', 2);
  assert.deepEqual(names, ['big', 'big.2']);
  const gone = await forgetUpdate(store, 'big', new Date(), systemLiveness);
  assert.deepEqual(gone.map((g) => g.name), ['big', 'big.2']);
  assert.deepEqual((await store.listUpdates()).map((u) => u.name), []);
});

test('forget: an update that started (even cancelled since), or one a live auto run is planning, is refused with nothing changed', async (t) => {
  const { store, plan, config } = await setup(t);
  await plan('ran');
  await store.setUpdateStatus('ran', 'pending');
  await store.setUpdateStatus('ran', 'running', { startedAt: new Date().toISOString() });
  await store.setUpdateStatus('ran', 'paused', { reason: 'test' });
  const before = await contents(store);
  await assert.rejects(forgetUpdate(store, 'ran', new Date(), systemLiveness), (e: Error & { exitCode?: number }) => {
    assert.equal(e.exitCode, 2);
    assert.match(e.message, /cannot forget update ran: it ran \(paused\), and its record is the audit trail of that work;.*Nothing was changed\. To end it so that nothing more runs: `.*cancel ran`/);
    return true;
  });
  await store.setUpdateStatus('ran', 'cancelled', { endedAt: new Date().toISOString() });
  const cancelled = await contents(store);
  await assert.rejects(forgetUpdate(store, 'ran', new Date(), systemLiveness), /cannot forget update ran: it ran \(cancelled\)/);
  assert.equal(await contents(store), cancelled);
  assert.notEqual(before, cancelled);

  // a plan this very process (alive) is making as `auto`
  const claim = await claimAuto(store, config, COMMIT, null, new Date(), systemLiveness);
  assert.equal(claim.kind, 'plan');
  if (claim.kind !== 'plan') return;
  const held = await contents(store);
  await assert.rejects(forgetUpdate(store, claim.input.name, new Date(), systemLiveness), /an auto run \(pid \d+ on .*\) is planning it now; nothing was changed/);
  assert.equal(await contents(store), held);
  await assert.rejects(forgetUpdate(store, 'nope', new Date(), systemLiveness), /nope/);
});

test('the CLI: forget NAME prints what it removed and frees the name; a started update exits 2', async (t) => {
  const { db, store, plan } = await setup(t);
  await plan('p1');
  await store.setUpdateStatus('p1', 'pending');
  await plan('r1');
  await store.setUpdateStatus('r1', 'pending');
  await store.setUpdateStatus('r1', 'running', { startedAt: new Date().toISOString() });
  await store.close();
  const r = await cli(['forget', 'p1'], { db });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /forgot p1 \(pending, 2 servers; it never ran\)/);
  assert.match(r.stdout, /the name p1 is free again/);
  const j = await cli(['--json', 'forget', 'r1'], { db });
  assert.equal(j.code, 2, j.stdout + j.stderr);
  assert.match(j.stderr, /cannot forget update r1: it ran \(running\)/);
});
