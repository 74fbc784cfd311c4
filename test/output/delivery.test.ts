/**
 * Progressive delivery seen everywhere (issue 24, part 6), on plain records: `status` (text and
 * JSON) with the step, the bake's time left and the guard's last round; `plan`'s step split and
 * guard; `plan --show-commands` with the steps, the guard and its re-check command filled in; the
 * live view's bake countdown on the redraw clock and the plain lines of steps, bakes and trips.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DeliveryStep, RolloutSettings } from '../../src/config/types.js';
import type { ServerRecord } from '../../src/model/records.js';
import type { ServerStatus } from '../../src/model/lifecycle.js';
import type { RolloutEvent } from '../../src/rollout/events.js';
import type { PlanChanges } from '../../src/plan/changes.js';
import { showCommands } from '../../src/plan/commands.js';
import { stepsJson, updateJson, updateSummaryJson } from '../../src/output/status-json.js';
import { commandsText, deliveryLines, planText, updateText } from '../../src/output/text.js';
import { stripAnsi } from '../../src/output/fit.js';
import { Reporter } from '../../src/output/reporter.js';
import { fakeSettings, NEW, OLD, OTHER } from '../support/fake-settings.js';
import { serverRecord, updateRecord } from '../support/records.js';
import { Screen } from './screen.js';
import { FakePipe, FakeTty } from '../support/fake-tty.js';

const step = (size: DeliveryStep['size'], bakeMs = 0, pauseAfter = false): DeliveryStep => ({ size, bakeMs, pauseAfter });

function settingsWith(execution: Partial<NonNullable<RolloutSettings['execution']>>, health: Partial<RolloutSettings['agent']['health']> = {}): RolloutSettings {
  return {
    ...fakeSettings,
    agent: { ...fakeSettings.agent, health: { ...fakeSettings.agent.health, ...health } },
    execution: { busyWaitMs: 0, maxFailures: null, ...execution },
  };
}

/** steps [1, 50%, 100%] with a 10m bake, the guard every 30s */
const STEPS = settingsWith({ steps: [step({ count: 1 }, 600_000), step({ percent: 50 }, 600_000, true), step({ percent: 100 }, 600_000)], guard: { intervalMs: 30_000, rollback: false, afterFinishMs: 0 } }, { intervalMs: 5_000 });

/**
 * Servers s1… in plan order, their turns in the order given by `turns` (indexes), each with a
 * status; skipped and unreachable ones were left so by the plan (their turn never came).
 */
function fleet(statuses: ServerStatus[], turns: number[] = statuses.map((_, i) => i)): ServerRecord[] {
  return statuses.map((status, i) => {
    const turn = turns.indexOf(i);
    const begun = status !== 'pending' && status !== 'skipped' && status !== 'unreachable';
    return serverRecord(i, {
      status,
      fromCommit: OLD,
      toCommit: begun ? NEW : null,
      startedAt: begun ? `2026-01-01T00:00:${String(10 + turn).padStart(2, '0')}.000Z` : null,
      endedAt: begun && status !== 'running' ? `2026-01-01T00:00:${String(10 + turn).padStart(2, '0')}.500Z` : null,
    });
  });
}

const noChanges: PlanChanges = { to: NEW, from: null, commits: null, log: [], more: 0, running: [], error: 'not read in this test' };

test('status --json: steps (where the update is, the plan, which servers fall in each step), bake and guard; null without them', () => {
  // six servers worked on, one skipped at plan time (not in the steps); step 1 let go, step 2 baking
  const servers = fleet(['success', 'skipped', 'success', 'success', 'pending', 'pending', 'pending']);
  const u = updateRecord({ settings: STEPS, stepsPromoted: 1, bake: { step: 2, leftMs: 252_000 }, guard: { checkedAt: '2026-01-01T20:31:05.000Z', summary: '3 of 3 healthy' } });
  const doc = updateJson(u, servers);
  assert.deepEqual(doc.steps, {
    current: 2,
    total: 3,
    through: 3,
    servers: 6,
    done: 3,
    plan: [
      { step: 1, through: 1, bakeMs: 600_000, pauseAfter: false, servers: ['s1'] },
      { step: 2, through: 3, bakeMs: 600_000, pauseAfter: true, servers: ['s3', 's4'] },
      { step: 3, through: 6, bakeMs: 0, pauseAfter: false, servers: ['s5', 's6', 's7'] },
    ],
  });
  assert.deepEqual(doc.bake, { step: 2, leftMs: 252_000 });
  assert.deepEqual(doc.guard, { checkedAt: '2026-01-01T20:31:05.000Z', summary: '3 of 3 healthy' });
  // the fields that were there are unchanged, the new ones come last
  assert.deepEqual(Object.keys(doc).slice(-3), ['steps', 'bake', 'guard']);
  // without a name: no servers, so no steps; bake and guard still
  const summary = updateSummaryJson(u, { total: 7 });
  assert.equal('steps' in summary, false);
  assert.deepEqual(summary.bake, { step: 2, leftMs: 252_000 });
  // an update without steps
  // a bake left in an update cancelled meanwhile is not one
  assert.equal(updateJson({ ...u, status: 'cancelled' }, servers).bake, null);
  const plain = updateJson(updateRecord({ settings: settingsWith({ guard: null }) }), servers);
  assert.equal(plain.steps, null);
  assert.equal(plain.bake, null);
  assert.equal(plain.guard, null);
  // finished: the last step; a step's servers are those whose turns came in that order, not the order they ended
  const tripped = fleet(['failed', 'success', 'success', 'success'], [0, 1, 2, 3]);
  tripped[0] = { ...tripped[0]!, endedAt: '2026-01-01T00:09:00.000Z' }; // the guard failed it later
  const two = stepsJson(updateRecord({ status: 'success', settings: settingsWith({ steps: [step({ count: 1 }), step({ percent: 100 })] }), stepsPromoted: 1 }), tripped)!;
  assert.equal(two.current, 2);
  assert.deepEqual(two.plan.map((p) => p.servers), [['s1'], ['s2', 's3', 's4']]);
});

test('status: the step, the bake left, the guard’s last round; a paused bake keeps its time; pause_after_step waits for resume', () => {
  const servers = fleet(['success', 'success', 'success', 'pending', 'pending', 'pending']);
  const now = new Date('2026-01-01T20:31:17.000Z');
  const base = { settings: STEPS, stepsPromoted: 1, guard: { checkedAt: '2026-01-01T20:31:05.000Z', summary: '3 of 3 healthy' } };
  const baking = stripAnsi(updateText(updateRecord({ ...base, bake: { step: 2, leftMs: 252_000 } }), servers));
  assert.match(baking, /^ {2}steps {4}step 2 of 3 \(up to 3 of 6 servers\), 3 done; the steps end at 1, 3, 6$/m);
  assert.match(baking, /^ {11}baking step 2: 4m12s left \(of 10m\)$/m);
  assert.match(baking, /^ {2}guard {4}last round 20:31:05Z \(\d+\S* ago\): 3 of 3 healthy; every 30s, rollback off$/m);
  // the lines come before the server table, which is unchanged
  assert.ok(baking.indexOf('baking step 2') < baking.indexOf('SERVER'));
  assert.deepEqual(
    deliveryLines(updateRecord({ ...base, bake: { step: 2, leftMs: 252_000 } }), servers, now).map(stripAnsi).at(-1),
    '  guard    last round 20:31:05Z (12s ago): 3 of 3 healthy; every 30s, rollback off',
  );
  const paused = stripAnsi(updateText(updateRecord({ ...base, status: 'paused', bake: { step: 2, leftMs: 41_500 } }), servers));
  assert.match(paused, /^ {11}step 2's bake paused with 42s left \(of 10m\): resume bakes the rest$/m);
  const waiting = stripAnsi(updateText(updateRecord({ ...base, status: 'paused', bake: { step: 2, leftMs: 0 } }), servers));
  assert.match(waiting, /^ {11}step 2 baked: it waits for `agent-update (--db \S+ )?resume u` \(pause_after_step\)$/m);
  // resumed from it: the step is let go at once, nothing to say of the bake
  const resumed = stripAnsi(updateText(updateRecord({ ...base, bake: { step: 2, leftMs: 0 } }), servers));
  assert.doesNotMatch(resumed, /baked|baking|bake paused/);
  // an unhealthy round stands out; ended: the round's full time, no bake
  const ended = stripAnsi(
    updateText(updateRecord({ ...base, status: 'partial-success', bake: { step: 2, leftMs: 1000 }, guard: { checkedAt: '2026-01-01T20:31:05.000Z', summary: '2 of 3 healthy; unhealthy: s1' } }), servers),
  );
  assert.match(ended, /^ {2}guard {4}last round 2026-01-01T20:31:05\.000Z: 2 of 3 healthy; unhealthy: s1; every 30s, rollback off$/m);
  assert.doesNotMatch(ended, /baking/);
  // the guard on, no round yet; and nothing of it all without steps and guard
  assert.match(stripAnsi(updateText(updateRecord({ settings: STEPS }), servers)), /^ {2}guard {4}every 30s, rollback off: no round yet$/m);
  const none = stripAnsi(updateText(updateRecord({ settings: settingsWith({ guard: null }) }), servers));
  assert.doesNotMatch(none, /^ {2}(steps|guard) /m);
});

test('plan: the steps the update will take, which servers fall in each (pending, in plan order), each bake and pause; the guard', () => {
  // s2 already at the target and s7 unreachable at plan time: not in the steps
  const servers = fleet(['pending', 'skipped', 'pending', 'pending', 'pending', 'pending', 'unreachable']);
  const text = stripAnsi(planText(updateRecord({ status: 'pending', settings: STEPS }), servers, noChanges));
  const lines = text.split('\n');
  const at = lines.findIndex((l) => l.startsWith('  steps '));
  assert.deepEqual(lines.slice(at, at + 5), [
    '  steps    3 steps over 5 servers (execution.steps), in the order they will be taken:',
    '           step 1 (up to 1 of 5)  s1      then bakes 10m (its servers re-checked every 5s)',
    '           step 2 (up to 3 of 5)  s3, s4  then bakes 10m (its servers re-checked every 5s), then waits for resume (pause_after)',
    '           step 3 (up to 5 of 5)  s5, s6  the last: the update ends with it',
    '  guard    while the update runs, every server that passed is re-checked with the health command every 30s; one found unhealthy pauses the update and counts as failed, left as it is (guard.rollback is off)',
  ]);
  assert.ok(at < lines.findIndex((l) => l.startsWith('SERVER')), 'before the table');
  // no steps, no guard: nothing added
  const plain = stripAnsi(planText(updateRecord({ status: 'pending', settings: settingsWith({ guard: null }) }), servers, noChanges));
  assert.doesNotMatch(plain, /^ {2}(steps|guard) /m);
});

test('plan --show-commands: the steps, the guard, and the re-check a server that passed gets, placeholders filled as the guard sends them', () => {
  const settings = settingsWith(
    { steps: [step({ count: 1 }, 60_000), step({ percent: 100 })], guard: { intervalMs: 30_000, rollback: true, afterFinishMs: 120_000 } },
    { command: 'health --want={commit} --was={previous_commit}', expect: 'v={commit}', intervalMs: 2_000 },
  );
  const servers = [
    { name: 'a', fromCommit: OLD },
    { name: 'b', fromCommit: OLD },
    // a server walking a stepping stone: re-checked at its final target, with the commit it had before the update
    { name: 'c', fromCommit: OLD, path: [{ commit: OTHER, version: '1.1.0' }, { commit: NEW, version: '1.2.0' }] },
  ];
  const doc = showCommands('u', settings, NEW, servers);
  assert.deepEqual(doc.steps, {
    servers: 3,
    intervalMs: 2_000,
    plan: [
      { step: 1, through: 1, bakeMs: 60_000, pauseAfter: false, servers: ['a'] },
      { step: 2, through: 3, bakeMs: 0, pauseAfter: false, servers: ['b', 'c'] },
    ],
  });
  assert.deepEqual(doc.guard, { intervalMs: 30_000, rollback: true, afterFinishMs: 120_000, concurrency: 4 });
  assert.deepEqual(doc.healthRechecks, [{ servers: ['a', 'b', 'c'], command: `health --want='${NEW}' --was='${OLD}'`, expect: `v=${NEW}` }]);
  const text = stripAnsi(commandsText(doc));
  assert.match(text, /^steps \(execution\.steps\): 2 steps over 3 servers, in the order they will be taken:$/m);
  assert.match(text, /^ {2}step 1 \(up to 1 of 3\) {2}a {5}then bakes 1m \(its servers re-checked every 2s\)$/m);
  assert.match(text, /^ {2}step 2 \(up to 3 of 3\) {2}b, c {2}the last: the update ends with it$/m);
  assert.match(text, /^guard \(execution\.guard\): while the update runs, every server that passed is re-checked with the health command every 30s, and for 2m after the last server \(after_finish\); one found unhealthy pauses the update and is rolled back and verified \(guard\.rollback\); 4 servers at a time/m);
  assert.match(text, /^the health re-check of a server that passed \(the guard, every 30s; a step's bake, every 2s while it bakes\), for all 3 servers: a, b, c$/m);
  assert.ok(text.includes(`  health re-check  health --want='${NEW}' --was='${OLD}'    # its output must contain "v=${NEW}"`), text);
  // the groups of commands are what they were: the re-check is beside them
  assert.deepEqual(doc.groups.map((g) => g.servers), [['a', 'b'], ['c']]);
  // from a config (nothing probed): <previous_commit>; no guard and no bake: none of it
  const fromConfig = showCommands(null, settings, NEW, [{ name: 'a', fromCommit: 'unknown' }]);
  assert.equal(fromConfig.healthRechecks![0]!.command, `health --want='${NEW}' --was='<previous_commit>'`);
  const off = showCommands('u', settingsWith({ guard: null }), NEW, servers);
  assert.equal(off.steps, undefined);
  assert.equal(off.guard, undefined);
  assert.equal(off.healthRechecks, undefined);
  assert.doesNotMatch(stripAnsi(commandsText(off)), /health re-check|guard|steps/);
  // plan --show-commands NAME: the steps divide all of the update's servers, the done ones too
  const all = [
    { name: 'a', status: 'success' as const, startedAt: '2026-01-01T00:00:01Z', position: 0 },
    { name: 'b', status: 'pending' as const, startedAt: null, position: 1 },
    { name: 'c', status: 'pending' as const, startedAt: null, position: 2 },
  ];
  const later = showCommands('u', settings, NEW, servers.slice(1), all);
  assert.deepEqual(later.steps?.plan.map((p) => p.servers), [['a'], ['b', 'c']]);
});

// ---- the live view and plain lines ----------------------------------------------------------


const ev = {
  started: (total: number): RolloutEvent => ({ type: 'update-started', update: 'u', takeover: false, resumed: false, pending: total, total, counts: { total, pending: total } }),
  server: (server: string, index: number, total: number): RolloutEvent => ({
    type: 'server-started', update: 'u', server, index, total, host: '10.0.0.1', port: 22, user: 'op', fromCommit: OLD, toCommit: NEW,
  }),
  finished: (server: string): RolloutEvent => ({ type: 'server-finished', update: 'u', server, status: 'success', error: null, durationMs: 3000, fromCommit: OLD, toCommit: NEW, atCommit: NEW }),
  stepStarted: (s: number, through: number): RolloutEvent => ({ type: 'step-started', update: 'u', step: s, steps: 3, through, total: 6 }),
  bakeStarted: (leftMs: number, bakeMs = 300_000): RolloutEvent => ({ type: 'bake-started', update: 'u', step: 1, steps: 3, bakeMs, leftMs, intervalMs: 5000, servers: ['s1'] }),
  bakeCheck: (leftMs: number): RolloutEvent => ({ type: 'bake-check', update: 'u', step: 1, steps: 3, leftMs }),
  bakeEnded: (): RolloutEvent => ({ type: 'bake-ended', update: 'u', step: 1, steps: 3, outcome: 'healthy', leftMs: 0 }),
  promoted: (): RolloutEvent => ({ type: 'step-promoted', update: 'u', step: 1, steps: 3, by: 'bake' }),
  tripped: (source: 'guard' | 'bake', rollback: boolean): RolloutEvent => ({ type: 'guard-tripped', update: 'u', server: 's1', source, output: 'exited 7: connection refused', rollback }),
  guardCheck: (healthy: number, unhealthy: string[]): RolloutEvent => ({ type: 'guard-check', update: 'u', healthy, unhealthy }),
};

test('live view: the bake is a countdown on the redraw clock, set again by each re-check; the step is on the progress line', () => {
  let now = 1_000_000;
  const tty = new FakeTty(100);
  const r = new Reporter({ stream: tty as unknown as NodeJS.WriteStream, quiet: false, live: true, prefix: false, verbose: false, now: () => now, tickMs: 0 });
  const screen = () => new Screen(100).write(tty.out).lines();
  r.onEvent(ev.started(6));
  r.onEvent(ev.stepStarted(1, 1));
  r.onEvent(ev.server('s1', 1, 6));
  r.onEvent(ev.finished('s1'));
  r.onEvent(ev.bakeStarted(300_000));
  assert.deepEqual(screen().slice(-2), ['⠋ baking step 1 of 3: 5m left · re-checking s1', '  step 1/3 · 1/6 done · 0 failed · ETA 15s']);
  // no event for a while: the redraw clock alone counts it down
  now += 47_600;
  r.redraw();
  assert.equal(screen().at(-2), '⠋ baking step 1 of 3: 4m13s left · re-checking s1');
  // a re-check says what the engine counts: the countdown follows it
  r.onEvent(ev.bakeCheck(200_000));
  assert.equal(screen().at(-2), '⠋ baking step 1 of 3: 3m20s left · re-checking s1');
  now += 400_000;
  r.redraw();
  assert.equal(screen().at(-2), '⠋ baking step 1 of 3: 0s left · re-checking s1', 'never below zero');
  r.onEvent(ev.bakeEnded());
  r.onEvent(ev.promoted());
  r.onEvent(ev.stepStarted(2, 3));
  r.onEvent(ev.server('s2', 2, 6));
  const after = screen();
  assert.ok(after.includes('step 1 of 3 begins: up to 1 of 6 servers'), after.join('\n'));
  assert.ok(after.includes('step 1 of 3 baked, every server still healthy: step 2 next'), after.join('\n'));
  assert.ok(!after.some((l) => l.includes('step 1 of 3 done: baking')), 'the live view counts the bake down instead of a line');
  assert.match(after.at(-2)!, /^⠋ s2 10\.0\.0\.1:22 connecting 0s$/);
  assert.match(after.at(-1)!, /^ {2}step 2\/3 · 1\/6 done/);
  r.stop();
});

test('plain lines: a step begins, a bake begins, a step is let go, a guard round with a failure, a trip; a healthy round only with -v', () => {
  for (const verbose of [false, true]) {
    const now = Date.UTC(2026, 0, 1, 20, 31, 5);
    const pipe = new FakePipe(0);
    const r = new Reporter({ stream: pipe as unknown as NodeJS.WriteStream, quiet: false, live: false, prefix: false, verbose, now: () => now, tickMs: 0 });
    r.onEvent(ev.started(6));
    r.onEvent(ev.stepStarted(1, 1));
    r.onEvent(ev.bakeStarted(42_300));
    r.onEvent(ev.bakeCheck(37_000));
    r.onEvent(ev.guardCheck(1, []));
    r.onEvent(ev.bakeEnded());
    r.onEvent(ev.promoted());
    r.onEvent(ev.guardCheck(2, ['s1']));
    r.onEvent(ev.tripped('guard', false));
    r.onEvent(ev.tripped('bake', true));
    r.stop();
    const text = pipe.out.trimEnd().split('\n').map((l) => l.slice(21));
    assert.deepEqual(text, [
      'starting u: 6 of 6 servers to go',
      'step 1 of 3 begins: up to 1 of 6 servers',
      'step 1 of 3 done: baking 43s (the rest of its 5m), re-checking s1 every 5s',
      ...(verbose ? ['  baking step 1 of 3: 37s left, every server healthy', '  guard: 1 healthy'] : []),
      'step 1 of 3 baked, every server still healthy: step 2 next',
      'guard: unhealthy: s1 (2 healthy)',
      'guard tripped: s1 turned unhealthy after it passed verify (the guard re-checked it): exited 7: connection refused; counted as failed, left as it is (guard.rollback is off)',
      "bake tripped: s1 turned unhealthy after it passed verify (its step's bake re-checked it): exited 7: connection refused; rolling it back (guard.rollback)",
    ]);
  }
});
