/**
 * output/closed.ts: the first error on an output marks it closed, once; every later write is
 * dropped and reported done, so nothing fails or waits on it.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { closedWhy, guardOutput, isClosed } from '../../src/output/closed.js';

test('a stream whose write failed (EPIPE) is closed: told once, later writes dropped and called back, nothing thrown', async () => {
  const written: string[] = [];
  let fail = false;
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      if (fail) return cb(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
      written.push(chunk.toString());
      cb();
    },
  });
  const told: string[] = [];
  guardOutput(stream, (e) => told.push(closedWhy(e)));
  guardOutput(stream, () => told.push('twice'));
  stream.write('one\n');
  assert.equal(isClosed(stream), false);
  fail = true;
  stream.write('two\n');
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(told, ['EPIPE'], 'told once, by the first guard');
  assert.equal(isClosed(stream), true);
  const called = await new Promise<boolean>((resolve) => stream.write('three\n', () => resolve(true)));
  assert.equal(called, true, 'a dropped write still calls back');
  assert.equal(stream.write('four\n', 'utf8'), true, 'and never asks to wait for drain');
  assert.deepEqual(written, ['one\n']);
});

test('closedWhy: the error code, else its message', () => {
  assert.equal(closedWhy(Object.assign(new Error('x'), { code: 'EIO' })), 'EIO');
  assert.equal(closedWhy(new Error('gone')), 'gone');
  assert.equal(closedWhy('text'), 'text');
});
