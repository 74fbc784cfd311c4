import assert from 'node:assert/strict';
import { test } from 'node:test';
import { balancedBatches, batchName } from '../../src/rollout/split.js';
import { UsageError } from '../../src/errors.js';

test('balancedBatches: sizes differ by at most one, none empty, order and membership kept', () => {
  for (let items = 1; items <= 30; items++) {
    for (let n = 1; n <= items; n++) {
      const list = Array.from({ length: items }, (_, i) => i);
      const batches = balancedBatches(list, n);
      assert.equal(batches.length, n);
      const sizes = batches.map((b) => b.length);
      assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1, `${items}/${n}: ${sizes}`);
      assert.ok(sizes.every((s) => s > 0));
      assert.deepEqual(batches.flat(), list);
    }
  }
  assert.deepEqual(balancedBatches([1, 2, 3, 4, 5, 6, 7], 3).map((b) => b.length), [3, 2, 2]);
});

test('balancedBatches refuses an empty batch and a bad count', () => {
  assert.throws(() => balancedBatches([1, 2], 3), (e: unknown) => e instanceof UsageError && /empty/.test(e.message));
  assert.throws(() => balancedBatches([1, 2], 0), UsageError);
  assert.throws(() => balancedBatches([], 1), UsageError);
});

test('batch names are NAME, NAME.2 … NAME.N', () => {
  assert.deepEqual([0, 1, 2].map((i) => batchName('x', i)), ['x', 'x.2', 'x.3']);
});
