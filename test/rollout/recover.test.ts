/**
 * The takeover's decision (rollout/recover.ts) as a table: what was recorded × what is found,
 * for a one-hop server and for each hop of a path through a stepping stone.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hopOf } from '../../src/model/hops.js';
import { FRESH, recoveryOf, type Found } from '../../src/rollout/recover.js';
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
