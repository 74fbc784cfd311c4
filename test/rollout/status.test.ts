import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TransitionError } from '../../src/errors.js';
import { canTransitionUpdate, serverTransition, updateTransition, UPDATE_STATUSES, TERMINAL_UPDATE } from '../../src/model/lifecycle.js';

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
  assert.throws(() => serverTransition('u', 's1', 'success', 'running'), TransitionError);
  assert.throws(() => serverTransition('u', 's1', 'pending', 'success'), TransitionError, 'a server cannot succeed without running');
});
