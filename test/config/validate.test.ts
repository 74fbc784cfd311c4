import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { formatKeyPath } from '../../src/config/checker.js';
import { branchNameProblems } from '../../src/config/check-source.js';
import { validateConfig } from '../../src/config/validate.js';
import { base, ctx, DIR, HOME, ok, problems, variant } from './helpers.js';

/* eslint-disable @typescript-eslint/no-explicit-any */

test('a valid config maps to Config with every default', () => {
  const c = ok(base());
  assert.deepEqual(c, {
    file: `${DIR}/fleet.yaml`,
    name: null,
    source: { repo: 'https://github.com/example/agent', branch: 'master', commit: null, version: null, minCompatible: null, maxCompatible: null, minVersion: null, steppingStones: [] },
    servers: [
      { name: 'app1', host: '10.0.0.11', port: 22, user: 'op', type: 'app', types: ['app'] },
      { name: 'db1', host: '10.0.0.21', port: 2222, user: 'ops', type: 'db', types: ['db'] },
    ],
    inventory: null,
    hooks: [],
    serverTypes: null,
    include: null,
    exclude: null,
    ssh: {
      user: 'op',
      port: 22,
      identityFile: null,
      passphraseEnv: 'AGENT_UPDATE_SSH_PASSPHRASE',
      agent: true,
      knownHosts: `${HOME}/.ssh/known_hosts`,
      connectTimeoutMs: 10_000,
      commandTimeoutMs: 600_000,
      keepaliveIntervalMs: 15_000,
      deadManTimeoutMs: 45_000,
      reconnectForMs: 30_000,
      outputLimitBytes: 65_536,
      maxHandshakes: 8,
      configFile: null,
    },
    agent: {
      versionCommand: 'git -C ~/agent/repo rev-parse HEAD',
      semverCommand: null,
      prepare: [],
      update: ['git -C ~/agent/repo fetch --quiet {repo} {branch}', 'git -C ~/agent/repo reset --hard {commit}'],
      restart: { web: 'sudo supervisorctl restart agent:web', workers: "sudo supervisorctl restart 'agent:worker-*'" },
      health: { command: 'curl -fsS http://127.0.0.1:25052/version', expect: '{commit}', timeoutMs: 300_000, intervalMs: 2_000, stableForMs: 0 },
    },
    restart: ['web'],
    rollback: { enabled: true, continueAfterRollback: false, commit: null },
    testMode: { stopAfter: 0 },
    execution: { busyWaitMs: 600_000, maxFailures: null, prepareAhead: 1, steps: null, guard: { intervalMs: 30_000, rollback: false, afterFinishMs: 0 } },
  });
});

test('every key set explicitly is honoured', () => {
  const c = ok(
    variant((c) => {
      c.name = 'agent-2026-11';
      c.source.commit = '3F1C2AB';
      c.server_types = ['app', 'app'];
      c.ssh = {
        user: 'frappe',
        port: 2200,
        identity_file: '~/.ssh/id_ed25519',
        known_hosts: 'keys/../../../home/op/.ssh/known_hosts',
        connect_timeout: '3s',
        command_timeout: 120,
        passphrase_env: 'MY_PASS',
        agent: false,
        keepalive_interval: 0,
        reconnect_for: '5s',
        output_limit: 4096,
        max_handshakes: 3,
      };
      c.agent.health.expect = '"commit": "{commit}"';
      c.agent.health.timeout = '1m30s';
      c.agent.health.interval = '500ms';
      c.agent.health.stable_for = '20s';
      c.execution = {
        busy_wait: '2m',
        max_failures: '12.5%',
        prepare_ahead: 3,
        steps: [1, { servers: '50%', bake: '1m', pause_after: true }, 4],
        bake: '30s',
        pause_after_step: false,
        guard: { interval: '10s', rollback: false, after_finish: '5m' },
      };
      c.agent.prepare = ['git -C ~/agent/repo fetch --quiet {repo} {commit}'];
      c.restart = ['workers', 'web'];
      c.rollback = { enabled: false, continue_after_rollback: true, commit: 'ABCDEF0123456789abcdef0123456789ABCDEF01' };
      c.test_mode = { stop_after: 3 };
    }),
  );
  assert.equal(c.name, 'agent-2026-11');
  assert.equal(c.source.commit, '3f1c2ab');
  assert.deepEqual(c.serverTypes, ['app']);
  assert.deepEqual(c.servers[0], { name: 'app1', host: '10.0.0.11', port: 2200, user: 'frappe', type: 'app', types: ['app'] });
  assert.deepEqual(c.servers[1], { name: 'db1', host: '10.0.0.21', port: 2222, user: 'ops', type: 'db', types: ['db'] });
  assert.deepEqual(c.ssh, {
    user: 'frappe',
    port: 2200,
    identityFile: `${HOME}/.ssh/id_ed25519`,
    passphraseEnv: 'MY_PASS',
    agent: false,
    knownHosts: `${HOME}/.ssh/known_hosts`,
    connectTimeoutMs: 3000,
    commandTimeoutMs: 120_000,
    keepaliveIntervalMs: 0,
    deadManTimeoutMs: 60_000,
    reconnectForMs: 5_000,
    outputLimitBytes: 4096,
    maxHandshakes: 3,
    configFile: null,
  });
  assert.deepEqual(c.agent.health, {
    command: 'curl -fsS http://127.0.0.1:25052/version',
    expect: '"commit": "{commit}"',
    timeoutMs: 90_000,
    intervalMs: 500,
    stableForMs: 20_000,
  });
  assert.deepEqual(c.restart, ['workers', 'web']);
  assert.deepEqual(c.rollback, { enabled: false, continueAfterRollback: true, commit: 'abcdef0123456789abcdef0123456789abcdef01' });
  assert.deepEqual(c.testMode, { stopAfter: 3 });
  assert.deepEqual(c.execution, {
    busyWaitMs: 120_000,
    maxFailures: { percent: 12.5 },
    prepareAhead: 3,
    steps: [
      { size: { count: 1 }, bakeMs: 30_000, pauseAfter: false },
      { size: { percent: 50 }, bakeMs: 60_000, pauseAfter: true },
      { size: { count: 4 }, bakeMs: 30_000, pauseAfter: false },
    ],
    guard: { intervalMs: 10_000, rollback: false, afterFinishMs: 300_000 },
  });
  assert.deepEqual(c.agent.prepare, ['git -C ~/agent/repo fetch --quiet {repo} {commit}']);
});

test('agent versions: semver_command and the source bounds, in normal form (a leading v dropped)', () => {
  const c = ok(variant((raw: Record<string, any>) => {
    raw.source.version = 'v1.3.0';
    raw.source.min_compatible = '1.1.0';
    raw.source.max_compatible = '2.0.0-rc.1';
    raw.agent.semver_command = 'cat ~/agent/repo/VERSION';
  }));
  assert.deepEqual(
    { version: c.source.version, minCompatible: c.source.minCompatible, maxCompatible: c.source.maxCompatible, semverCommand: c.agent.semverCommand },
    { version: '1.3.0', minCompatible: '1.1.0', maxCompatible: '2.0.0-rc.1', semverCommand: 'cat ~/agent/repo/VERSION' },
  );
});

test('ssh.dead_man_timeout: 3 × keepalive_interval by default (60s without keepalives, 2s at least), 0 turns it off', () => {
  const dm = (ssh: Record<string, unknown>) => ok(variant((c) => void (c.ssh = ssh))).ssh.deadManTimeoutMs;
  assert.equal(dm({ keepalive_interval: '10s' }), 30_000);
  assert.equal(dm({ keepalive_interval: '500ms' }), 2_000);
  assert.equal(dm({ keepalive_interval: 0 }), 60_000);
  assert.equal(dm({ keepalive_interval: '10s', dead_man_timeout: '2m' }), 120_000);
  assert.equal(dm({ dead_man_timeout: 0 }), 0);
  assert.equal(dm({ dead_man_timeout: '2s' }), 2_000);
});

test('paths: ~ uses ctx.home, relative paths resolve against ctx.dir', () => {
  const rel = ok(variant((c) => void (c.ssh = { identity_file: 'keys/deploy' })));
  assert.equal(rel.ssh.identityFile, `${DIR}/keys/deploy`);
  const tilde = ok(variant((c) => void (c.ssh = { identity_file: '~/.ssh/id_ed25519', known_hosts: '~/.ssh/known_hosts' })));
  assert.equal(tilde.ssh.identityFile, `${HOME}/.ssh/id_ed25519`);
  const abs = ok(variant((c) => void (c.ssh = { known_hosts: '/etc/ssh/ssh_known_hosts' })), ctx({ exists: () => true }));
  assert.equal(abs.ssh.knownHosts, '/etc/ssh/ssh_known_hosts');
  // no exists() injected: no file checks
  const unchecked = ok(variant((c) => void (c.ssh = { identity_file: 'nope' })), ctx({ exists: undefined }));
  assert.equal(unchecked.ssh.identityFile, `${DIR}/nope`);
  // a relative config file name is made absolute against dir
  assert.equal(ok(base(), ctx({ file: 'sub/x.yaml' })).file, `${DIR}/sub/x.yaml`);
  // the home folder comes from ctx, never from the process
  const other = ok(base(), ctx({ home: '/root', exists: (p) => p === '/root/.ssh/known_hosts' }));
  assert.equal(other.ssh.knownHosts, '/root/.ssh/known_hosts');
});

test('empty sections and null optional values take the defaults', () => {
  const c = ok(
    variant((c) => {
      c.ssh = null;
      c.rollback = null;
      c.test_mode = null;
      c.name = null;
      c.source.commit = null;
      c.server_types = null;
      c.restart = null;
      c.agent.restart = null;
      c.agent.health.expect = null;
    }),
  );
  assert.equal(c.ssh.port, 22);
  assert.equal(c.rollback.enabled, true);
  assert.deepEqual(c.restart, []);
  assert.deepEqual(c.agent.restart, {});
  assert.equal(c.agent.health.expect, '{commit}');
  assert.equal(c.serverTypes, null);
  // servers without a type are of type "default"
  const d = ok(variant((c) => void (c.servers = [{ name: 'a', host: 'a.example.com' }])));
  assert.equal(d.servers[0]?.type, 'default');
  // an empty expect is allowed (exit status is enough)
  assert.equal(ok(variant((c) => void (c.agent.health.expect = ''))).agent.health.expect, '');
});

type Case = [what: string, change: (c: Record<string, any>) => unknown, path: string, message: RegExp];

const CASES: Case[] = [
  // the file as a whole
  ['not a mapping', () => ['a'], '', /must be a mapping/],
  // unknown keys, with and without a suggestion
  ['unknown top key, suggestion', (c) => void (c.servrs = []), 'servrs', /unknown key; did you mean servers\?/],
  ['unknown nested key, suggestion', (c) => void (c.agent.health.timout = '1m'), 'agent.health.timout', /did you mean timeout\?/],
  ['unknown key, camelCase', (c) => void (c.ssh = { connectTimeout: '5s' }), 'ssh.connectTimeout', /did you mean connect_timeout\?/],
  ['unknown server key', (c) => void (c.servers[0].hostname = 'x'), 'servers[0].hostname', /did you mean host\?/],
  ['unknown key, no suggestion', (c) => void (c.frobnicate = 1), 'frobnicate', /unknown key; expected one of: name, source/],
  ['top-level key that belongs in a section', (c) => void (c.known_hosts = 'x'), 'known_hosts', /belongs under ssh/],
  ['inventory file missing', (c) => void (c.inventory = 'hosts.ini'), 'inventory', /^file not found: \/srv\/rollouts\/hosts\.ini \(from "hosts\.ini"\)$/],
  ['diagnose not a list', (c) => void (c.agent.diagnose = 'uptime'), 'agent.diagnose', /must be a list of commands/],
  ['source.version not semver', (c) => void (c.source.version = '1.3'), 'source.version', /"1\.3" is not a valid version: use semver MAJOR\.MINOR\.PATCH/],
  ['source.version read as a number', (c) => void (c.source.version = 1.3), 'source.version', /YAML read it as the number 1\.3/],
  ['min_compatible not semver', (c) => void ((c.source.version = '1.3.0'), (c.source.min_compatible = 'one'), (c.agent.semver_command = 'cat VERSION')), 'source.min_compatible', /"one" is not a valid version/],
  ['max_compatible not semver', (c) => void ((c.source.version = '1.3.0'), (c.source.max_compatible = '2.x')), 'source.max_compatible', /"2\.x" is not a valid version/],
  ['min_compatible without source.version', (c) => void ((c.source.min_compatible = '1.1.0'), (c.agent.semver_command = 'cat VERSION')), 'source.min_compatible', /needs source\.version/],
  ['min_compatible without semver_command', (c) => void ((c.source.version = '1.3.0'), (c.source.min_compatible = '1.1.0')), 'source.min_compatible', /needs agent\.semver_command/],
  ['min_compatible above the target', (c) => void ((c.source.version = '1.3.0'), (c.source.min_compatible = '1.4.0'), (c.agent.semver_command = 'cat VERSION')), 'source.min_compatible', /1\.4\.0 is above source\.version 1\.3\.0/],
  ['max_compatible below min_compatible', (c) => void ((c.source.version = '1.3.0'), (c.source.min_compatible = '1.2.0'), (c.source.max_compatible = '1.1.0'), (c.agent.semver_command = 'cat VERSION')), 'source.max_compatible', /1\.1\.0 is below source\.min_compatible 1\.2\.0/],
  ['semver_command with a placeholder', (c) => void (c.agent.semver_command = 'cat {commit}/VERSION'), 'agent.semver_command', /placeholders are not expanded here/],
  ['semver_command empty', (c) => void (c.agent.semver_command = ' '), 'agent.semver_command', /must not be empty/],
  ['max_failures without continue_after_rollback', (c) => void (c.execution = { max_failures: 3 }), 'execution.max_failures', /needs rollback\.continue_after_rollback: true/],
  ['max_failures not a count or a percentage', (c) => void ((c.execution = { max_failures: 'some' }), (c.rollback = { continue_after_rollback: true })), 'execution.max_failures', /must be a whole number of servers \(3\) or a percentage .*got the string "some"/],
  ['max_failures over 100%', (c) => void ((c.execution = { max_failures: '150%' }), (c.rollback = { continue_after_rollback: true })), 'execution.max_failures', /0 to 100/],
  ['max_failures negative', (c) => void ((c.execution = { max_failures: -1 }), (c.rollback = { continue_after_rollback: true })), 'execution.max_failures', /must be a whole number/],
  ['stable_for not a duration', (c) => void (c.agent.health.stable_for = 'long'), 'agent.health.stable_for', /bad duration/],
  ['reconnect_for not a duration', (c) => void (c.ssh = { reconnect_for: 'a bit' }), 'ssh.reconnect_for', /bad duration/],
  ['busy_wait not a duration', (c) => void (c.execution = { busy_wait: 'a while' }), 'execution.busy_wait', /bad duration/],
  ['busy_wait at top level', (c) => void (c.busy_wait = '1m'), 'busy_wait', /belongs under execution/],
  ['prepare not a list', (c) => void (c.agent.prepare = 'git fetch'), 'agent.prepare', /must be a list of commands .*got the string "git fetch"/],
  ['prepare item not a string', (c) => void (c.agent.prepare = ['git fetch', { run: 'x' }]), 'agent.prepare[1]', /shell command .* got a mapping/],
  ['prepare item empty', (c) => void (c.agent.prepare = ['  ']), 'agent.prepare[0]', /must not be empty/],
  ['prepare with an unknown placeholder', (c) => void (c.agent.prepare = ['git fetch {remote}']), 'agent.prepare[0]', /\{remote\}/],
  ['prepare_ahead negative', (c) => void (c.execution = { prepare_ahead: -1 }), 'execution.prepare_ahead', /whole number 0 to 1000 .*got the number -1/],
  ['prepare_ahead fractional', (c) => void (c.execution = { prepare_ahead: 1.5 }), 'execution.prepare_ahead', /whole number/],
  ['prepare_ahead as a string', (c) => void (c.execution = { prepare_ahead: '2' }), 'execution.prepare_ahead', /got the string "2"/],
  ['prepare at top level', (c) => void (c.prepare = ['git fetch']), 'prepare', /belongs under agent/],
  // progressive delivery: execution.steps, bake, pause_after_step, guard
  ['steps not a list', (c) => void (c.execution = { steps: '25%' }), 'execution.steps', /must be a list of step sizes/],
  ['steps empty', (c) => void (c.execution = { steps: [] }), 'execution.steps', /must be a list of step sizes/],
  ['a step of 0 servers', (c) => void (c.execution = { steps: [0, '100%'] }), 'execution.steps[0]', /a number of servers \(1 or more\) or a percentage/],
  ['a step over 100%', (c) => void (c.execution = { steps: [1, '150%'] }), 'execution.steps[1]', /above 0 up to 100/],
  ['a step smaller than the one before', (c) => void (c.execution = { steps: [5, 2] }), 'execution.steps[1]', /larger than the step before it \(5\)/],
  ['a percentage smaller than the one before', (c) => void (c.execution = { steps: ['50%', '25%'] }), 'execution.steps[1]', /larger than the step before it \(50%\)/],
  ['a step mapping without servers', (c) => void (c.execution = { steps: [{ bake: '1m' }] }), 'execution.steps[0].servers', /is required/],
  ['a step mapping with an unknown key', (c) => void (c.execution = { steps: [{ servers: 1, bkae: '1m' }] }), 'execution.steps[0].bkae', /did you mean bake/],
  ['a step bake not a duration', (c) => void (c.execution = { steps: [{ servers: 1, bake: 'long' }] }), 'execution.steps[0].bake', /bad duration/],
  ['a step pause_after not a bool', (c) => void (c.execution = { steps: [{ servers: 1, pause_after: 'yes' }] }), 'execution.steps[0].pause_after', /true or false/],
  ['bake without steps', (c) => void (c.execution = { bake: '10m' }), 'execution.bake', /needs execution.steps/],
  ['pause_after_step without steps', (c) => void (c.execution = { pause_after_step: true }), 'execution.pause_after_step', /needs execution.steps/],
  ['bake not a duration', (c) => void (c.execution = { steps: [1], bake: 'a while' }), 'execution.bake', /bad duration/],
  ['guard not a mapping', (c) => void (c.execution = { guard: '30s' }), 'execution.guard', /must be a mapping of keys \(interval, rollback, after_finish\)/],
  ['guard interval zero', (c) => void (c.execution = { guard: { interval: 0 } }), 'execution.guard.interval', /longer than 0/],
  ['guard unknown key', (c) => void (c.execution = { guard: { intervall: '1m' } }), 'execution.guard.intervall', /did you mean interval/],
  ['guard after_finish not a duration', (c) => void (c.execution = { guard: { after_finish: 'soon' } }), 'execution.guard.after_finish', /bad duration/],
  ['guard rollback without rollback', (c) => void ((c.execution = { guard: { rollback: true } }), (c.rollback = { enabled: false })), 'execution.guard.rollback', /needs rollback.enabled/],
  // wrong types
  ['section of the wrong type', (c) => void (c.ssh = 'frappe'), 'ssh', /must be a mapping .*got the string "frappe"/],
  ['port as a string', (c) => void (c.servers[0].port = '22'), 'servers[0].port', /integer 1 to 65535\), got the string "22"/],
  ['port out of range', (c) => void (c.servers[1].port = 70000), 'servers[1].port', /1 to 65535/],
  ['port zero', (c) => void (c.ssh = { port: 0 }), 'ssh.port', /1 to 65535/],
  ['port fractional', (c) => void (c.ssh = { port: 22.5 }), 'ssh.port', /integer/],
  ['bool as a string', (c) => void (c.rollback = { enabled: 'yes' }), 'rollback.enabled', /true or false, got the string "yes"/],
  ['continue_after_rollback not bool', (c) => void (c.rollback = { continue_after_rollback: 1 }), 'rollback.continue_after_rollback', /true or false/],
  ['ssh.agent not bool', (c) => void (c.ssh = { agent: 'no' }), 'ssh.agent', /true or false/],
  ['update not a list', (c) => void (c.agent.update = 'git pull'), 'agent.update', /must be a list of commands, got the string/],
  ['update item not a string', (c) => void (c.agent.update = ['git pull', { run: 'x' }]), 'agent.update[1]', /shell command .* got a mapping/],
  ['restart map not a mapping', (c) => void (c.agent.restart = ['web']), 'agent.restart', /mapping of restart names/],
  ['restart list not a list', (c) => void (c.restart = 'web'), 'restart', /must be a list of names/],
  ['servers not a list', (c) => void (c.servers = { app1: '10.0.0.1' }), 'servers', /must be a list of servers, got a mapping/],
  ['server not a mapping', (c) => void (c.servers[1] = 'db1'), 'servers[1]', /must be a mapping/],
  ['server_types not a list', (c) => void (c.server_types = 'app'), 'server_types', /must be a list/],
  ['stop_after negative', (c) => void (c.test_mode = { stop_after: -1 }), 'test_mode.stop_after', /0 or more/],
  ['stop_after fractional', (c) => void (c.test_mode = { stop_after: 1.5 }), 'test_mode.stop_after', /whole number/],
  ['output_limit too small', (c) => void (c.ssh = { output_limit: 10 }), 'ssh.output_limit', /1024 to 67108864/],
  ['branch read as a number', (c) => void (c.source.branch = 2024), 'source.branch', /YAML read it as the number 2024, so put it in quotes/],
  ['commit read as a number', (c) => void (c.source.commit = 1234567), 'source.commit', /put it in quotes/],
  // durations
  ['bad duration', (c) => void (c.agent.health.timeout = '5 minutes'), 'agent.health.timeout', /bad duration: "5 minutes" is not a duration/],
  ['negative duration', (c) => void (c.ssh = { connect_timeout: -3 }), 'ssh.connect_timeout', /bad duration.*negative/],
  ['zero timeout', (c) => void (c.ssh = { command_timeout: '0s' }), 'ssh.command_timeout', /longer than 0/],
  ['duration as a list', (c) => void (c.agent.health.interval = [2]), 'agent.health.interval', /bad duration: got a list/],
  ['interval not below timeout', (c) => void Object.assign(c.agent.health, { timeout: '10s', interval: '10s' }), 'agent.health.interval', /shorter than agent.health.timeout \(10s is not less than 10s\)/],
  ['timeout not above the default interval', (c) => void (c.agent.health.timeout = '2s'), 'agent.health.timeout', /longer than agent.health.interval \(2s is not less than 2s, the default interval\)/],
  ['unknown placeholder without suggestion', (c) => void (c.agent.update[0] = "awk '{print}' f"), 'agent.update[0]', /unknown placeholder \{print\} \(the placeholders are \{repo\}, \{branch\}, \{commit\} and \{previous_commit\}; .*'\{ print \}'/],
  ['keepalive bad', (c) => void (c.ssh = { keepalive_interval: 'often' }), 'ssh.keepalive_interval', /bad duration/],
  ['dead_man_timeout under 2s', (c) => void (c.ssh = { dead_man_timeout: '1500ms' }), 'ssh.dead_man_timeout', /must be at least 2s \(or 0 to turn the dead-man timer off\)/],
  ['dead_man_timeout bad', (c) => void (c.ssh = { dead_man_timeout: 'soon' }), 'ssh.dead_man_timeout', /bad duration/],
  // commits
  ['commit with a non-hex character', (c) => void (c.source.commit = 'abc123z'), 'source.commit', /7 to 40 hex digits; "abc123z" contains "z", which is not hex/],
  ['commit too short', (c) => void (c.source.commit = 'abc123'), 'source.commit', /has 6 digits/],
  ['commit too long', (c) => void (c.source.commit = 'a'.repeat(41)), 'source.commit', /has 41 digits/],
  ['commit with injection', (c) => void (c.source.commit = 'abc1234; reboot'), 'source.commit', /not hex/],
  ['rollback commit bad', (c) => void (c.rollback = { commit: 'HEAD~1' }), 'rollback.commit', /7 to 40 hex digits/],
  // branches: every rule of git check-ref-format --branch, plus shell metacharacters
  ['branch empty', (c) => void (c.source.branch = ''), 'source.branch', /must not be empty/],
  ['branch ..', (c) => void (c.source.branch = 'a..b'), 'source.branch', /'\.\.'/],
  ['branch leading -', (c) => void (c.source.branch = '-f'), 'source.branch', /start with '-'/],
  ['branch trailing /', (c) => void (c.source.branch = 'feature/'), 'source.branch', /end with '\/'/],
  ['branch leading /', (c) => void (c.source.branch = '/feature'), 'source.branch', /start with '\/'/],
  ['branch trailing .', (c) => void (c.source.branch = 'v1.'), 'source.branch', /end with '\.'/],
  ['branch .lock', (c) => void (c.source.branch = 'main.lock'), 'source.branch', /'\.lock'/],
  ['branch component .lock', (c) => void (c.source.branch = 'a.lock/b'), 'source.branch', /'\.lock'/],
  ['branch //', (c) => void (c.source.branch = 'a//b'), 'source.branch', /'\/\/'/],
  ['branch @{', (c) => void (c.source.branch = 'a@{1}'), 'source.branch', /'@\{'/],
  ['branch @', (c) => void (c.source.branch = '@'), 'source.branch', /must not be '@'/],
  ['branch HEAD', (c) => void (c.source.branch = 'HEAD'), 'source.branch', /'HEAD'/],
  ['branch component starting with .', (c) => void (c.source.branch = 'a/.hidden'), 'source.branch', /start with '\.'/],
  ['branch starting with .', (c) => void (c.source.branch = '.x'), 'source.branch', /start with '\.'/],
  ['branch space', (c) => void (c.source.branch = 'my branch'), 'source.branch', /spaces/],
  ['branch tab', (c) => void (c.source.branch = 'a\tb'), 'source.branch', /control characters/],
  ['branch newline', (c) => void (c.source.branch = 'a\nb'), 'source.branch', /control characters/],
  ['branch DEL', (c) => void (c.source.branch = 'a\x7fb'), 'source.branch', /control characters/],
  ['branch ~', (c) => void (c.source.branch = 'a~1'), 'source.branch', /'~'/],
  ['branch ^', (c) => void (c.source.branch = 'a^'), 'source.branch', /'\^'/],
  ['branch :', (c) => void (c.source.branch = 'a:b'), 'source.branch', /':'/],
  ['branch ?', (c) => void (c.source.branch = 'a?'), 'source.branch', /'\?'/],
  ['branch *', (c) => void (c.source.branch = 'a*'), 'source.branch', /'\*'/],
  ['branch [', (c) => void (c.source.branch = 'a[1]'), 'source.branch', /'\['/],
  ['branch backslash', (c) => void (c.source.branch = 'a\\b'), 'source.branch', /'\\'/],
  ['branch injection ;', (c) => void (c.source.branch = 'master;rm -rf /'), 'source.branch', /not a valid branch name.*end with '\/'.*spaces.*shell metacharacter ';'/],
  ['branch injection $()', (c) => void (c.source.branch = '$(reboot)'), 'source.branch', /shell metacharacters '\$', '\(', '\)'/],
  ['branch injection backtick', (c) => void (c.source.branch = '`id`'), 'source.branch', /shell metacharacter '`'/],
  ['branch injection &&', (c) => void (c.source.branch = 'a&&b'), 'source.branch', /shell metacharacter '&'/],
  ['branch injection quote', (c) => void (c.source.branch = "a'b"), 'source.branch', /shell metacharacter '''/],
  ['branch injection pipe', (c) => void (c.source.branch = 'a|b'), 'source.branch', /shell metacharacter '\|'/],
  // repo
  ['repo empty', (c) => void (c.source.repo = ''), 'source.repo', /must not be empty/],
  ['repo newline', (c) => void (c.source.repo = 'https://x/a\nreboot'), 'source.repo', /newlines/],
  ['repo NUL', (c) => void (c.source.repo = 'a\0b'), 'source.repo', /NUL/],
  ['repo option injection', (c) => void (c.source.repo = '--upload-pack=touch /tmp/x'), 'source.repo', /start with '-'/],
  ['repo not a string', (c) => void (c.source.repo = ['a']), 'source.repo', /git URL/],
  // required keys
  ['empty file', () => null, '', /empty/],
  ['source missing', (c) => void delete c.source, 'source', /is required/],
  ['repo missing', (c) => void delete c.source.repo, 'source.repo', /is required/],
  ['branch missing', (c) => void delete c.source.branch, 'source.branch', /is required/],
  ['servers missing', (c) => void delete c.servers, 'servers', /is required/],
  ['servers empty', (c) => void (c.servers = []), 'servers', /at least one server/],
  ['agent missing', (c) => void delete c.agent, 'agent', /is required/],
  ['version_command missing', (c) => void delete c.agent.version_command, 'agent.version_command', /is required/],
  ['update missing', (c) => void delete c.agent.update, 'agent.update', /is required/],
  ['update empty', (c) => void (c.agent.update = []), 'agent.update', /at least one command/],
  ['health missing', (c) => void delete c.agent.health, 'agent.health', /is required/],
  ['health command missing', (c) => void delete c.agent.health.command, 'agent.health.command', /is required/],
  ['server name missing', (c) => void delete c.servers[0].name, 'servers[0].name', /is required/],
  ['server host missing', (c) => void delete c.servers[1].host, 'servers[1].host', /is required/],
  ['no current user', (c) => c, 'ssh.user', /set ssh.user/],
  // commands
  ['empty command', (c) => void (c.agent.version_command = '   '), 'agent.version_command', /must not be empty/],
  ['command with NUL', (c) => void (c.agent.update[0] = 'git\0pull'), 'agent.update[0]', /NUL/],
  ['unknown placeholder', (c) => void (c.agent.update[1] = 'git reset --hard {comit}'), 'agent.update[1]', /unknown placeholder \{comit\}; did you mean \{commit\}\?/],
  ['unknown placeholder in restart', (c) => void (c.agent.restart.web = 'restart {service}'), 'agent.restart.web', /unknown placeholder \{service\}/],
  ['unknown placeholder in health', (c) => void (c.agent.health.command = 'curl {url}'), 'agent.health.command', /unknown placeholder \{url\}/],
  ['unknown placeholder in expect', (c) => void (c.agent.health.expect = '{version}'), 'agent.health.expect', /unknown placeholder \{version\}/],
  ['bad restart name', (c) => void (c.agent.restart['web server'] = 'x'), 'agent.restart.web server', /not a valid restart name/],
  // servers
  ['duplicate server name', (c) => void c.servers.push({ name: 'app1', host: '10.0.0.99' }), 'servers[2].name', /duplicate server name "app1" \(also servers\[0\]\)/],
  ['same account listed twice', (c) => void c.servers.push({ name: 'app1b', host: '10.0.0.11' }), 'servers[2].host', /"app1b" is the same host, port and user \(op@10\.0\.0\.11:22\) as servers\[0\] "app1": one account is one agent checkout; list it once/],
  ['same account, port and user spelled out', (c) => void c.servers.push({ name: 'db1b', host: '10.0.0.21', port: 2222, user: 'ops' }), 'servers[2].host', /"db1b" is the same host, port and user \(ops@10\.0\.0\.21:2222\) as servers\[1\] "db1"/],
  ['same account, host in another case', (c) => void c.servers.push({ name: 'm', host: 'Box.example' }, { name: 'n', host: 'box.EXAMPLE' }), 'servers[3].host', /"n" is the same host, port and user \(op@box\.example:22\) as servers\[2\] "m"/],
  ['bad server name', (c) => void (c.servers[0].name = 'app 1'), 'servers[0].name', /not a valid server name/],
  ['server name starting with -', (c) => void (c.servers[0].name = '-x'), 'servers[0].name', /not a valid server name/],
  ['host with space', (c) => void (c.servers[0].host = '10.0.0.1 -oProxyCommand=x'), 'servers[0].host', /whitespace/],
  ['host starting with -', (c) => void (c.servers[0].host = '-oProxyCommand=reboot'), 'servers[0].host', /start with '-'/],
  ['host empty', (c) => void (c.servers[0].host = ''), 'servers[0].host', /must not be empty/],
  ['host with user@', (c) => void (c.servers[0].host = 'root@10.0.0.1'), 'servers[0].host', /put the user in servers\[0\]\.user/],
  ['type empty', (c) => void (c.servers[0].type = ''), 'servers[0].type', /must not be empty/],
  ['server user bad', (c) => void (c.servers[0].user = '-oops'), 'servers[0].user', /start with '-'/],
  ['ssh user with space', (c) => void (c.ssh = { user: 'a b' }), 'ssh.user', /whitespace/],
  // selections
  ['server_types names no server', (c) => void (c.server_types = ['app', 'dbb']), 'server_types[1]', /no server has type "dbb"; did you mean db\?/],
  ['server_types empty', (c) => void (c.server_types = []), 'server_types', /at least one type/],
  ['restart names an unknown restart', (c) => void (c.restart = ['web', 'worker']), 'restart[1]', /unknown restart "worker"; did you mean workers\? \(agent.restart defines: web, workers\)/],
  ['restart with none defined', (c) => void delete c.agent.restart, 'restart[0]', /agent.restart defines none/],
  ['restart listed twice', (c) => void (c.restart = ['web', 'web']), 'restart[1]', /listed twice/],
  // name
  ['bad name', (c) => void (c.name = 'my update'), 'name', /not a valid name/],
  ['name too long', (c) => void (c.name = 'a'.repeat(101)), 'name', /at most 100/],
  // ssh
  ['passphrase_env not a name', (c) => void (c.ssh = { passphrase_env: '1PASS' }), 'ssh.passphrase_env', /not an environment variable name/],
  ['no way to log in', (c) => void (c.ssh = { agent: false }), 'ssh.agent', /no key to log in with/],
  ['~user path', (c) => void (c.ssh = { identity_file: '~bob/.ssh/id' }), 'ssh.identity_file', /~user paths are not supported/],
  // missing files
  ['identity file missing', (c) => void (c.ssh = { identity_file: '~/.ssh/id_rsa' }), 'ssh.identity_file', new RegExp(`file not found: ${HOME}/\\.ssh/id_rsa \\(from "~/\\.ssh/id_rsa"\\)`)],
  ['relative identity file missing', (c) => void (c.ssh = { identity_file: 'keys/nope' }), 'ssh.identity_file', new RegExp(`file not found: ${DIR}/keys/nope`)],
  ['known_hosts missing', (c) => void (c.ssh = { known_hosts: 'kh' }), 'ssh.known_hosts', /file not found: .*host keys are always verified; create it with ssh-keyscan or point ssh.known_hosts at one/],
];

test('each kind of problem is reported with its key path and a clear message', async (t) => {
  for (const [what, change, path, message] of CASES) {
    await t.test(what, () => {
      const c = what === 'no current user' ? ctx({ user: undefined }) : ctx();
      const raw = variant(change);
      const ps = problems(raw, c);
      const hit = ps.find((p) => p.path === path && message.test(p.message));
      assert.ok(hit, `no problem at ${JSON.stringify(path)} matching ${message}; got:\n${ps.map((p) => `  ${p.path}: ${p.message}`).join('\n')}`);
    });
  }
});

test('the default known_hosts must exist too, with a clear message', () => {
  const ps = problems(base(), ctx({ exists: () => false }));
  assert.deepEqual(
    ps.map((p) => p.path),
    ['ssh.known_hosts'],
  );
  assert.match(ps[0]?.message ?? '', new RegExp(`file not found: ${HOME}/\\.ssh/known_hosts \\(the default\\); host keys are always verified`));
});

test('every problem is reported at once', () => {
  const raw = variant((c) => {
    c.name = 'bad name';
    c.source.branch = '$(reboot)';
    c.source.commit = 'abc123z';
    c.servers.push({ name: 'app1', host: '-x', port: 0 });
    c.agent.health.timeout = 'soon';
    c.agent.update.push('echo {nope}');
    c.restart = ['nginx'];
    c.extra = true;
  });
  const ps = problems(raw, ctx({ exists: () => false }));
  const paths = ps.map((p) => p.path).sort();
  assert.deepEqual(paths, [
    'agent.health.timeout',
    'agent.update[2]',
    'extra',
    'name',
    'restart[0]',
    'servers[2].host',
    'servers[2].name',
    'servers[2].port',
    'source.branch',
    'source.commit',
    'ssh.known_hosts',
  ]);
});

test('line numbers come from ctx.locate, falling back to the nearest located ancestor', () => {
  const lines: Record<string, number> = { source: 1, 'source.branch': 3, agent: 10 };
  const locate = (p: (string | number)[]) => lines[formatKeyPath(p)];
  const raw = variant((c) => {
    c.source.branch = 'a..b';
    delete c.agent.version_command;
    c.zzz_unknown = 1;
  });
  const ps = problems(raw, ctx({ locate }));
  const byPath = Object.fromEntries(ps.map((p) => [p.path, p.line]));
  assert.equal(byPath['source.branch'], 3);
  assert.equal(byPath['agent.version_command'], 10);
  assert.equal(byPath['zzz_unknown'], undefined);
  assert.ok('zzz_unknown' in byPath);
  // sorted by line, problems without a line last
  assert.deepEqual(
    ps.map((p) => p.path),
    ['source.branch', 'agent.version_command', 'zzz_unknown'],
  );
});

test('one host listed under other users or ports is several accounts, so several servers', () => {
  const c = ok(variant((c) => void c.servers.push({ name: 'app1-other-user', host: '10.0.0.11', user: 'bench2' }, { name: 'app1-other-port', host: '10.0.0.11', port: 2200 })));
  assert.deepEqual(c.servers.map((s) => `${s.user}@${s.host}:${s.port}`), ['op@10.0.0.11:22', 'ops@10.0.0.21:2222', 'bench2@10.0.0.11:22', 'op@10.0.0.11:2200']);
});

test('valid branch names git accepts are accepted', () => {
  for (const b of ['master', 'main', 'feature/x', 'release-1.2', 'v1.0.0', 'fix#123', 'a/b/c', 'user@host', 'a.b', 'ünïcode', 'x@y', 'a{b}']) {
    assert.deepEqual(branchNameProblems(b), [], b);
    assert.equal(ok(variant((c) => void (c.source.branch = b))).source.branch, b);
  }
});

test('braces that are not placeholders are allowed in commands', () => {
  const c = ok(
    variant((c) => {
      c.agent.version_command = "git -C ${HOME}/agent/repo log -1 --format=%H | awk '{ print $1 }'";
      c.agent.update = ["awk '{print $1}' f", 'echo ${commit} {a,b} {A} {previous_commit}'];
    }),
  );
  assert.equal(c.agent.update.length, 2);
});

test('validateConfig never throws on odd input', () => {
  for (const raw of [42, 'text', true, [], {}, { servers: [null, 1, 'x', []] }, { agent: { update: [null] } }, { source: [] }]) {
    const r = validateConfig(raw, ctx());
    assert.ok('problems' in r && r.problems.length > 0, JSON.stringify(raw));
  }
});

test('branchNameProblems agrees with git check-ref-format --branch', (t) => {
  let gitOk = true;
  try {
    execFileSync('git', ['--version'], { stdio: 'ignore' });
  } catch {
    gitOk = false;
  }
  if (!gitOk) return t.skip('git is not installed');
  const names = [
    'master', 'feature/x', 'v1.2.3', 'fix#123', 'a{b}', 'x@y', 'ünïcode', 'a-b_c.d', 'refs/heads/x',
    'a..b', '-f', 'HEAD', 'a.lock', 'a.lock/b', 'a/.x', '.x', 'a/b.', 'a\\b', '/a', 'a/', 'a//b', 'a@{1}',
    'a b', 'a\tb', 'a~1', 'a^', 'a:b', 'a?', 'a*', 'a[1]', 'a\x7f', '',
  ];
  for (const name of names) {
    let gitAccepts = true;
    try {
      execFileSync('git', ['check-ref-format', '--branch', name], { stdio: 'ignore' });
    } catch {
      gitAccepts = false;
    }
    assert.equal(branchNameProblems(name).length === 0, gitAccepts, `${JSON.stringify(name)}: git ${gitAccepts ? 'accepts' : 'refuses'} it`);
  }
});

test('a placeholder in agent.version_command is refused: it is run as it is, to read the commit', () => {
  const ps = problems(variant((c) => void (c.agent.version_command = 'git -C ~/agent/repo rev-parse {branch}')));
  assert.deepEqual(ps.map((p) => p.path), ['agent.version_command']);
  assert.match(ps[0]!.message, /\{branch\}/);
});

test('source.repo: every form git fetches from is accepted, as written', () => {
  for (const repo of [
    'https://github.com/example/agent',
    'https://github.com/example/agent.git',
    'http://git.internal:8080/agent.git',
    'https://git.example.com/~ops/agent.git',
    'ssh://git@github.com/example/agent.git',
    'ssh://git@[::1]:2222/srv/agent.git',
    'git+ssh://git@host/agent.git',
    'git://git.example.com/agent.git',
    'file:///srv/git/agent.git',
    'git@github.com:example/agent.git',
    'host.example:agent.git',
    'deploy@10.0.0.5:/srv/git/agent.git',
    'git@[fe80::1]:agent.git',
    'git@host:~/agent.git',
    '/srv/git/agent.git',
    '/srv/git/agent',
    './upstream',
    '../upstream/agent.git',
    'upstream',
    '/srv/git/a-b_c.d/v1+2/x=y/50%/ünï/#1/[x]',
  ]) {
    const c = ok(variant((c) => void (c.source.repo = repo)));
    assert.equal(c.source.repo, repo, 'kept as written');
  }
});

test('source.repo: whitespace, controls, option injection, shell metacharacters and odd URLs are refused', () => {
  const cases: Array<[string, RegExp]> = [
    ['https://x/a b', /must not contain whitespace/],
    ['/srv/up stream', /must not contain whitespace/],
    ['https://x/a\tb', /control characters/],
    ['https://x/a\u00a0b', /must not contain whitespace/],
    ['https://x/a\u0085b', /control characters/],
    ['https://x/\u202eb', /bidirectional/],
    ['-u', /must not start with '-'/],
    ['--upload-pack=touch /tmp/x', /must not start with '-'/],
    ['https://x/$(reboot)', /shell metacharacters '\$', '\(', '\)'/],
    ['https://x/`id`', /shell metacharacter '`'/],
    ['/srv/a;reboot', /shell metacharacter ';'/],
    ['/srv/a|b', /shell metacharacter '\|'/],
    ['/srv/a&b', /shell metacharacter '&'/],
    ['/srv/a<b', /shell metacharacter '<'/],
    ['/srv/a>b', /shell metacharacter '>'/],
    ["/srv/it's", /shell metacharacter '''/],
    ['/srv/"x"', /shell metacharacter '"'/],
    ['/srv/a\\b', /shell metacharacter '\\'/],
    ['/srv/a*', /shell metacharacter '\*'/],
    ['/srv/a?', /shell metacharacter '\?'/],
    ['/srv/{a,b}', /shell metacharacters '\{', '\}'/],
    ['/srv/a!', /shell metacharacter '!'/],
    ['ext::sh -c touch% /tmp/pwned', /whitespace/],
    ['ext::sh', /remote helper/],
    ['fd::17', /remote helper/],
    ['ftp://host/agent.git', /URL scheme "ftp" is not one git fetches agents from; use https, http, ssh, git or file/],
    ['https://', /no host/],
    ['https:///x', /no host/],
    ['ssh://host', /no path/],
    ['file://relative/x', /file:\/\/ URL needs an absolute path/],
    ['https://user:s3cret@github.com/x.git', /password or token/],
    ['host:', /no path after ':'/],
    ['@host:x', /user before '@'/],
    ['git@:x', /no host/],
    ['~/git/agent.git', /~ is not expanded/],
  ];
  for (const [repo, message] of cases) {
    const ps = problems(variant((c) => void (c.source.repo = repo)));
    const mine = ps.filter((p) => p.path === 'source.repo');
    assert.equal(mine.length, 1, `${JSON.stringify(repo)}: ${JSON.stringify(ps)}`);
    assert.match(mine[0]!.message, message, JSON.stringify(repo));
  }
});
