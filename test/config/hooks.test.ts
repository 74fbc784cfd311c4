/**
 * `hooks:` (config/check-hooks.ts): what a valid list becomes, and every problem of each key
 * reported with the file, the line and the key path.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfigText } from '../../src/config/load.js';
import { HOOK_EVENT_NAMES, hookEventOf, hookWants } from '../../src/config/hook-events.js';
import { expandUrl, shownUrl } from '../../src/config/hook-url.js';
import { configError } from './helpers.js';

const FILE = '/srv/rollouts/fleet.yaml';

/** A valid config, then `hooks` (YAML text from its first line, `hooks:` on line 11). */
function withHooks(hooks: string): string {
  return `source:
  repo: https://github.com/example/agent
  branch: master
servers:
  - { name: app1, host: 10.0.0.11 }
agent:
  version_command: git rev-parse HEAD
  update:
    - git fetch {repo} {branch}
  health: { command: curl -fsS http://127.0.0.1/version }
${hooks}`;
}

function load(hooks: string) {
  return loadConfigText(withHooks(hooks), FILE, { defaults: null, home: '/h', user: 'u', exists: () => true });
}

test('hooks: commands and webhooks, with their defaults', () => {
  const c = load(`hooks:
  - run: ./notify.sh
  - url: https://hooks.example.com/services/\${HOOK_TOKEN}
    timeout: 3s
    required: true
    events: [server-fatal, guard-tripped, command]
  - run: cat >> events.ndjson
    events: all
`);
  assert.deepEqual(c.hooks, [
    { run: './notify.sh', timeoutMs: 10_000, required: false, events: [...HOOK_EVENT_NAMES] },
    { url: 'https://hooks.example.com/services/${HOOK_TOKEN}', timeoutMs: 3_000, required: true, events: ['server-fatal', 'guard-tripped', 'command'] },
    { run: 'cat >> events.ndjson', timeoutMs: 10_000, required: false, events: ['all'] },
  ]);
  // braces that are no placeholder of agent commands are the command's own
  assert.equal(load("hooks:\n  - run: jq -c '{update}' | ./post.sh\n").hooks[0]!.run, "jq -c '{update}' | ./post.sh");
  assert.deepEqual(load('hooks: []\n').hooks, []);
  assert.deepEqual(load('hooks:\n').hooks, []);
  assert.deepEqual(load('').hooks, []);
  // the names in HOOK_EVENTS are what a config error lists: the default is all of them
  assert.deepEqual(HOOK_EVENT_NAMES, ['update-started', 'step-baked', 'server-failed', 'server-rolled-back', 'server-fatal', 'guard-tripped', 'paused', 'finished']);
});

/** [what, the hooks: text, key path, line, message]: hooks: is line 11, its first entry line 12. */
const CASES: Array<[string, string, string, number, RegExp]> = [
  ['hooks not a list', 'hooks: ./notify.sh\n', 'hooks', 11, /must be a list of hooks \(- run: \.\/notify\.sh, or - url: /],
  ['an entry that is a string', 'hooks:\n  - ./notify.sh\n', 'hooks[0]', 12, /must be a mapping with run: or url:, got the string "\.\/notify\.sh"; write - run: "\.\/notify\.sh"/],
  ['neither run nor url', 'hooks:\n  - timeout: 5s\n', 'hooks[0]', 12, /needs run: \(a command run here\) or url: \(a webhook\)/],
  ['both run and url', 'hooks:\n  - run: ./x\n    url: https://h/x\n', 'hooks[0]', 12, /has both run: and url:/],
  ['unknown key near one', 'hooks:\n  - run: ./x\n    timout: 5s\n', 'hooks[0].timout', 13, /unknown key; did you mean timeout\?/],
  ['unknown key far from all', 'hooks:\n  - run: ./x\n    zzzzzz: 1\n', 'hooks[0].zzzzzz', 13, /unknown key; expected one of: run, url, timeout, required, events/],
  ['run empty', 'hooks:\n  - run: "  "\n', 'hooks[0].run', 12, /must not be empty/],
  ['run not a string', 'hooks:\n  - run: [a, b]\n', 'hooks[0].run', 12, /must be a shell command \(a string\), got a list/],
  ['run with a placeholder', "hooks:\n  - run: echo {commit}\n", 'hooks[0].run', 12, /placeholders are not expanded in a hook \(\{commit\}\): read the event's JSON on stdin/],
  ['url not a URL', 'hooks:\n  - url: hooks.example.com/x\n', 'hooks[0].url', 12, /is not a URL/],
  ['url of another scheme', 'hooks:\n  - url: ftp://example.com/x\n', 'hooks[0].url', 12, /must be an http:\/\/ or https:\/\/ URL, got ftp:/],
  ['url with a password', 'hooks:\n  - url: https://bot:s3cret@example.com/x\n', 'hooks[0].url', 12, /must not hold a password \(it would be stored in the plan\)/],
  ['url with a bad ${}', 'hooks:\n  - url: https://example.com/${1TOKEN}\n', 'hooks[0].url', 12, /\$\{1TOKEN\} is not an environment variable name/],
  ['timeout not a duration', 'hooks:\n  - run: ./x\n    timeout: soon\n', 'hooks[0].timeout', 13, /bad duration/],
  ['timeout zero', 'hooks:\n  - run: ./x\n    timeout: 0\n', 'hooks[0].timeout', 13, /must be longer than 0/],
  ['required not a boolean', 'hooks:\n  - run: ./x\n    required: yes please\n', 'hooks[0].required', 13, /must be true or false, got the string "yes please"/],
  ['events empty', 'hooks:\n  - run: ./x\n    events: []\n', 'hooks[0].events', 13, /must list at least one event; leave it out for the hook events \(update-started, step-baked/],
  ['an unknown event near one', 'hooks:\n  - run: ./x\n    events:\n      - paused\n      - server-fail\n', 'hooks[0].events[1]', 15, /unknown event "server-fail"; did you mean "server-failed"\?/],
  ['an unknown event far from all', 'hooks:\n  - run: ./x\n    events: [deploy]\n', 'hooks[0].events[0]', 13, /unknown event "deploy" \(the hook events are update-started, step-baked, .* finished; also all, or any event type of the --json stream\)/],
  ['one event, unknown', 'hooks:\n  - run: ./x\n    events: finish\n', 'hooks[0].events', 13, /unknown event "finish"; did you mean "finished"\?/],
  ['an event listed twice', 'hooks:\n  - run: ./x\n    events: [paused, finished, paused]\n', 'hooks[0].events[2]', 13, /"paused" is listed twice/],
  ['an event that is not a string', 'hooks:\n  - run: ./x\n    events: [3]\n', 'hooks[0].events[0]', 13, /must be an event name \(a string\)/],
  ['hook-failed', 'hooks:\n  - run: ./x\n    events: [hook-failed]\n', 'hooks[0].events[0]', 13, /never called on hook-failed: a failing hook would be called about its own failure/],
  ['the second hook', 'hooks:\n  - run: ./x\n  - url: https://example.com/x\n    required: 1\n', 'hooks[1].required', 14, /must be true or false/],
  ['a hook key at the top level', 'run: ./x\n', 'run', 11, /unknown key; run belongs under an entry of hooks: \(- run: …\)/],
];

test('each problem of hooks: names the file, the line and the key path', async (t) => {
  for (const [what, hooks, keyPath, line, message] of CASES) {
    await t.test(what, () => {
      const e = configError(() => load(hooks));
      const hit = e.problems.find((p) => p.path === keyPath && message.test(p.message));
      assert.ok(hit, `no problem at ${keyPath} matching ${message}; got:\n${e.message}`);
      assert.equal(hit.line, line, `the line of ${keyPath}`);
      // and the message an operator reads: file:line: key path: what is wrong
      assert.ok(e.message.split('\n').some((l) => l === `${FILE}:${line}: ${keyPath}: ${hit.message}`), e.message);
    });
  }
});

test('hookEventOf: the hook event an event is; hookWants: whether a hook listening to some names is called', () => {
  assert.equal(hookEventOf({ type: 'update-started' }), 'update-started');
  assert.equal(hookEventOf({ type: 'step-promoted' }), 'step-baked');
  assert.equal(hookEventOf({ type: 'server-finished', status: 'fatal' }), 'server-fatal');
  assert.equal(hookEventOf({ type: 'server-finished', status: 'rolled-back' }), 'server-rolled-back');
  assert.equal(hookEventOf({ type: 'server-finished', status: 'failed' }), 'server-failed');
  assert.equal(hookEventOf({ type: 'server-finished', status: 'success' }), null);
  assert.equal(hookEventOf({ type: 'guard-tripped' }), 'guard-tripped');
  assert.equal(hookEventOf({ type: 'update-finished', status: 'paused' }), 'paused');
  for (const status of ['success', 'partial-success', 'failure']) assert.equal(hookEventOf({ type: 'update-finished', status }), 'finished');
  assert.equal(hookEventOf({ type: 'command' }), null);

  const fatal = { type: 'server-finished', status: 'fatal' };
  assert.equal(hookWants(HOOK_EVENT_NAMES, fatal), true);
  assert.equal(hookWants(HOOK_EVENT_NAMES, { type: 'server-finished', status: 'success' }), false);
  assert.equal(hookWants(HOOK_EVENT_NAMES, { type: 'command' }), false);
  assert.equal(hookWants(['server-finished'], { type: 'server-finished', status: 'success' }), true);
  assert.equal(hookWants(['paused'], { type: 'update-finished', status: 'failure' }), false);
  assert.equal(hookWants(['all'], { type: 'command' }), true);
  assert.equal(hookWants(['all'], { type: 'hook-failed' }), false, 'never a hook-failed');
});

test('a url is shown by its scheme and host alone, and its ${NAME}s are read from the environment', () => {
  assert.equal(shownUrl('https://hooks.slack.com/services/T0/B0/XXXX'), 'https://hooks.slack.com/…');
  assert.equal(shownUrl('https://bot:pw@example.com:8443/x?token=s3cret'), 'https://example.com:8443/…');
  assert.equal(shownUrl('http://127.0.0.1:9/'), 'http://127.0.0.1:9/');
  assert.equal(shownUrl('http://127.0.0.1:9'), 'http://127.0.0.1:9');
  assert.equal(shownUrl('not a url'), '<url>');
  assert.deepEqual(expandUrl('https://h/${A}/x?k=${B}', { A: 'one', B: 'two' }), { url: 'https://h/one/x?k=two' });
  assert.deepEqual(expandUrl('https://h/${A}/${B}', { A: 'one' }), { missing: 'B' });
  assert.deepEqual(expandUrl('https://h/${A}', { A: '' }), { missing: 'A' });
});
