/**
 * output/watch.ts: `status --watch`'s progress line, the live view's `k/N done · f failed · ETA`
 * made from stored servers.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { watchParts, watchProgress } from '../../src/output/watch.js';
import { fitParts } from '../../src/output/fit.js';
import { serverRecord, updateRecord } from '../support/records.js';

const at = (s: number) => new Date(Date.UTC(2026, 11, 1, 10, 0, s)).toISOString();

test('while it runs: the servers it works on, those ended, the failed, and the ETA from those that finished', () => {
  const servers = [
    serverRecord(0, { status: 'success', startedAt: at(0), endedAt: at(10) }),
    serverRecord(1, { status: 'rolled-back', startedAt: at(10), endedAt: at(30) }),
    serverRecord(2, { status: 'running', step: 'verify', startedAt: at(30) }),
    serverRecord(3),
    serverRecord(4, { status: 'skipped' }),
    serverRecord(5, { status: 'unreachable' }),
  ];
  // mean 15 s; s3 has spent 5 of them, s4 has all 15 to go
  assert.equal(watchProgress(updateRecord(), servers, Date.parse(at(35))), '2/4 done · 1 failed · ETA 25s');
});

test('no ETA before a server finished, nor once it is not running; an unreachable server at its turn counts as ended and failed', () => {
  assert.equal(watchProgress(updateRecord(), [serverRecord(0, { status: 'running', startedAt: at(0) }), serverRecord(1)], Date.parse(at(5))), '0/2 done · 0 failed');
  const paused = [
    serverRecord(0, { status: 'success', startedAt: at(0), endedAt: at(10) }),
    serverRecord(1, { status: 'unreachable', startedAt: at(10), endedAt: at(12) }),
    serverRecord(2),
  ];
  assert.equal(watchProgress(updateRecord({ status: 'paused' }), paused, Date.parse(at(20))), '2/3 done · 1 failed');
});

test('the update that was split: the sums over every batch, and the ETA of the batch that ends last (issue 25)', () => {
  const first = [serverRecord(0, { status: 'success', startedAt: at(0), endedAt: at(10) }), serverRecord(1, { status: 'running', startedAt: at(10) })];
  const second = [serverRecord(2, { status: 'rolled-back', startedAt: at(0), endedAt: at(30) }), serverRecord(3), serverRecord(4)];
  const split = [
    { u: updateRecord(), servers: first },
    { u: updateRecord({ name: 'u.2', batchOf: 'u' }), servers: second },
  ];
  // u: 10 s a server, s2 has spent 5 of its 10; u.2: 30 s a server, two left: 60 s, the last to end
  assert.equal(fitParts(watchParts(split, Date.parse(at(15))), null), '2/5 done · 1 failed · ETA 1m');
  // a batch that is not running gives no ETA; the others still do
  split[1] = { ...split[1]!, u: updateRecord({ name: 'u.2', batchOf: 'u', status: 'paused' }) };
  assert.equal(fitParts(watchParts(split, Date.parse(at(15))), null), '2/5 done · 1 failed · ETA 5s');
});
