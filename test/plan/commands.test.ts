/**
 * `plan --show-commands` (src/plan/commands.ts): each step's commands with the values of that
 * phase, quoted where they stand; servers with the same commands grouped; what cannot be
 * expanded shown as not run. The expected commands are written out by hand here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RolloutSettings } from '../../src/config/types.js';
import { PREVIOUS_MARK, serverCommands, showCommands } from '../../src/plan/commands.js';
import { commandsText } from '../../src/output/text.js';
import { stripAnsi } from '../../src/output/fit.js';
import { fakeSettings, NEW, OLD, OTHER } from '../support/fake-settings.js';

const settings: RolloutSettings = {
  ...fakeSettings,
  source: { repo: '/srv/agent repo', branch: 'master', commit: NEW },
  agent: {
    ...fakeSettings.agent,
    update: ['fetch {repo} {branch}', 'reset {commit}', 'echo "from {previous_commit} to {commit}" >> log', "echo 'at {commit}'"],
    restart: { web: 'restart web {commit}', rq: 'restart rq' },
    health: { command: 'health --want={commit}', expect: 'v={commit}', timeoutMs: 300, intervalMs: 50 },
  },
  restart: ['web', 'rq'],
};

test('each step with the values of its phase: the target forward, the previous commit back', () => {
  assert.deepEqual(serverCommands(settings, NEW, OLD), [
    { step: 'recheck', kind: 'version', command: 'version', expect: null },
    { step: 'update', kind: 'update', command: "fetch '/srv/agent repo' master" },
    { step: 'update', kind: 'update', command: `reset ${NEW}` },
    { step: 'update', kind: 'update', command: `echo "from ${OLD} to ${NEW}" >> log` },
    { step: 'update', kind: 'update', command: `echo 'at ${NEW}'` },
    { step: 'update', kind: 'version', command: 'version', expect: NEW },
    { step: 'restart', kind: 'restart', name: 'web', command: `restart web ${NEW}` },
    { step: 'restart', kind: 'restart', name: 'rq', command: 'restart rq' },
    { step: 'verify', kind: 'health', command: `health --want='${NEW}'`, expect: `v=${NEW}` },
    { step: 'rollback', kind: 'update', command: "fetch '/srv/agent repo' master" },
    { step: 'rollback', kind: 'update', command: `reset ${OLD}` },
    { step: 'rollback', kind: 'update', command: `echo "from ${NEW} to ${OLD}" >> log` },
    { step: 'rollback', kind: 'update', command: `echo 'at ${OLD}'` },
    { step: 'rollback', kind: 'version', command: 'version', expect: OLD },
    { step: 'rollback', kind: 'restart', name: 'web', command: `restart web ${OLD}` },
    { step: 'rollback', kind: 'restart', name: 'rq', command: 'restart rq' },
    { step: 'verify-rollback', kind: 'health', command: `health --want='${OLD}'`, expect: `v=${OLD}` },
  ]);
});

test('an unknown previous commit is shown as <previous_commit>, quoted as a commit would be', () => {
  const glued = { ...settings, agent: { ...settings.agent, update: ['reset {commit}', 'tag x{previous_commit}', 'echo "$v{previous_commit}"'] } };
  const shown = serverCommands(glued, NEW, 'unknown').map((c) => c.command);
  // as a commit: bare where it is a word of its own, quoted where glued to something
  assert.deepEqual(serverCommands(glued, NEW, OLD).slice(1, 4).map((c) => c.command), [`reset ${NEW}`, `tag x'${OLD}'`, `echo "$v"'${OLD}'""`]);
  assert.deepEqual(shown.slice(1, 4), [`reset ${NEW}`, `tag x'${PREVIOUS_MARK}'`, `echo "$v"'${PREVIOUS_MARK}'""`]);
  assert.ok(shown.includes(`reset ${PREVIOUS_MARK}`), 'the rollback resets to the previous commit');
  assert.ok(!shown.some((c) => c?.includes('AGENTUPDATE')), 'the stand-in never shows');
});

test('rollback.commit is the rollback target for every server; rollback disabled shows no rollback', () => {
  const fixed = { ...settings, rollback: { ...settings.rollback, commit: OTHER } };
  const back = serverCommands(fixed, NEW, OLD).filter((c) => c.step === 'rollback');
  assert.equal(back.find((c) => c.kind === 'version')?.expect, OTHER);
  assert.equal(back[1]?.command, `reset ${OTHER}`);
  const off = { ...settings, rollback: { ...settings.rollback, enabled: false } };
  assert.deepEqual([...new Set(serverCommands(off, NEW, OLD).map((c) => c.step))], ['recheck', 'update', 'restart', 'verify']);
  // no previous commit and no rollback.commit: the rollback cannot happen, and says so
  const none = serverCommands(settings, NEW, null);
  assert.equal(none.at(-1)?.step, 'rollback');
  assert.equal(none.at(-1)?.command, null);
  assert.match(none.at(-1)?.error ?? '', /no previous commit is known/);
});

test('servers with the same commands are one group; a placeholder that cannot be expanded is shown not run', () => {
  const servers = [
    { name: 'a', fromCommit: OLD },
    { name: 'b', fromCommit: OTHER },
    { name: 'c', fromCommit: OLD },
  ];
  const doc = showCommands('u', settings, NEW, servers);
  assert.deepEqual(
    doc.groups.map((g) => [g.servers, g.fromCommit]),
    [
      [['a', 'c'], OLD],
      [['b'], OTHER],
    ],
  );
  // the commands no longer depend on the server: one group, no commit named
  const same = { ...settings, agent: { ...settings.agent, update: ['reset {commit}'] }, rollback: { ...settings.rollback, commit: OTHER } };
  assert.deepEqual(showCommands('u', same, NEW, servers).groups.map((g) => [g.servers, g.fromCommit]), [[['a', 'b', 'c'], null]]);
  // a plan stored by an older version with a placeholder inside $(…): the executor fails that step unsent
  const stored = { ...settings, agent: { ...settings.agent, update: ['x=$(echo {commit})'] } };
  const c = serverCommands(stored, NEW, OLD).find((x) => x.step === 'update' && x.kind === 'update');
  assert.equal(c?.command, null);
  assert.match(c?.error ?? '', /^not run: placeholder \{commit\} is inside a \$\(…\) command substitution/);
});

test('agent.prepare is shown first, with the values of the update (unless execution.prepare_ahead is 0)', () => {
  const prepared: RolloutSettings = {
    ...settings,
    agent: { ...settings.agent, prepare: ['fetch {repo} {commit}', 'echo {previous_commit}'] },
    execution: { busyWaitMs: 0, maxFailures: null, prepareAhead: 2 },
  };
  const shown = serverCommands(prepared, NEW, OLD);
  assert.deepEqual(shown.slice(0, 3), [
    { step: 'prepare', kind: 'prepare', command: `fetch '/srv/agent repo' ${NEW}` },
    { step: 'prepare', kind: 'prepare', command: `echo ${OLD}` },
    { step: 'recheck', kind: 'version', command: 'version', expect: null },
  ]);
  assert.deepEqual(shown.slice(2), serverCommands(settings, NEW, OLD), 'the rest as without it');
  const off = serverCommands({ ...prepared, execution: { busyWaitMs: 0, maxFailures: null, prepareAhead: 0 } }, NEW, OLD);
  assert.deepEqual(off, serverCommands(settings, NEW, OLD));
});

test('the plan hooks are listed after the commands, a url by its scheme and host only', () => {
  const hooked: RolloutSettings = {
    ...settings,
    hooks: [
      { run: './notify.sh', timeoutMs: 10_000, required: false, events: ['update-started', 'finished'] },
      { url: 'https://hooks.example.com/services/${HOOK_TOKEN}?k=s3cret', timeoutMs: 5_000, required: true, events: ['server-fatal'] },
    ],
  };
  const doc = showCommands('u', hooked, NEW, [{ name: 's1', fromCommit: OLD }]);
  assert.deepEqual(doc.hooks, [
    { hook: 0, target: 'run: ./notify.sh', events: ['update-started', 'finished'], timeoutMs: 10_000, required: false },
    { hook: 1, target: 'url: https://hooks.example.com/…', events: ['server-fatal'], timeoutMs: 5_000, required: true },
  ]);
  const text = stripAnsi(commandsText(doc));
  assert.match(text, /\nhooks, run on this machine \(never on the servers\)[^\n]*\n {2}hooks\[0\] run: \.\/notify\.sh {2}on update-started, finished; at most 10s\n {2}hooks\[1\] url: https:\/\/hooks\.example\.com\/… {2}on server-fatal; at most 5s; required: a failure pauses the update$/);
  assert.doesNotMatch(text, /s3cret|HOOK_TOKEN/);
  assert.equal('hooks' in showCommands('u', settings, NEW, [{ name: 's1', fromCommit: OLD }]), false, 'no hooks: no field');
});
