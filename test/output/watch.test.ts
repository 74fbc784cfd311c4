/**
 * output/watch.ts: `status --watch`'s progress line, the live view's `k/N done · f failed · ETA`
 * made from stored servers.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { watchProgress } from '../../src/output/watch.js';
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
