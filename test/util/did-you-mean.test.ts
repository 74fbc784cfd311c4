import assert from 'node:assert/strict';
import { test } from 'node:test';
import { closest, didYouMean } from '../../src/util/did-you-mean.js';

test('closest: a typo, a swapped pair, a case slip and a typed prefix are found; far names are not', () => {
  const names = ['agent-2026-11', 'agent-2026-11.2', 'agent-2026-12', 'canary', 'main'];
  assert.deepEqual(closest('agnet-2026-11', names).slice(0, 1), ['agent-2026-11'], 'two neighbours swapped');
  assert.deepEqual(closest('agent-2026-1', names), ['agent-2026-11', 'agent-2026-12', 'agent-2026-11.2']);
  assert.deepEqual(closest('Canary', names), ['canary']);
  assert.deepEqual(closest('mian', names), ['main']);
  assert.deepEqual(closest('production', names), []);
  assert.deepEqual(closest('x', names), [], 'a one-letter input is not near every short name');
});

test('didYouMean: quoted, "or" before the last, empty when nothing is close', () => {
  assert.equal(didYouMean('mastr', ['master', 'main']), '; did you mean "master"?');
  assert.equal(didYouMean('u', ['u1', 'u2']), '; did you mean "u1" or "u2"?');
  assert.equal(didYouMean('release', ['master']), '');
});
