/**
 * The takeover's decision (rollout/recover.ts) as a table: what was recorded × what is found,
 * for a one-hop server and for each hop of a path through a stepping stone.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hopOf } from '../../src/model/hops.js';
import { FRESH, recoveryOf, restartProgress, restartRecoveryOf, type Found } from '../../src/rollout/recover.js';
import type { ServerRecord } from '../../src/model/records.js';
import type { ServerStep } from '../../src/model/lifecycle.js';
import { serverRecord } from '../support/records.js';

const OLD = 'a'.repeat(40);
const STONE = 'b'.repeat(40);
const TARGET = 'c'.repeat(40);
const OTHER = 'd'.repeat(40);
const path = [{ commit: STONE, version: '1.1.0' }, { commit: TARGET, version: '1.3.0' }];

function server(step: ServerStep, over: Partial<ServerRecord> = {}): ServerRecord {
  return serverRecord(0, { status: 'running', step, fromCommit: OLD, toCommit: TARGET, ...over });
}
const at = (commit: string): Found => ({ ok: true, commit });
const decide = (s: ServerRecord, found: Found) => recoveryOf(s, hopOf(s, TARGET), TARGET, found);

test('one hop: finish at the target, redo at the previous commit, roll back on anything else', () => {
  assert.deepEqual(decide(server('update'), at(TARGET)), { kind: 'finish-hop', skipUpdate: false });
  assert.deepEqual(decide(server('verify'), at(TARGET)), { kind: 'finish-hop', skipUpdate: true });
  assert.deepEqual(decide(server('update'), at(OLD)), { kind: 'redo-hop' });
  assert.equal(decide(server('update'), at(OTHER)).kind, 'rollback');
  assert.equal(decide(server('verify'), { ok: false, error: 'no' }).kind, 'rollback');
  assert.deepEqual(decide(server('rollback', { error: 'why' }), at(TARGET)), { kind: 'rollback', reason: 'why', diagnosed: true });
  assert.deepEqual(decide(server('diagnose', { error: 'why' }), at(TARGET)), { kind: 'rollback', reason: 'why', diagnosed: true }, 'killed while diagnosing: not diagnosed again');
  assert.deepEqual(decide(server('update'), at(OTHER)), { kind: 'rollback', reason: `re-checked after a crash during update: found ${'d'.repeat(12)}`, diagnosed: false });
});

test('nothing had run (no previous commit recorded): begin, skipped at the final target, unreachable when unreadable', () => {
  assert.deepEqual(decide(server('update', { fromCommit: null }), at(OLD)), { kind: 'begin', from: OLD });
  assert.deepEqual(decide(server('update', { fromCommit: null, path }), at(TARGET)), { kind: 'skipped', commit: TARGET });
  assert.equal(decide(server('update', { fromCommit: null }), { ok: false, error: 'x' }).kind, 'unreachable');
});

test('a path: each hop compares with its own (from, to); between hops the stone counts as the commit before the hop', () => {
  // hop 1 (old → stone)
  assert.deepEqual(decide(server('update', { path, hop: 0 }), at(STONE)), { kind: 'finish-hop', skipUpdate: false });
  assert.deepEqual(decide(server('verify', { path, hop: 0 }), at(STONE)), { kind: 'finish-hop', skipUpdate: true });
  assert.deepEqual(decide(server('update', { path, hop: 0 }), at(OLD)), { kind: 'redo-hop' });
  // the target on a server still on hop 1 is not the hop's commit: it cannot be trusted
  assert.equal(decide(server('update', { path, hop: 0 }), at(TARGET)).kind, 'rollback');
  // hop 2 (stone → target), killed right after it began: still at the stone
  assert.deepEqual(decide(server('update', { path, hop: 1 }), at(STONE)), { kind: 'redo-hop' });
  assert.deepEqual(decide(server('restart', { path, hop: 1 }), at(TARGET)), { kind: 'finish-hop', skipUpdate: true });
  // at the server's original commit on hop 2: neither end of the hop
  assert.equal(decide(server('update', { path, hop: 1 }), at(OLD)).kind, 'rollback');
});

test("a server's own turn is recovery from FRESH: begin, skipped at the target, unreachable (worded as a turn, not a crash)", () => {
  const s = server('update', { fromCommit: null });
  const turn = (found: Found) => recoveryOf(FRESH, hopOf(s, TARGET), TARGET, found, 'turn');
  assert.deepEqual(turn(at(OLD)), { kind: 'begin', from: OLD });
  assert.deepEqual(turn(at(TARGET)), { kind: 'skipped', commit: TARGET });
  assert.deepEqual(turn({ ok: false, error: 'x' }), { kind: 'unreachable', reason: 're-check failed, nothing was changed: x' });
  assert.deepEqual(decide(s, { ok: false, error: 'x' }), { kind: 'unreachable', reason: 're-check after a crash failed, nothing was changed: x' });
});

// ---- a rolling restart: the journal says how far its restarts got ----------------------------

const RESTARTS = [
  { name: 'web', command: 'restart web' },
  { name: 'workers', command: 'restart workers' },
];
const row = (command: string, end: { code?: number | null; error?: string | null; open?: boolean } = {}) => ({
  command,
  endedAt: end.open ? null : '2026-01-01T00:00:00.000Z',
  exitCode: end.open ? null : end.code === undefined ? 0 : end.code,
  error: end.error ?? null,
});
const states = (rows: ReturnType<typeof row>[]) => restartProgress(RESTARTS, rows).map((p) => (p.state === 'failed' ? `failed: ${p.why}` : p.state));

test("restartProgress: each restart done, never sent, in flight or cut off (unknown), or failed, from the journal's rows in order", () => {
  assert.deepEqual(states([]), ['not-sent', 'not-sent']);
  assert.deepEqual(states([row('restart web')]), ['done', 'not-sent']);
  assert.deepEqual(states([row('restart web'), row('restart workers')]), ['done', 'done']);
  assert.deepEqual(states([row('restart web', { open: true })]), ['unknown', 'not-sent'], 'its end never recorded: the executor died while it ran');
  assert.deepEqual(states([row('restart web', { code: null, error: 'connection lost: read ECONNRESET' })]), ['unknown', 'not-sent'], 'cut off: it may have run');
  assert.deepEqual(states([row('restart web', { code: null, error: 'timed out after 10m' })]), ['unknown', 'not-sent']);
  assert.deepEqual(states([row('restart web', { code: null, error: 'could not connect: refused' })]), ['not-sent', 'not-sent'], 'never sent');
  assert.deepEqual(states([row('restart web', { code: null, error: 'not run: a command of another executor is still running on the server' })]), ['not-sent', 'not-sent']);
  assert.deepEqual(states([row('restart web', { code: null, error: 'connection lost' }), row('(wait for … to end)'), row('restart web')]), ['done', 'not-sent'], 'cut off, then run again by a live executor: done');
  assert.deepEqual(states([row('restart web', { open: true }), row('restart web', { code: null, error: 'not run: x' })]), ['unknown', 'not-sent'], 'a refusal after an unknown try does not make it unsent');
  assert.deepEqual(states([row('restart web'), row('restart workers', { code: 3, error: 'exit 3' })]), ['done', 'failed: exited 3: exit 3']);
  // two restarts with the same command: the rows are taken in order
  const same = restartProgress([{ name: 'a', command: 'x' }, { name: 'b', command: 'x' }], [row('x')]).map((p) => p.state);
  assert.deepEqual(same, ['done', 'not-sent']);
});

test('restartRecoveryOf: a restart is never skipped, never rolled back, and a restart whose end was never recorded is not run again', () => {
  const r = (step: ServerStep, fromCommit: string | null, found: Found, rows: ReturnType<typeof row>[] = [], error: string | null = null) =>
    restartRecoveryOf(serverRecord(0, { status: 'running', step, fromCommit, toCommit: fromCommit, error }), found, restartProgress(RESTARTS, rows));
  // its turn (FRESH) or a crash before the commit was recorded: no restart was sent
  assert.deepEqual(restartRecoveryOf(FRESH, at(OLD), [], 'turn'), { kind: 'begin', commit: OLD }, 'at any commit: begin, never skipped');
  assert.deepEqual(r('update', null, at(TARGET)), { kind: 'begin', commit: TARGET });
  assert.match((restartRecoveryOf(FRESH, { ok: false, error: 'boom' }, [], 'turn') as { reason: string }).reason, /^re-check failed, nothing was run: boom$/);
  assert.equal(r('update', null, { ok: false, error: 'x' }).kind, 'unreachable');
  // the commit recorded: the journal decides
  assert.deepEqual(r('restart', OLD, at(OLD)), { kind: 'restart', from: 0 }, 'no restart sent yet: run them');
  assert.deepEqual(r('restart', OLD, at(OLD), [row('restart web')]), { kind: 'restart', from: 1 }, 'the first done: the rest');
  assert.deepEqual(r('restart', OLD, at(OLD), [row('restart web'), row('restart workers')]), { kind: 'verify', note: null });
  const inFlight = r('restart', OLD, at(OLD), [row('restart web', { open: true })]);
  assert.equal(inFlight.kind, 'verify', 'in flight when it died: verified, not run twice');
  assert.match((inFlight as { note: string }).note, /^restart web was sent when the executor died and its end was never recorded: it is not run again \(a restart is never run twice blindly\), nor workers after it; verifying$/);
  assert.deepEqual(r('restart', OLD, at(OLD), [row('restart web', { code: 1 })]), { kind: 'failed', reason: 'restart web exited 1', diagnosed: false });
  assert.deepEqual(r('verify', OLD, at(OLD)), { kind: 'verify', note: null }, 'it was verifying: verified');
  assert.deepEqual(r('diagnose', OLD, at(OLD), [], 'restart web exited 1'), { kind: 'failed', reason: 'restart web exited 1', diagnosed: true }, 'killed while diagnosing: not diagnosed again');
  // what it finds is not what it ran when its restart began, or cannot be read: failed, never "rolled back"
  assert.match((r('restart', OLD, at(OTHER)) as { reason: string }).reason, /^re-checked after a crash during restart: it runs d{12}, not a{12} as when its restart began/);
  assert.equal(r('verify', OLD, { ok: false, error: 'gone' }).kind, 'failed');
});
