/**
 * `auto`'s check and claim (plan/auto.ts claimAuto) on a real SQLite database: a pending update
 * an auto run planned (and died before starting) is started by the next one; a pending plan a
 * person made is theirs (exit 3, nothing touched), as a paused one is.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { claimAuto } from '../../src/plan/auto.js';
import { planInput, recordPlan } from '../../src/plan/plan.js';
import { systemLiveness } from '../../src/liveness.js';
import { base, ok } from '../config/helpers.js';
import { tempDirFor } from '../helpers/tmp.js';
import { openStore } from '../helpers/db.js';

const COMMIT = 'a'.repeat(40);

test('claimAuto: a pending update auto planned is started again; a person’s pending plan is left to them', async (t) => {
  const store = openStore(join(tempDirFor(t, 'auto-claim-'), 'plan.db'));
  t.after(() => store.close());
  const config = ok(base());
  const now = () => new Date();

  // an auto run that planned, made its update pending, and ended before starting it
  const first = await claimAuto(store, config, COMMIT, null, now(), systemLiveness);
  assert.equal(first.kind, 'plan');
  if (first.kind !== 'plan') return;
  await store.setUpdateStatus(first.input.name, 'pending');
  await store.endAutoRun(first.runId, 'error', 'killed before it started the update');
  const next = await claimAuto(store, config, COMMIT, null, now(), systemLiveness);
  assert.equal(next.kind, 'start');
  assert.deepEqual(next.kind === 'start' ? next.names : [], [first.input.name]);
  if (next.kind === 'start') await store.endAutoRun(next.runId, 'error', 'test');
  await store.setUpdateStatus(first.input.name, 'cancelled', { endedAt: now().toISOString() });

  // a person's plan of the same config: auto leaves it alone
  await recordPlan(store, planInput(config, 'by-hand', COMMIT, null));
  await store.setUpdateStatus('by-hand', 'pending');
  const runsBefore = (await store.autoRuns(config.file)).length;
  const found = await claimAuto(store, config, COMMIT, null, now(), systemLiveness);
  assert.equal(found.kind, 'planned');
  assert.deepEqual(found.kind === 'planned' ? found.updates.map((u) => u.name) : [], ['by-hand']);
  assert.equal((await store.autoRuns(config.file)).length, runsBefore, 'no auto run recorded: nothing touched');
  assert.equal((await store.getUpdate('by-hand')).status, 'pending');
});
