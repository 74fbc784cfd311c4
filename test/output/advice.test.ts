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

// ---- a server that passed, then failed a re-check (issue 24: the guard, a bake) --------------

const TRIPPED = 'turned unhealthy after it passed verify (the guard re-checked it): exited 7: connection refused';

/** s1 passed, s2 passed, then the guard found s1 unhealthy: it ended last (its trip), the rest pending. */
function tripped(status: ServerStatus, error = TRIPPED): ServerRecord[] {
  const servers = fleet(['success', 'success', 'pending', 'pending']);
  servers[0] = { ...servers[0]!, status, error, endedAt: '2026-01-01T00:00:09.000Z' };
  return servers;
}

function withSettings(over: { budget?: { count: number }; continueAfterRollback?: boolean } = {}): UpdateRecord {
  return updateRecord({
    status: 'paused',
    settings: {
      rollback: { enabled: true, continueAfterRollback: over.continueAfterRollback ?? false, commit: null },
      execution: { busyWaitMs: 0, maxFailures: over.budget ?? null },
    } as UpdateRecord['settings'],
  });
}

test('after a guard trip: the server passed verify and later failed its re-check, not "did not come online"; resume ends the update where a failed server stops it', () => {
  const a = adviceAfterRun(withSettings(), tripped('failed'));
  assert.equal(a.warnings.length, 1);
  assert.equal(
    a.warnings[0],
    "warning: s1 passed verify and later failed its health re-check (the guard's): exited 7: connection refused; it is counted as failed and left as it is, at the new commit (guard.rollback is off)",
  );
  const hint = a.resumeHint ?? '';
  assert.doesNotMatch(hint + a.warnings[0], /did not come online|last server before the pause|rollback is disabled\)/);
  assert.match(hint, /^check the agent's own log on s1 first \(it came online at the new commit, then its health check failed\) and what the re-check said: agent-update (--db \S+ )?logs u --server s1$/m);
  assert.match(hint, /^then: `agent-update (--db \S+ )?resume u` ends the update as failure at once, nothing more runs \(a failed server stops an update without execution\.max_failures \(s1\)\)$/m);
  assert.match(hint, /^or back the update out: `agent-update (--db \S+ )?undo u` puts every server that passed back to its previous commit; s1 itself is not undone \(failed: its state is for a person\): an update of it alone \(include: \[s1\]\) with source\.commit aaaaaaaaaaaa puts that commit back$/m);
});

test('after a guard trip with a failure budget: resume goes on, the server counted against it; spent: resume ends the update', () => {
  const u = withSettings({ budget: { count: 1 }, continueAfterRollback: true });
  const left = adviceAfterRun(u, tripped('failed'), { used: 1, total: 4 });
  assert.match(left.resumeHint ?? '', /^then: `agent-update (--db \S+ )?resume u` goes on with the next servers, s1 counted against the failure budget \(1 of the 1 failures execution\.max_failures 1 allows\)$/m);
  const spent = adviceAfterRun(u, tripped('failed'), { used: 2, total: 4 });
  assert.match(spent.resumeHint ?? '', /ends the update as failure at once: the failure budget is spent \(2 rolled back or failed, 1 allowed by execution\.max_failures 1\)/);
});

test("after a bake's trip with guard.rollback: rolled back and verified; undo leaves nothing of it for a person", () => {
  const bake = 'turned unhealthy after it passed verify (its bake re-checked it): exited 7: starting; rolled back to aaaaaaaaaaaa';
  const a = adviceAfterRun(withSettings({ continueAfterRollback: true }), tripped('rolled-back', bake));
  assert.match(a.warnings[0]!, /^warning: s1 passed verify and later failed its health re-check \(its step's bake's\): exited 7: starting; rolled back to aaaaaaaaaaaa; it was rolled back to aaaaaaaaaaaa and verified there \(guard\.rollback\)$/);
  assert.match(a.resumeHint ?? '', /^then: `agent-update (--db \S+ )?resume u` goes on with the next servers, s1 counted as rolled-back$/m);
  assert.match(a.resumeHint ?? '', /puts every server that passed back to its previous commit$/m);
  // without continue_after_rollback the rolled-back server ends the update on resume
  const stops = adviceAfterRun(withSettings(), tripped('rolled-back', bake));
  assert.match(stops.resumeHint ?? '', /ends the update as failure at once, nothing more runs \(s1 was rolled back and rollback\.continue_after_rollback is false\)/);
  // its rollback failed: a person
  const fatal = adviceAfterRun(withSettings(), tripped('fatal', `${TRIPPED}; rollback to aaaaaaaaaaaa failed: exited 1`));
  assert.match(fatal.warnings[0]!, /; its rollback failed too: it needs a person$/);
  assert.match(fatal.resumeHint ?? '', /s1 is fatal/);
});
