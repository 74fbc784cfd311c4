/**
 * rollout/outcome.ts: the exit code a run ends with, and which servers failed in it (by the run's
 * own snapshot, or, for `status --watch`, by end time since the run began).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EXIT } from '../../src/errors.js';
import type { ServerStatus } from '../../src/model/lifecycle.js';
import type { ServerRecord } from '../../src/model/records.js';
import { describeFailed, exitCodeFor, failedInRun, failedSince, worstExit } from '../../src/rollout/outcome.js';

function server(id: number, status: ServerStatus, endedAt: string | null = null): ServerRecord {
  return { id, name: `s${id}`, status, endedAt } as ServerRecord;
}

test('exitCodeFor: success 0; failure and partial-success 1; a clean pause 3; a pause after a failure of the run 5', () => {
  const failed = [server(1, 'rolled-back')];
  assert.equal(exitCodeFor('success'), EXIT.ok);
  assert.equal(exitCodeFor('success', failed), EXIT.ok);
  assert.equal(exitCodeFor('partial-success', failed), EXIT.failure);
  assert.equal(exitCodeFor('failure'), EXIT.failure);
  assert.equal(exitCodeFor('cancelled'), EXIT.failure);
  assert.equal(exitCodeFor('paused'), EXIT.paused);
  assert.equal(exitCodeFor('paused', failed), EXIT.pausedAfterFailure);
  assert.equal(EXIT.pausedAfterFailure, 5);
});

test('failedInRun: what became rolled-back, failed or fatal since the snapshot; not what already was, nor success or unreachable', () => {
  const before = [server(1, 'rolled-back'), server(2, 'pending'), server(3, 'running'), server(4, 'success'), server(5, 'pending'), server(6, 'pending')];
  const after = [server(1, 'rolled-back'), server(2, 'failed'), server(3, 'fatal'), server(4, 'failed'), server(5, 'success'), server(6, 'unreachable')];
  assert.deepEqual(
    failedInRun(before, after).map((s) => s.name),
    ['s2', 's3', 's4'],
  );
  assert.equal(describeFailed(failedInRun(before, after)), 's2 failed, s3 fatal, s4 failed');
});

test('failedSince: the failed servers that ended at or after the run began; none without a run', () => {
  const servers = [
    server(1, 'rolled-back', '2026-12-01T10:00:00.000Z'),
    server(2, 'rolled-back', '2026-12-01T10:05:00.000Z'),
    server(3, 'success', '2026-12-01T10:06:00.000Z'),
    server(4, 'failed', '2026-12-01T10:07:00.000Z'),
  ];
  assert.deepEqual(failedSince(servers, '2026-12-01T10:05:00.000Z').map((s) => s.name), ['s2', 's4']);
  assert.deepEqual(failedSince(servers, null), []);
});

test('worstExit: 1 > 5 > 4 > 3 > 0 (130 above all); 0 for none', () => {
  assert.equal(worstExit([]), 0);
  assert.equal(worstExit([0, 3, 0]), 3);
  assert.equal(worstExit([3, 4]), 4);
  assert.equal(worstExit([4, 5, 3]), 5);
  assert.equal(worstExit([5, 1, 3]), 1);
  assert.equal(worstExit([1, 130]), 130);
});
