/**
 * The loop's own decisions (rollout/rules.ts) as tables: where test mode pauses, and the wait
 * for a server another update holds.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { busyStep, DB_BUSY_POLL_MS, LOCK_POLL_FIRST_MS, LOCK_POLL_MAX_MS, testModeLimit, type Busy } from '../../src/rollout/rules.js';
import { JOURNAL_PHASES, RETRIED_AFTER_LOST } from '../../src/model/lifecycle.js';

test('test mode: a first start takes stop_after, --stop-after sets (0 clears), a resume clears, a takeover keeps', () => {
  const u = (status: 'pending' | 'paused' | 'running', testStopAfter = 0, stopAtWorked: number | null = null, stopFromWorked: number | null = null) => ({
    status,
    testStopAfter,
    stopAtWorked,
    stopFromWorked,
  });
  const rows: Array<[ReturnType<typeof u>, number, number | undefined, { stopAtWorked: number | null; stopFromWorked: number | null }]> = [
    [u('pending', 1), 0, undefined, { stopAtWorked: 1, stopFromWorked: 0 }],
    [u('pending', 0), 0, undefined, { stopAtWorked: null, stopFromWorked: null }],
    [u('pending', 1), 0, 3, { stopAtWorked: 3, stopFromWorked: 0 }],
    [u('paused', 1, 1, 0), 1, undefined, { stopAtWorked: null, stopFromWorked: null }],
    [u('paused', 1, 1, 0), 1, 2, { stopAtWorked: 3, stopFromWorked: 1 }],
    [u('paused', 1, 1, 0), 1, 0, { stopAtWorked: null, stopFromWorked: null }],
    [u('running', 1, 5, 2), 4, undefined, { stopAtWorked: 5, stopFromWorked: 2 }],
    [u('running', 1, 5, 2), 4, 1, { stopAtWorked: 5, stopFromWorked: 4 }],
  ];
  for (const [before, worked, stopAfter, want] of rows) {
    assert.deepEqual(testModeLimit(before, worked, stopAfter), want, `${before.status} worked=${worked} --stop-after=${stopAfter}`);
  }
});

const busy = (over: Partial<Busy> = {}): Busy => ({ serverId: 1, server: 's1', holder: 'B/s1', reason: 'held by B', dead: false, remote: false, ...over });

test('busy: a dead holder pauses at once; a live one is waited for until execution.busy_wait, then pauses saying how long', () => {
  assert.deepEqual(busyStep(busy({ dead: true }), null, 0, 60_000), { kind: 'pause', why: 'held by B' });
  const first = busyStep(busy(), null, 1_000, 60_000);
  assert.deepEqual(first, { kind: 'wait', waiting: { serverId: 1, holder: 'B/s1', since: 1_000, polls: 1 }, announce: true, waitedMs: 0, sleepMs: DB_BUSY_POLL_MS });
  assert.equal(first.kind, 'wait');
  const again = busyStep(busy(), first.kind === 'wait' ? first.waiting : null, 3_000, 60_000);
  assert.deepEqual(again, { kind: 'wait', waiting: { serverId: 1, holder: 'B/s1', since: 1_000, polls: 2 }, announce: false, waitedMs: 2_000, sleepMs: DB_BUSY_POLL_MS });
  assert.deepEqual(busyStep(busy(), { serverId: 1, holder: 'B/s1', since: 1_000, polls: 9 }, 61_000, 60_000), {
    kind: 'pause',
    why: 'held by B; waited 1m for it (execution.busy_wait)',
  });
});

test('busy: a new holder or another server starts over; a lock on the server is looked at less and less often, never past the limit', () => {
  const w = { serverId: 1, holder: 'B/s1', since: 0, polls: 3 };
  const other = busyStep(busy({ serverId: 2 }), w, 5_000, 60_000);
  assert.ok(other.kind === 'wait' && other.announce && other.waiting.since === 5_000 && other.waiting.polls === 1);
  const newHolder = busyStep(busy({ holder: 'C/s1' }), w, 5_000, 60_000);
  assert.ok(newHolder.kind === 'wait' && newHolder.announce && newHolder.waiting.since === 0 && newHolder.waitedMs === 0);
  const sleeps = [0, 1, 2, 3, 4, 5].map((polls) => {
    const r = busyStep(busy({ remote: true }), { ...w, polls }, 1_000, 600_000);
    return r.kind === 'wait' ? r.sleepMs : -1;
  });
  assert.deepEqual(sleeps, [LOCK_POLL_FIRST_MS, 2_000, 4_000, 8_000, LOCK_POLL_MAX_MS, LOCK_POLL_MAX_MS]);
  const nearEnd = busyStep(busy({ remote: true }), { ...w, polls: 5 }, 59_700, 60_000);
  assert.ok(nearEnd.kind === 'wait' && nearEnd.sleepMs === 300, 'the last sleep ends at the limit');
});

test('a lost connection: the commands that change the server (and the re-checks) are run again; checks, prepare, diagnose and unlock are not', () => {
  assert.deepEqual(
    JOURNAL_PHASES.filter((p) => RETRIED_AFTER_LOST.has(p)),
    ['recheck', 'update', 'restart', 'rollback', 'takeover'],
  );
});
