/**
 * rollout/ahead.ts without a network: which servers are "next" (upcoming), and the bookkeeping
 * of connections and prepares made ahead (Ahead) with fake sessions.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Ahead, prepareAheadOf, upcoming } from '../../src/rollout/ahead.js';
import type { ServerStatus } from '../../src/model/lifecycle.js';
import type { Session } from '../../src/ssh/transport.js';
import type { ServerRecord, UpdateRecord } from '../../src/model/records.js';
import { serverRecord, updateRecord } from '../support/records.js';
import { FakeSession } from '../support/fake-transport.js';

function update(over: Partial<UpdateRecord> = {}, agent: { prepare?: string[] } = {}, execution: { prepareAhead?: number } = {}): UpdateRecord {
  return updateRecord({
    settings: {
      rollback: { enabled: true, continueAfterRollback: false, commit: null },
      agent,
      execution: { busyWaitMs: 0, maxFailures: null, ...execution },
    } as unknown as UpdateRecord['settings'],
    ...over,
  });
}

function servers(...statuses: ServerStatus[]): ServerRecord[] {
  return statuses.map((status, i) => serverRecord(i, { status, host: `h${i + 1}`, step: status === 'running' ? 'update' : null }));
}

const names = (xs: ServerRecord[]) => xs.map((s) => s.name);

test('upcoming: the servers decide() would run next, supposing the current one ends well', () => {
  const all = servers('success', 'running', 'skipped', 'pending', 'pending', 'pending');
  assert.deepEqual(names(upcoming(update(), all, all[1]!, 1)), ['s4']);
  assert.deepEqual(names(upcoming(update(), all, all[1]!, 2)), ['s4', 's5']);
  assert.deepEqual(names(upcoming(update(), all, all[1]!, 10)), ['s4', 's5', 's6']);
  assert.deepEqual(names(upcoming(update(), all, all[1]!, 0)), []);
  // the current one as a pending row (just claimed, read before the claim)
  const before = servers('pending', 'pending', 'pending');
  assert.deepEqual(names(upcoming(update(), before, before[0]!, 2)), ['s2', 's3']);
});

test('upcoming: nothing past a pause asked, the test-mode limit, or a server another update is working on', () => {
  const all = servers('running', 'pending', 'pending', 'pending');
  assert.deepEqual(names(upcoming(update({ pauseRequestedAt: 'now' }), all, all[0]!, 3)), []);
  // test mode: pause once 2 servers finished; the current makes one, the next makes two
  assert.deepEqual(names(upcoming(update({ stopAtWorked: 2 }), all, all[0]!, 3)), ['s2']);
  assert.deepEqual(names(upcoming(update({ stopAtWorked: 1 }), all, all[0]!, 3)), []);
  assert.deepEqual(names(upcoming(update(), all, all[0]!, 3, undefined, (s) => s.name === 's3')), ['s2']);
  assert.deepEqual(names(upcoming(update(), all, all[0]!, 3, undefined, (s) => s.name === 's2')), []);
  // a stopping server ends the update: nothing is next
  const stopped = servers('fatal', 'running', 'pending');
  assert.deepEqual(names(upcoming(update(), stopped, stopped[1]!, 3)), []);
});

test('prepareAheadOf: 0 without agent.prepare, else execution.prepare_ahead (1 in plans made before it)', () => {
  assert.equal(prepareAheadOf(update()), 0);
  assert.equal(prepareAheadOf(update({}, { prepare: [] }, { prepareAhead: 3 })), 0);
  assert.equal(prepareAheadOf(update({}, { prepare: ['git fetch'] })), 1);
  assert.equal(prepareAheadOf(update({}, { prepare: ['git fetch'] }, { prepareAhead: 3 })), 3);
  assert.equal(prepareAheadOf(update({}, { prepare: ['git fetch'] }, { prepareAhead: 0 })), 0);
});

/** A promise with its resolve, to hold a fake connect or prepare where the test wants it. */
function held<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

test('Ahead: a connection made ahead is handed to the server\'s turn once its prepare is done; others are closed at the end', async () => {
  const all = servers('pending', 'pending', 'pending', 'pending');
  const log: string[] = [];
  const sessions = new Map<string, FakeSession>();
  const prepareGate = held<void>();
  const ahead = new Ahead({
    connect: async (s) => {
      log.push(`connect ${s.name}`);
      if (s.name === 's4') throw new Error('refused');
      const session = new FakeSession(s.name);
      sessions.set(s.name, session);
      return session;
    },
    prepare: async (s, session) => {
      log.push(`prepare ${s.name}`);
      await prepareGate.promise;
      log.push(`prepared ${s.name}`);
      return session;
    },
  });
  ahead.plan(1, [all[1]!, all[2]!], 1);
  let taken: Session | null | undefined;
  const take = ahead.take(2).then((s) => (taken = s));
  await new Promise((r) => setImmediate(r));
  assert.equal(taken, undefined, 'the turn waits for the prepare running on it');
  prepareGate.resolve();
  await take;
  assert.equal(taken, sessions.get('s2'));
  assert.deepEqual(log, ['connect s2', 'connect s3', 'prepare s2', 'prepared s2']);
  assert.equal(ahead.preparedOn(2), true);
  assert.equal(ahead.preparedOn(3), false, 'only the first prepare_ahead servers are prepared');
  // the next server begins: s3 is still ahead (not connected twice), s4 is now prepared too; its connect fails
  ahead.plan(2, [all[2]!, all[3]!], 2);
  assert.equal(log.filter((l) => l === 'connect s3').length, 1);
  assert.equal(await ahead.take(4), null, 'a connection that failed ahead is not held against the server: its turn connects');
  assert.equal(await ahead.take(1), null, 'nothing was made ahead for s1');
  await ahead.close();
  assert.equal(sessions.get('s3')!.closed, true, 'the idle connection is closed when the run ends');
  assert.equal(sessions.get('s2')!.closed, false, 'a connection handed over is the turn\'s to close');
  assert.ok(!log.includes('prepare s3'), 's3 was connected ahead before it was among the servers to prepare, and is not prepared twice or late');
});

test('Ahead: a wrong guess is closed (after its prepare), and that server\'s turn waits for it', async () => {
  const all = servers('pending', 'pending', 'pending');
  const prepareGate = held<void>();
  const sessions: FakeSession[] = [];
  const ahead = new Ahead({
    connect: async (s) => {
      const session = new FakeSession(s.name);
      sessions.push(session);
      return session;
    },
    prepare: async (_s, session) => {
      await prepareGate.promise;
      return session;
    },
  });
  ahead.plan(1, [all[1]!], 1);
  await new Promise((r) => setImmediate(r));
  // the guess changes (s1 again, say): s2 is dropped while its prepare runs
  ahead.plan(1, [all[2]!], 0);
  assert.equal(sessions[0]!.closed, false, 'not closed under a running prepare');
  let done = false;
  const turn = ahead.take(2).then((s) => {
    done = true;
    return s;
  });
  await new Promise((r) => setImmediate(r));
  assert.equal(done, false, 's2\'s turn waits until the prepare on it has ended');
  prepareGate.resolve();
  assert.equal(await turn, null, 'and then connects on its own');
  assert.equal(sessions[0]!.closed, true);
  await ahead.close();
  assert.equal(sessions[1]!.closed, true);
});

test('Ahead: the server whose turn begins keeps the connection made for it, even with nothing after it', async () => {
  const all = servers('pending', 'pending');
  const session = new FakeSession('s2');
  const ahead = new Ahead({ connect: async () => session, prepare: async (_s, x) => x });
  ahead.plan(1, [all[1]!], 0);
  // s2 is claimed and work ahead is planned for it (the last server: nothing next) before its run takes the connection
  ahead.plan(2, [], 0);
  assert.equal(await ahead.take(2), session);
  assert.equal(session.closed, false);
  await ahead.close();
  assert.equal(session.closed, false, 'handed over: the run closes it');
});
