/** Warnings a person should read before typing `resume` (issue 12, item 6). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { adviceAfterRun, rollbacksInARow } from '../../src/output/advice.js';
import type { ServerStatus } from '../../src/model/lifecycle.js';
import type { ServerRecord, UpdateRecord } from '../../src/model/records.js';
import { serverRecord, updateRecord } from '../support/records.js';

function update(status: UpdateRecord['status']): UpdateRecord {
  return updateRecord({ status, repo: '/r', commit: 'b'.repeat(40) });
}

/** Servers s1, s2, … finishing in the order given by `finished` (index into the list), the rest pending. */
function fleet(statuses: ServerStatus[], errors: Record<string, string> = {}): ServerRecord[] {
  return statuses.map((status, i) =>
    serverRecord(i, {
      user: 'op', type: 'app', types: ['app'], status, fromCommit: 'a'.repeat(40), toCommit: 'b'.repeat(40),
      error: errors[`s${i + 1}`] ?? (status === 'rolled-back' ? 'not online' : null),
      startedAt: status === 'pending' ? null : `2026-01-01T00:00:0${i}.000Z`,
      endedAt: status === 'pending' ? null : `2026-01-01T00:00:0${i}.500Z`,
    }),
  );
}

test('a canary rolled back before a test-mode pause: said plainly, with what to check and the logs command, before any resume', () => {
  const servers = fleet(['rolled-back', 'pending', 'pending'], { s1: 'not online at bbbbbbbbbbbb after 5s (health exit 7)' });
  const a = adviceAfterRun(update('paused'), servers);
  assert.equal(a.warnings.length, 1);
  assert.match(a.warnings[0]!, /^warning: the last server before the pause, s1, was rolled back to aaaaaaaaaaaa: not online at bbbbbbbbbbbb/);
  assert.match(a.resumeHint ?? '', /did not come online at the new commit/);
  assert.match(a.resumeHint ?? '', /agent-update (--db \S+ )?logs u --server s1/);
  assert.match(a.resumeHint ?? '', /resume only once you know why.*resume u$/);
});

test('an update command that failed points at its output, not the agent', () => {
  const a = adviceAfterRun(update('paused'), fleet(['success', 'rolled-back', 'pending'], { s2: 'update command exited 128: fatal: bad object' }));
  assert.match(a.resumeHint ?? '', /the update command's output on s2/);
});

test('a paused update whose last server succeeded gets no warning', () => {
  const a = adviceAfterRun(update('paused'), fleet(['rolled-back', 'success', 'pending']));
  assert.deepEqual(a, { warnings: [], resumeHint: null });
});

test('two rollbacks in a row are called out; separated ones are not', () => {
  assert.deepEqual(rollbacksInARow(fleet(['rolled-back', 'success', 'rolled-back', 'success'])), []);
  const runs = rollbacksInARow(fleet(['success', 'rolled-back', 'rolled-back', 'rolled-back', 'success', 'failed', 'rolled-back']));
  assert.deepEqual(runs.map((r) => r.map((s) => s.name)), [['s2', 's3', 's4'], ['s6', 's7']]);
  const a = adviceAfterRun(update('partial-success'), fleet(['success', 'rolled-back', 'rolled-back']));
  assert.equal(a.resumeHint, null, 'an update that ended cannot be resumed');
  assert.match(a.warnings[0]!, /^warning: 2 servers in a row were rolled back \(s2, s3\); rollback\.continue_after_rollback went on past each/);
});
