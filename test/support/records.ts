/**
 * Store records for tests that feed pure functions (decide, upcoming, advice, the text views)
 * without a database: every field at a neutral default, `over` for what the test is about. One
 * place to change when a record gains a field.
 */
import type { ServerRecord, UpdateRecord } from '../../src/model/records.js';

export function updateRecord(over: Partial<UpdateRecord> = {}): UpdateRecord {
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
    settings: {} as UpdateRecord['settings'],
    testStopAfter: 0,
    stopAtWorked: null,
    stopFromWorked: null,
    pauseRequestedAt: null,
    pauseRequestedBy: null,
    reason: null,
    lease: null,
    retryOf: null,
    undoOf: null,
    createdBy: null,
    stepsPromoted: 0,
    bake: null,
    guard: null,
    ...over,
  };
}

/** Server `s<i+1>` at position i; pending, nothing recorded yet. */
export function serverRecord(i: number, over: Partial<ServerRecord> = {}): ServerRecord {
  return {
    id: i + 1,
    updateName: 'u',
    position: i,
    name: `s${i + 1}`,
    host: 'h',
    port: 22,
    user: 'x',
    type: 't',
    types: ['t'],
    status: 'pending',
    step: null,
    fromCommit: null,
    toCommit: null,
    error: null,
    startedAt: null,
    endedAt: null,
    lockHeld: false,
    ...over,
  };
}
