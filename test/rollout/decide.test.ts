import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decide, finalStatus } from '../../src/rollout/decide.js';
import type { ServerStatus } from '../../src/rollout/status.js';
import type { ServerRecord, UpdateRecord } from '../../src/store/store.js';

function update(over: Partial<UpdateRecord> = {}, continueAfterRollback = false): UpdateRecord {
  return {
    name: 'u',
    status: 'running',
    createdAt: '',
    startedAt: null,
    endedAt: null,
    repo: 'r',
    branch: 'master',
    commit: 'a'.repeat(40),
    batchOf: null,
    configFile: null,
    settings: { rollback: { enabled: true, continueAfterRollback, commit: null } } as UpdateRecord['settings'],
    testStopAfter: 0,
    pauseAtWorked: null,
    pauseRequestedAt: null,
    reason: null,
    lease: null,
    ...over,
  };
}

function servers(...statuses: ServerStatus[]): ServerRecord[] {
  return statuses.map((status, i) => ({
    id: i + 1,
    updateName: 'u',
    position: i,
    name: `s${i + 1}`,
    host: 'h',
    port: 22,
    user: 'x',
    type: 't',
    types: ['t'],
    status,
    step: status === 'running' ? 'verify' : null,
    fromCommit: null,
    toCommit: null,
    error: null,
    startedAt: null,
    endedAt: null,
    lockHeld: false,
  }));
}

const cases: Array<[string, UpdateRecord, ServerRecord[], string]> = [
  ['first pending server runs', update(), servers('pending', 'pending'), 'run s1'],
  ['skipped and unreachable are passed over', update(), servers('skipped', 'unreachable', 'pending'), 'run s3'],
  ['a server left running is recovered first', update({ pauseRequestedAt: 'x' }), servers('success', 'running', 'pending'), 'recover s2'],
  ['a rolled-back server stops the rollout', update(), servers('rolled-back', 'pending'), 'finish failure'],
  ['continue_after_rollback goes on', update({}, true), servers('rolled-back', 'pending'), 'run s2'],
  ['fatal stops even with continue_after_rollback', update({}, true), servers('fatal', 'pending'), 'finish failure'],
  ['failed (rollback disabled) stops', update({}, true), servers('failed', 'pending'), 'finish failure'],
  ['a pause request pauses before the next server', update({ pauseRequestedAt: 'x' }), servers('success', 'pending'), 'pause'],
  ['a pause request with nothing left finishes instead', update({ pauseRequestedAt: 'x' }), servers('success'), 'finish success'],
  ['test mode pauses once N servers have worked', update({ pauseAtWorked: 1 }), servers('success', 'pending'), 'pause'],
  ['skipped servers do not count towards test mode', update({ pauseAtWorked: 1 }), servers('skipped', 'pending'), 'run s2'],
  ['test mode counts rolled-back servers as worked', update({ pauseAtWorked: 1 }, true), servers('rolled-back', 'pending'), 'pause'],
  ['all at the target: success', update(), servers('success', 'skipped'), 'finish success'],
  ['some not at the target: partial-success', update({}, true), servers('success', 'rolled-back'), 'finish partial-success'],
  ['an unreachable server makes it partial', update(), servers('success', 'unreachable'), 'finish partial-success'],
  ['none at the target: failure', update(), servers('unreachable', 'unreachable'), 'finish failure'],
];

for (const [title, u, s, expected] of cases) {
  test(`decide: ${title}`, () => {
    const d = decide(u, s);
    const got = d.kind === 'run' || d.kind === 'recover' ? `${d.kind} ${d.server.name}` : d.kind === 'finish' ? `finish ${d.status}` : d.kind;
    assert.equal(got, expected);
  });
}

test('finalStatus names the servers that are not at the target', () => {
  const d = finalStatus(servers('success', 'rolled-back', 'unreachable'));
  assert.equal(d.status, 'partial-success');
  assert.match(d.reason, /s2 rolled-back, s3 unreachable/);
});
