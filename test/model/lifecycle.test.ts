import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TransitionError } from '../../src/errors.js';
import {
  ACTIVE_SERVER,
  ACTIVE_UPDATE,
  allows,
  AT_TARGET_SERVER,
  BUDGETED_SERVER,
  canTransitionUpdate,
  checkRunnable,
  HISTORY_SERVER,
  SERVER_STEPS,
  serverTransition,
  sqlList,
  STEP_TABLE,
  TERMINAL_UPDATE,
  TOUCHED_SERVER,
  UPDATE_STATUSES,
  updateTransition,
  WORKED_SERVER,
  whatYouCanDo,
  type UpdateCommand,
  type UpdateStatus,
} from '../../src/model/lifecycle.js';

test('the update table: the transitions SPEC.md names are allowed', () => {
  const allowed: Array<[string, string]> = [
    ['planning', 'pending'], ['pending', 'running'], ['running', 'paused'], ['paused', 'running'],
    ['running', 'success'], ['running', 'partial-success'], ['running', 'failure'],
    ['pending', 'cancelled'], ['paused', 'cancelled'],
    // the way out of an update whose executor died with a server in flight (cancelUpdate checks it is dead)
    ['running', 'cancelled'],
  ];
  for (const [from, to] of allowed) assert.ok(canTransitionUpdate(from as never, to as never), `${from} → ${to}`);
});

test('nothing leaves a terminal status', () => {
  assert.deepEqual([...TERMINAL_UPDATE].sort(), ['cancelled', 'failure', 'partial-success', 'success']);
  for (const from of TERMINAL_UPDATE) {
    for (const to of UPDATE_STATUSES) assert.equal(canTransitionUpdate(from, to), false, `${from} → ${to}`);
  }
});

test('refusals are named and say what is allowed', () => {
  assert.throws(() => updateTransition('u', 'success', 'running'), (e: unknown) => e instanceof TransitionError && /ended/.test(e.message));
  assert.throws(() => updateTransition('u', 'running', 'pending'), (e: unknown) => e instanceof TransitionError && /pause u/.test(e.message));
  assert.throws(() => updateTransition('u', 'pending', 'paused'), /split u --batches N/);
  assert.throws(() => serverTransition('u', 's1', 'rolled-back', 'running'), TransitionError);
  assert.throws(() => serverTransition('u', 's1', 'success', 'pending'), TransitionError);
  // a server that passed leaves success only when it turned unhealthy (execution.guard, a bake): failed, or claimed to roll back
  assert.doesNotThrow(() => serverTransition('u', 's1', 'success', 'failed'));
  assert.doesNotThrow(() => serverTransition('u', 's1', 'success', 'running'));
  assert.throws(() => serverTransition('u', 's1', 'pending', 'success'), TransitionError, 'a server cannot succeed without running');
});

test('one table of commands per status: start/resume, split, drop, refresh and pause read it', () => {
  const where = (c: UpdateCommand) => UPDATE_STATUSES.filter((st) => allows(st, c));
  assert.deepEqual(where('start'), ['pending', 'running']);
  assert.deepEqual(where('resume'), ['running', 'paused']);
  assert.deepEqual(where('pause'), ['running']);
  assert.deepEqual(where('split'), ['pending', 'paused']);
  assert.deepEqual(where('drop'), ['pending', 'paused']);
  assert.deepEqual(where('refresh'), ['pending', 'paused']);
  assert.deepEqual(where('cancel'), ['planning', 'pending', 'running', 'paused']);
  // every status that allows a command names it in its refusal text (drop and refresh excepted: named where they apply)
  for (const st of UPDATE_STATUSES) {
    for (const c of ['start', 'resume', 'pause', 'split', 'cancel'] as const) {
      if (!allows(st, c) || st === 'running' || st === 'planning') continue;
      assert.match(whatYouCanDo('u', st), new RegExp(`\`[^\`]*${c} u`), `${st}: ${c}`);
    }
  }
  assert.match(whatYouCanDo('u', 'success'), /Nothing more can run in it/);
});

test('checkRunnable: start from pending, resume from paused, either takes over a running one; the rest refused by name', () => {
  const u = (status: UpdateStatus, over: { batchOf?: string | null; startedAt?: string | null } = {}) => ({ name: 'u', status, batchOf: null, startedAt: null, ...over });
  assert.doesNotThrow(() => checkRunnable(u('pending'), 'start'));
  assert.doesNotThrow(() => checkRunnable(u('paused'), 'resume'));
  assert.doesNotThrow(() => checkRunnable(u('running'), 'start'));
  assert.doesNotThrow(() => checkRunnable(u('running'), 'resume'));
  assert.doesNotThrow(() => checkRunnable(u('paused', { batchOf: 'p' }), 'start'), 'a batch of a paused split that never ran');
  assert.throws(() => checkRunnable(u('paused', { batchOf: 'p', startedAt: 'x' }), 'start'), /continue it with `.*resume u`/);
  assert.throws(() => checkRunnable(u('paused'), 'start'), /is paused; continue it with/);
  assert.throws(() => checkRunnable(u('pending'), 'resume'), /pending, not paused; begin it with/);
  assert.throws(() => checkRunnable(u('success'), 'start'), (e: unknown) => e instanceof TransitionError && /cannot start update u: it has ended \(success\)/.test(e.message));
  assert.throws(() => checkRunnable(u('planning'), 'resume'), /still being planned/);
});

test('the named sets agree with the tables: worked and at-target are terminal, active is not, budgeted is worked', () => {
  for (const st of WORKED_SERVER) assert.ok(!ACTIVE_SERVER.has(st), st);
  for (const st of BUDGETED_SERVER) assert.ok(WORKED_SERVER.has(st), st);
  for (const st of AT_TARGET_SERVER) assert.ok(!ACTIVE_SERVER.has(st) && !BUDGETED_SERVER.has(st), st);
  assert.deepEqual([...ACTIVE_UPDATE].sort(), ['paused', 'pending', 'planning', 'running']);
  assert.deepEqual([...TOUCHED_SERVER].sort(), ['failed', 'fatal', 'rolled-back', 'running', 'success']);
  assert.deepEqual([...HISTORY_SERVER].sort(), ['failed', 'fatal', 'rolled-back', 'running', 'skipped', 'success']);
  assert.equal(sqlList(BUDGETED_SERVER), "'rolled-back', 'failed'");
});

test('the step table: what a takeover reads from each step inside running', () => {
  const rollingBack = SERVER_STEPS.filter((st) => STEP_TABLE[st].rollingBack);
  assert.deepEqual(rollingBack, ['diagnose', 'rollback', 'verify-rollback']);
  assert.deepEqual(SERVER_STEPS.filter((st) => STEP_TABLE[st].updated), ['restart', 'verify']);
  assert.deepEqual(SERVER_STEPS.filter((st) => STEP_TABLE[st].restarted), ['verify']);
});
