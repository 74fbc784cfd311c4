/**
 * `auto`'s check and claim (plan/auto.ts) with execution.window: an update paused only for its
 * window is `window-paused` (auto resumes it, with a claim), one a person paused is `paused`
 * (theirs), and the two together are a person's.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { windowPauseReason } from '../../src/config/window.js';
import { claimAuto, existingWork } from '../../src/plan/auto.js';
import { planInput, recordPlan } from '../../src/plan/plan.js';
import { systemLiveness } from '../../src/liveness.js';
import { base, ok } from '../config/helpers.js';
import { tempDirFor } from '../helpers/tmp.js';
import { openStore } from '../helpers/db.js';

const COMMIT = 'a'.repeat(40);
const WINDOW = { days: ['mon' as const], hours: '09:00-10:00', timezone: 'UTC' };
const REASON = windowPauseReason(WINDOW, new Date('2025-01-13T09:00:00Z'), 'UTC');

test('existingWork and claimAuto: paused for the window → resumed by auto (with its claim); paused by a person → theirs', async (t) => {
  const store = openStore(join(tempDirFor(t, 'auto-window-'), 'plan.db'));
  t.after(() => store.close());
  const config = ok({ ...base(), execution: { window: { days: ['mon'], hours: '09:00-10:00', timezone: 'UTC' } } });
  const now = new Date();

  await recordPlan(store, planInput(config, 'nightly', COMMIT, null));
  await store.setUpdateStatus('nightly', 'pending');
  await store.setUpdateStatus('nightly', 'running');
  await store.setUpdateStatus('nightly', 'paused', { reason: REASON });
  assert.deepEqual((await store.getUpdate('nightly')).settings.execution?.window, WINDOW, 'the plan stores the window');

  const found = await existingWork(store, config.file, now, systemLiveness);
  assert.equal(found?.kind, 'window-paused');
  const claim = await claimAuto(store, config, COMMIT, null, now, systemLiveness);
  assert.deepEqual(claim.kind === 'start' ? { names: claim.names, resume: claim.resume, takeover: claim.takeover } : claim, { names: ['nightly'], resume: true, takeover: false });
  const runs = await store.autoRuns(config.file);
  assert.deepEqual(runs.map((r) => [r.updateName, r.endedAt]), [['nightly', null]], 'the resume is claimed like a start');
  if (claim.kind === 'start') await store.endAutoRun(claim.runId, 'error', 'test');

  // a batch paused by a person beside it: a person's to look at, nothing resumed
  await recordPlan(store, planInput(config, 'by-hand', COMMIT, null));
  await store.setUpdateStatus('by-hand', 'pending');
  await store.setUpdateStatus('by-hand', 'running');
  await store.setUpdateStatus('by-hand', 'paused', { reason: 'pause requested by op@desk' });
  const both = await claimAuto(store, config, COMMIT, null, now, systemLiveness);
  assert.equal(both.kind, 'paused');
  assert.deepEqual(both.kind === 'paused' ? both.updates.map((u) => u.name).sort() : [], ['by-hand', 'nightly']);
});
