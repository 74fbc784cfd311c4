import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decide, finalStatus } from '../../src/rollout/decide.js';
import type { ServerStatus } from '../../src/model/lifecycle.js';
import type { ServerRecord, UpdateRecord } from '../../src/model/records.js';
import { serverRecord, updateRecord } from '../support/records.js';

function update(over: Partial<UpdateRecord> = {}, continueAfterRollback = false): UpdateRecord {
  return updateRecord({ settings: { rollback: { enabled: true, continueAfterRollback, commit: null } } as UpdateRecord['settings'], ...over });
}

function servers(...statuses: ServerStatus[]): ServerRecord[] {
  return statuses.map((status, i) => serverRecord(i, { status, step: status === 'running' ? 'verify' : null }));
}

const cases: Array<[string, UpdateRecord, ServerRecord[], string]> = [
  ['first pending server runs', update(), servers('pending', 'pending'), 'run s1'],
  ['skipped and unreachable are passed over', update(), servers('skipped', 'unreachable', 'pending'), 'run s3'],
  ['a server left running is recovered first', update({ pauseRequestedAt: 'x' }), servers('success', 'running', 'pending'), 'recover s2'],
  ['a rolled-back server stops the rollout', update(), servers('rolled-back', 'pending'), 'finish failure'],
  ['continue_after_rollback goes on', update({}, true), servers('rolled-back', 'pending'), 'run s2'],
  ['fatal stops even with continue_after_rollback', update({}, true), servers('fatal', 'pending'), 'finish failure'],
  ['failed (rollback disabled) stops', update({}, true), servers('failed', 'pending'), 'finish failure'],
  ['a pause request pauses before the next server', update({ pauseRequestedAt: 'x' }), servers('success', 'pending'), 'pause'],
  ['a pause request with nothing left finishes instead', update({ pauseRequestedAt: 'x' }), servers('success'), 'finish success'],
  ['test mode pauses once N servers have worked', update({ stopAtWorked: 1 }), servers('success', 'pending'), 'pause'],
  ['skipped servers do not count towards test mode', update({ stopAtWorked: 1 }), servers('skipped', 'pending'), 'run s2'],
  ['test mode counts rolled-back servers as worked', update({ stopAtWorked: 1 }, true), servers('rolled-back', 'pending'), 'pause'],
  ['all at the target: success', update(), servers('success', 'skipped'), 'finish success'],
  ['some not at the target: partial-success', update({}, true), servers('success', 'rolled-back'), 'finish partial-success'],
  ['an unreachable server makes it partial', update(), servers('success', 'unreachable'), 'finish partial-success'],
  ['none at the target: failure', update(), servers('unreachable', 'unreachable'), 'finish failure'],
];

for (const [title, u, s, expected] of cases) {
  test(`decide: ${title}`, () => {
    const d = decide(u, s);
    const got = d.kind === 'run' || d.kind === 'recover' ? `${d.kind} ${d.server.name}` : d.kind === 'finish' ? `finish ${d.status}` : d.kind;
    assert.equal(got, expected);
  });
}

test('decide: a test-mode pause counts the servers from where the limit was set, and names who asked for a pause', () => {
  // resume --stop-after 2 with 1 already finished: pauses on 3 worked, and says 2
  let d = decide(update({ stopAtWorked: 3, stopFromWorked: 1 }), servers('success', 'success', 'success', 'pending'));
  assert.deepEqual(d, { kind: 'pause', reason: 'test mode: 2 servers finished (3 in all)' });
  d = decide(update({ stopAtWorked: 1, stopFromWorked: 0 }), servers('success', 'pending'));
  assert.deepEqual(d, { kind: 'pause', reason: 'test mode: 1 server finished' });
  d = decide(update({ pauseRequestedAt: 'x', pauseRequestedBy: 'ops@bastion' }), servers('success', 'pending'));
  assert.deepEqual(d, { kind: 'pause', reason: 'pause requested by ops@bastion' });
});

test('finalStatus names the servers that are not at the target', () => {
  const d = finalStatus(servers('success', 'rolled-back', 'unreachable'));
  assert.equal(d.status, 'partial-success');
  assert.match(d.reason, /s2 rolled-back, s3 unreachable/);
});

// ---- the failure budget (execution.max_failures) -------------------------------------------

function budgeted(maxFailures: { count: number } | { percent: number }, over: Partial<UpdateRecord> = {}): UpdateRecord {
  const u = update(over, true);
  return { ...u, settings: { ...u.settings, execution: { busyWaitMs: 0, maxFailures } } };
}

const budgetCases: Array<[string, UpdateRecord, ServerRecord[], { used: number; total: number }, string]> = [
  ['within a count: goes on', budgeted({ count: 2 }), servers('rolled-back', 'failed', 'pending'), { used: 2, total: 3 }, 'run s3'],
  ['past a count: stops', budgeted({ count: 1 }), servers('rolled-back', 'failed', 'pending'), { used: 2, total: 3 }, 'finish failure'],
  ['a count of 0: the first failure stops', budgeted({ count: 0 }), servers('rolled-back', 'pending'), { used: 1, total: 2 }, 'finish failure'],
  ['failed no longer stops on its own under a budget', budgeted({ count: 5 }), servers('failed', 'pending'), { used: 1, total: 2 }, 'run s2'],
  ['fatal still stops under a budget', budgeted({ count: 5 }), servers('fatal', 'pending'), { used: 0, total: 2 }, 'finish failure'],
  // 10% of 20 = 2 allowed
  ['a percentage: 2 of 20 at 10% is within', budgeted({ percent: 10 }), servers('rolled-back', 'pending'), { used: 2, total: 20 }, 'run s2'],
  ['a percentage: 3 of 20 at 10% is past it', budgeted({ percent: 10 }), servers('rolled-back', 'pending'), { used: 3, total: 20 }, 'finish failure'],
  // 10% of 15 = 1.5: rounds down, so 2 is past it
  ['a percentage rounds down', budgeted({ percent: 10 }), servers('rolled-back', 'pending'), { used: 2, total: 15 }, 'finish failure'],
  // the group's use counts, not this batch's own servers: a batch with nothing failed stops too
  ['another batch spent the shared budget', budgeted({ count: 1 }, { batchOf: 'u0', name: 'u0.2' }), servers('success', 'pending'), { used: 2, total: 6 }, 'finish failure'],
  ['a server in flight is finished first', budgeted({ count: 0 }), servers('running', 'pending'), { used: 3, total: 3 }, 'recover s1'],
];

for (const [title, u, s, use, expected] of budgetCases) {
  test(`decide with a failure budget: ${title}`, () => {
    const d = decide(u, s, use);
    const got = d.kind === 'run' || d.kind === 'recover' ? `${d.kind} ${d.server.name}` : d.kind === 'finish' ? `finish ${d.status}` : d.kind;
    assert.equal(got, expected);
    if (expected === 'finish failure' && !s.some((x) => x.status === 'fatal')) {
      assert.match((d as { reason: string }).reason, /the failure budget is spent: \d+ servers? rolled back or failed, more than the \d+ allowed \(execution\.max_failures: /);
    }
  });
}

test('without a budget the use is ignored (continue_after_rollback alone never stops on rolled-back servers)', () => {
  const d = decide(update({}, true), servers('rolled-back', 'rolled-back', 'pending'), { used: 2, total: 3 });
  assert.equal(d.kind, 'run');
});
