/**
 * agent.diagnose (src/rollout/diagnose.ts) without a fleet: the config key, `plan
 * --show-commands`, the output tail and the summary lines, and the executor against a fake
 * transport (the order of the commands, a lost connection, a takeover in step diagnose).
 * test/rollout/diagnose.e2e.test.ts runs it on the real OpenSSH fleet.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { systemLiveness } from '../../src/liveness.js';
import type { RolloutSettings } from '../../src/config/types.js';
import { eventObject } from '../../src/output/ndjson.js';
import { diagnosticsLines } from '../../src/output/reporter.js';
import { serverCommands, showCommands } from '../../src/plan/commands.js';
import { commandsText } from '../../src/output/text.js';
import { answers, outputTail } from '../../src/rollout/diagnose.js';
import type { RolloutEvent } from '../../src/rollout/events.js';
import { runUpdate } from '../../src/rollout/run.js';
import type { CommandEnded, ExecResult } from '../../src/ssh/transport.js';
import { makeTempDir } from '../helpers/tmp.js';
import { base, ok, problems, variant } from '../config/helpers.js';
import { fakeSettings, NEW, OLD } from '../support/fake-settings.js';
import { FakeTransport } from '../support/fake-transport.js';
import { openStore } from '../helpers/db.js';
import { virtualClock } from './engine-support.js';

// ---- the config key ------------------------------------------------------------------------

test('agent.diagnose: a list takes the default timeout, a mapping its own; absent, null or [] is none', () => {
  const list = ok(variant((c) => void (c.agent.diagnose = ['tail -n 50 ~/agent/log/agent.log', 'systemctl status agent --no-pager'])));
  assert.deepEqual(list.agent.diagnose, { commands: ['tail -n 50 ~/agent/log/agent.log', 'systemctl status agent --no-pager'], timeoutMs: 30_000 });
  const mapping = ok(variant((c) => void (c.agent.diagnose = { commands: ['journalctl -u agent -n 50 --no-pager', 'echo {commit} {previous_commit}'], timeout: '5s' })));
  assert.deepEqual(mapping.agent.diagnose, { commands: ['journalctl -u agent -n 50 --no-pager', 'echo {commit} {previous_commit}'], timeoutMs: 5_000 });
  assert.equal('diagnose' in ok(base()).agent, false, 'absent: no key at all (plans stored before it look the same)');
  assert.equal('diagnose' in ok(variant((c) => void (c.agent.diagnose = null))).agent, false);
  assert.equal('diagnose' in ok(variant((c) => void (c.agent.diagnose = []))).agent, false, 'an empty list turns it off');
  assert.equal('diagnose' in ok(variant((c) => void (c.agent.diagnose = { commands: [], timeout: '5s' }))).agent, false);
});

const BAD: Array<[what: string, value: unknown, path: string, message: RegExp]> = [
  ['a string', 'tail log', 'agent.diagnose', /must be a list of commands \(tail -n 50 ~\/agent\/log\/agent\.log\), or a mapping \{commands: \[\.\.\.\], timeout: 30s\}, got the string "tail log"/],
  ['a number', 3, 'agent.diagnose', /must be a list of commands .*got the number 3/],
  ['an item not a string', ['uptime', { run: 'x' }], 'agent.diagnose[1]', /shell command .* got a mapping/],
  ['an empty item', ['uptime', '  '], 'agent.diagnose[1]', /must not be empty/],
  ['an unknown placeholder', ['tail {logfile}'], 'agent.diagnose[0]', /unknown placeholder \{logfile\}/],
  ['a placeholder where it cannot be quoted', ['echo $(cat {commit})'], 'agent.diagnose[0]', /\{commit\}/],
  ['an unknown key of the mapping', { commands: ['uptime'], timout: '5s' }, 'agent.diagnose.timout', /did you mean timeout\?/],
  ['a mapping without commands', { timeout: '5s' }, 'agent.diagnose.commands', /is required/],
  ['commands not a list', { commands: 'uptime' }, 'agent.diagnose.commands', /must be a list of commands .*got the string "uptime"/],
  ['a bad timeout', { commands: ['uptime'], timeout: 'a while' }, 'agent.diagnose.timeout', /bad duration/],
  ['a zero timeout', { commands: ['uptime'], timeout: 0 }, 'agent.diagnose.timeout', /longer than 0/],
  ['an item of the mapping wrong', { commands: ['uptime', 7] }, 'agent.diagnose.commands[1]', /YAML read it as the number 7/],
];
for (const [what, value, path, message] of BAD) {
  test(`agent.diagnose refused: ${what}`, () => {
    const found = problems(variant((c) => void (c.agent.diagnose = value)));
    const p = found.find((x) => x.path === path);
    assert.ok(p, `a problem at ${path}; got ${found.map((x) => `${x.path}: ${x.message}`).join('; ')}`);
    assert.match(p.message, message);
  });
}

test('diagnose at the top level belongs under agent', () => {
  const found = problems(variant((c) => void (c.diagnose = ['uptime'])));
  assert.match(found.find((p) => p.path === 'diagnose')?.message ?? '', /belongs under agent/);
});

// ---- plan --show-commands ------------------------------------------------------------------

const withDiagnose = (over: Partial<RolloutSettings['agent']> = {}, rollback = fakeSettings.rollback): RolloutSettings => ({
  ...fakeSettings,
  agent: { ...fakeSettings.agent, diagnose: { commands: ['cat log', 'echo "at {commit} from {previous_commit}"'], timeoutMs: 5_000 }, ...over },
  rollback,
});

test('plan --show-commands: the diagnose commands after the health check and before the rollback, with the values of the target that failed', () => {
  const shown = serverCommands(withDiagnose(), NEW, OLD);
  const steps = shown.map((c) => c.step);
  const first = steps.indexOf('diagnose');
  assert.deepEqual(shown.filter((c) => c.step === 'diagnose'), [
    { step: 'diagnose', kind: 'diagnose', command: 'cat log', timeoutMs: 5_000 },
    { step: 'diagnose', kind: 'diagnose', command: `echo "at ${NEW} from ${OLD}"`, timeoutMs: 5_000 },
  ]);
  assert.equal(steps[first - 1], 'verify');
  assert.equal(steps[first + 2], 'rollback');
  // rollback disabled: still diagnosed, then nothing
  const noRollback = serverCommands(withDiagnose({}, { ...fakeSettings.rollback, enabled: false }), NEW, OLD);
  assert.deepEqual(noRollback.slice(-2).map((c) => c.step), ['diagnose', 'diagnose']);
  // none configured: none shown
  assert.equal(serverCommands(fakeSettings, NEW, OLD).some((c) => c.step === 'diagnose'), false);
  const text = commandsText(showCommands('u', withDiagnose(), NEW, [{ name: 's1', fromCommit: OLD }]));
  assert.match(text, /on a failure, first \(agent\.diagnose\):\n\s+diagnose\s+cat log\s+# only on a failure, before the rollback; at most 5s/);
});

// ---- output ---------------------------------------------------------------------------------

test('outputTail: stdout then stderr, the last lines, the end of a long one kept', () => {
  assert.equal(outputTail({ stdout: 'a\nb\n', stderr: 'oops\n' }), 'a\nb\noops');
  assert.equal(outputTail({ stdout: '', stderr: '' }), '');
  const many = Array.from({ length: 30 }, (_, i) => `line ${i + 1}`).join('\n');
  assert.equal(outputTail({ stdout: many, stderr: '' }, 3), '…\nline 28\nline 29\nline 30');
  const long = outputTail({ stdout: 'x'.repeat(5000) + 'END', stderr: '' }, 20, 100);
  assert.equal(long.length, 100);
  assert.ok(long.startsWith('…') && long.endsWith('END'));
});

test('answers: a lost or refused connection is not an answer; a failure or a timeout is', () => {
  const r = (ended: CommandEnded, error: string | null): Pick<ExecResult, 'ended' | 'error'> => ({ ended, error });
  assert.equal(answers(r('exit', null)), true);
  assert.equal(answers(r('timeout', 'killed at its timeout of 1s')), true);
  assert.equal(answers(r('not-sent', 'could not connect: connect ECONNREFUSED')), false);
  assert.equal(answers(r('lost', 'connection lost: socket closed')), false);
  assert.equal(answers(r('lost', 'no answer from the server within 5s')), false);
  assert.equal(answers(r('not-sent', 'not connected: connection lost: socket closed')), false);
  assert.equal(answers(r('refused', 'not run: {commit} is inside a $(…) command substitution')), true);
});

const diag = (over: Partial<Extract<RolloutEvent, { type: 'diagnose' }>>): Extract<RolloutEvent, { type: 'diagnose' }> => ({
  type: 'diagnose', update: 'u', server: 's1', command: 'cat log', ran: true, code: 0, timedOut: false, error: null, durationMs: 5, output: '', ...over,
});

test('the summary: each command, how it ended, the last lines terminal-safe, and where the rest is', () => {
  const lines = diagnosticsLines('u', [
    {
      server: 's1',
      status: 'rolled-back',
      runs: [
        diag({ output: Array.from({ length: 15 }, (_, i) => `l${i + 1}`).join('\n') + '\n\x1b[2Jgone' }),
        diag({ command: 'sleep 60', code: null, timedOut: true, error: 'killed at its timeout of 1s' }),
        diag({ command: 'uptime', ran: false, code: null, error: 'not run: the server does not answer (connection lost)' }),
      ],
    },
  ]).map((l) => l.replace(/\x1b\[[0-9;]*m/g, '')); // eslint-disable-line no-control-regex
  assert.match(lines[0]!, /^diagnostics of s1 \(rolled-back\), run after it failed \(agent\.diagnose\):$/);
  assert.equal(lines[1], '  $ cat log  → exit 0');
  assert.equal(lines[2], '    | …', 'more lines than the summary shows: cut at the start');
  assert.equal(lines[3], '    | l7');
  assert.equal(lines[12], '    | \\e[2Jgone', 'a server cannot drive the terminal');
  assert.equal(lines[13], '  $ sleep 60  → killed at its timeout of 1s');
  assert.equal(lines[14], '  $ uptime  → not run: the server does not answer (connection lost)');
  assert.match(lines[15]!, /the whole output: .*logs u --server s1$/);
});

test('NDJSON: a diagnose event with its fields, the output terminal-safe in the line', () => {
  const o = eventObject(diag({ output: 'BROKEN=1' }), new Date('2026-01-01T00:00:00Z'));
  assert.deepEqual(o, { v: 1, type: 'diagnose', at: '2026-01-01T00:00:00.000Z', update: 'u', server: 's1', command: 'cat log', ran: true, code: 0, timedOut: false, error: null, durationMs: 5, output: 'BROKEN=1' });
});

// ---- the executor, against a fake transport ------------------------------------------------


async function setup(t: TestContext, settings: RolloutSettings) {
  const dir = makeTempDir('agent-update-diagnose-');
  // the store stamps its times with the engine's clock
  const clock = virtualClock();
  const store = openStore(join(dir, 'p.db'), clock);
  // the target never comes online; each command logged with the timeout it was given
  const fake = new FakeTransport({ broken: [NEW], record: (command, opts) => ({ command, timeoutMs: opts?.timeoutMs }) });
  t.after(async () => {
    await store.close();
    fake.close();
    rmSync(dir, { recursive: true, force: true });
  });
  await store.createUpdate({ name: 'u', repo: '/r', branch: 'master', commit: NEW, configFile: null, settings, testStopAfter: 0, servers: [{ name: 's1', host: 's1', port: 22, user: 'u', type: 'app' }] });
  for (const s of await store.getServers('u')) await store.setProbedCommit(s.id, OLD);
  await store.setUpdateStatus('u', 'pending');
  const events: RolloutEvent[] = [];
  const deps = { store, transport: fake, clock, liveness: systemLiveness, emit: (e: RolloutEvent) => void events.push(e) };
  return { store, fake, events, deps, s1: fake.add('s1', OLD) };
}

const DIAGNOSE = { commands: ['diag one', 'diag two {commit}'], timeoutMs: 4_000 };
const withDiag = (rollback = fakeSettings.rollback): RolloutSettings => ({ ...fakeSettings, agent: { ...fakeSettings.agent, diagnose: DIAGNOSE }, rollback });

test('a target that never comes online: diagnosed after the last health check, before the rollback, each with its own timeout', async (t) => {
  const { store, events, deps, s1 } = await setup(t, withDiag());
  const r = await runUpdate(deps, 'u', { mode: 'start' });
  assert.equal(r.status, 'failure');
  const server = (await store.getServers('u'))[0]!;
  assert.equal(server.status, 'rolled-back');
  assert.match(server.error ?? '', /not online/, 'the reason is the failure, not anything diagnose did');
  const log = s1.log.map((c) => c.command);
  const at = log.indexOf('diag one');
  assert.deepEqual(log.slice(at - 1, at + 3), ['health', 'diag one', `diag two ${NEW}`, `reset ${OLD}`]);
  assert.deepEqual(s1.log.slice(at, at + 2).map((c) => c.timeoutMs), [4_000, 4_000]);
  const steps = (await store.getJournal('u', 's1')).filter((x) => x.phase === 'diagnose');
  assert.deepEqual(steps.map((x) => [x.command, x.exitCode, x.stdout]), [
    ['diag one', 0, `diag one saw ${NEW}\n`],
    [`diag two ${NEW}`, 0, `diag two ${NEW} saw ${NEW}\n`],
  ]);
  const diagnosed = events.filter((e) => e.type === 'diagnose');
  assert.deepEqual(diagnosed.map((e) => [e.command, e.ran, e.output]), [['diag one', true, `diag one saw ${NEW}`], [`diag two ${NEW}`, true, `diag two ${NEW} saw ${NEW}`]]);
  assert.ok(events.some((e) => e.type === 'server-step' && e.step === 'diagnose'));
});

test('a diagnose command that fails or is killed at its timeout changes nothing: the next runs, the server is rolled back', async (t) => {
  const { store, fake, deps, s1 } = await setup(t, withDiag());
  fake.answer = (c) =>
    c === 'diag one' ? { code: null, stdout: 'partial', stderr: '', timedOut: true, ended: 'timeout', error: 'killed at its timeout of 4s', durationMs: 4000 } : c.startsWith('diag two') ? { code: 3, stdout: '', stderr: 'no such file', timedOut: false, ended: 'exit', error: null, durationMs: 1 } : undefined;
  await runUpdate(deps, 'u', { mode: 'start' });
  assert.equal((await store.getServers('u'))[0]!.status, 'rolled-back');
  assert.equal(s1.commit, OLD);
  assert.deepEqual((await store.getJournal('u', 's1')).filter((x) => x.phase === 'diagnose').map((x) => [x.exitCode, x.error]), [[null, 'killed at its timeout of 4s'], [3, null]]);
});

test('with rollback disabled the server is diagnosed, then left failed', async (t) => {
  const { store, deps, s1 } = await setup(t, withDiag({ ...fakeSettings.rollback, enabled: false }));
  await runUpdate(deps, 'u', { mode: 'start' });
  assert.equal((await store.getServers('u'))[0]!.status, 'failed');
  assert.deepEqual(s1.log.slice(-2).map((c) => c.command), ['diag one', `diag two ${NEW}`]);
  assert.equal(s1.commit, NEW);
});

test('a server that stops answering during diagnose: the rest is not sent, an event says so, the rollback goes on', async (t) => {
  const { store, fake, events, deps, s1 } = await setup(t, withDiag());
  fake.answer = (c) => (c === 'diag one' ? { code: null, stdout: '', stderr: '', timedOut: false, ended: 'lost', error: 'connection lost: socket closed', durationMs: 2 } : undefined);
  await runUpdate(deps, 'u', { mode: 'start' });
  assert.equal((await store.getServers('u'))[0]!.status, 'rolled-back', 'the rollback reconnected');
  const log = s1.log.map((c) => c.command);
  assert.equal(log.filter((c) => c === 'diag one').length, 1, 'not retried');
  assert.equal(log.some((c) => c.startsWith('diag two')), false, 'the rest is not sent');
  assert.ok((await store.getEvents('u')).some((e) => e.kind === 'diagnose' && /diagnose stopped: the server does not answer \(connection lost: socket closed\); 1 command not run/.test(e.message)));
  const two = events.find((e) => e.type === 'diagnose' && e.command.startsWith('diag two'));
  assert.ok(two && two.type === 'diagnose' && !two.ran && /^not run: the server does not answer/.test(two.error ?? ''));
});

test('takeover of a server left in step diagnose: no second diagnose, the rollback decision goes on with the reason kept', async (t) => {
  const { store, deps, s1 } = await setup(t, withDiag());
  s1.commit = NEW;
  s1.online = false;
  await store.setUpdateStatus('u', 'running');
  const s = (await store.getServers('u'))[0]!;
  await store.setServerStatus(s.id, 'running', { step: 'diagnose', fromCommit: OLD, toCommit: NEW, lockHeld: true, error: 'not online at bbbbbbbbbbbb after 300ms' });
  await runUpdate(deps, 'u', { mode: 'start' });
  const after = (await store.getServers('u'))[0]!;
  assert.equal(after.status, 'rolled-back');
  assert.equal(after.error, 'not online at bbbbbbbbbbbb after 300ms');
  assert.deepEqual(s1.log.map((c) => c.command), ['version', `reset ${OLD}`, 'version', 'restart', 'health']);
});
