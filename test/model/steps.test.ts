import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DeliveryStep } from '../../src/config/types.js';
import type { ServerStatus } from '../../src/model/lifecycle.js';
import { serversByStep, stepProgress, stepsOf } from '../../src/model/steps.js';
import { decide } from '../../src/rollout/decide.js';
import { serverRecord, updateRecord } from '../support/records.js';

const step = (size: DeliveryStep['size'], bakeMs = 1000, pauseAfter = false): DeliveryStep => ({ size, bakeMs, pauseAfter });
const through = (steps: DeliveryStep[] | null, total: number) => stepsOf(steps, total).map((s) => s.through);

test('stepsOf: cumulative sizes, percentages rounded up, at least one server a step, a last step to the end', () => {
  const argo = [step({ count: 1 }), step({ count: 5 }), step({ percent: 25 }), step({ percent: 100 })];
  assert.deepEqual(through(argo, 100), [1, 5, 25, 100]);
  // 25% of 12 is 3, below the 5 before it: dropped
  assert.deepEqual(through(argo, 12), [1, 5, 12]);
  assert.deepEqual(through([step({ count: 1 }), step({ percent: 50 }), step({ percent: 100 })], 6), [1, 3, 6]);
  assert.deepEqual(through([step({ percent: 10 })], 6), [1, 6], '10% of 6 rounds up to 1; the list stops short: a last step');
  assert.deepEqual(through([step({ count: 10 })], 4), [4], 'a step past the end is the end');
  assert.deepEqual(through(null, 4), [4]);
  assert.deepEqual(through([step({ count: 1 })], 0), []);
  const plan = stepsOf([step({ count: 1 }, 5000, true), step({ percent: 100 }, 5000, true)], 3);
  assert.deepEqual(plan.map((s) => [s.index, s.bakeMs, s.pauseAfter]), [[1, 5000, true], [2, 0, false]], 'the last step neither bakes nor pauses');
});

const servers = (...statuses: ServerStatus[]) =>
  statuses.map((status, i) => serverRecord(i, { status, startedAt: status === 'pending' ? null : `t${i}`, endedAt: status === 'pending' || status === 'running' ? null : `2026-01-01T00:00:0${i}Z` }));

test('stepProgress counts what the update works on in its turns, not what the plan left alone', () => {
  const s = servers('success', 'rolled-back', 'running', 'pending');
  s.push(serverRecord(4, { status: 'skipped', startedAt: null }), serverRecord(5, { status: 'skipped', startedAt: 't', endedAt: 'x' }));
  assert.deepEqual(stepProgress(s), { total: 5, done: 3 });
});

test('serversByStep: each step’s servers in the order their turns came; a later trip (a new end time) does not move a server to another step', () => {
  const s = servers('success', 'success', 'success', 'pending');
  s[0] = { ...s[0]!, status: 'failed', endedAt: '2026-01-01T00:00:09Z' }; // tripped by the guard after s3 ended
  const plan = stepsOf([step({ count: 1 }), step({ count: 3 })], 4);
  assert.deepEqual(serversByStep(s, plan).map((xs) => xs.map((x) => x.name)), [['s1'], ['s2', 's3'], ['s4']]);
});

test('decide: a step whose servers are done ends (bake, pause or go on) before the next server; once promoted the next runs', () => {
  const settings = { rollback: { enabled: true, continueAfterRollback: false, commit: null }, execution: { steps: [step({ count: 1 }), step({ percent: 100 })] } } as never;
  const u = updateRecord({ settings });
  const s = servers('success', 'pending', 'pending');
  const d = decide(u, s);
  assert.equal(d.kind, 'step-end');
  assert.equal(d.kind === 'step-end' && d.step.index, 1);
  assert.equal(decide({ ...u, stepsPromoted: 1 }, s).kind, 'run');
  assert.equal(decide(u, servers('pending', 'pending', 'pending')).kind, 'run', 'the first step runs');
  assert.equal(decide({ ...u, stepsPromoted: 1 }, servers('success', 'success', 'success')).kind, 'finish', 'the last step ends the update');
  assert.equal(decide({ ...u, pauseRequestedAt: 'x' }, s).kind, 'pause', 'a pause asked comes first');
  // test mode (--stop-after) composes: its pause comes first, and the step ends on the resume
  const canary = decide({ ...u, stopAtWorked: 1, stopFromWorked: 0 }, s);
  assert.equal(canary.kind === 'pause' && canary.reason, 'test mode: 1 server finished');
  assert.equal(decide({ ...u, stopAtWorked: 2, stopFromWorked: 0 }, s).kind, 'step-end', 'a test-mode limit beyond the step: the step ends first');
  // a batch of a split counts its steps over its own servers: the same rule on the batch's records
  assert.equal(decide(u, servers('success', 'pending')).kind, 'step-end');
});

test('serversByStep: the servers whose turn came, in that order (not the order they ended), then the pending ones in plan order', () => {
  const plan = stepsOf([step({ count: 1 }), step({ count: 3 })], 5);
  const at = (i: number) => `2026-01-01T00:00:0${i}Z`;
  const s = [
    // s1's turn came second, s3's first; s1 ended last (a guard's trip long after)
    serverRecord(0, { status: 'failed', startedAt: at(2), endedAt: at(9) }),
    serverRecord(1, { status: 'pending' }),
    serverRecord(2, { status: 'success', startedAt: at(1), endedAt: at(1) }),
    serverRecord(3, { status: 'skipped', startedAt: null }), // left alone by the plan: in no step
    serverRecord(4, { status: 'running', startedAt: at(3) }),
    serverRecord(5, { status: 'pending' }),
  ];
  assert.deepEqual(serversByStep(s, plan).map((x) => x.map((y) => y.name)), [['s3'], ['s1', 's5'], ['s2', 's6']]);
});
