import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EXIT } from '../../src/errors.js';
import { loadConfig, loadConfigText, parseYaml } from '../../src/config/load.js';
import { selectServers } from '../../src/plan/plan.js';
import { configError } from './helpers.js';

const PLANS = fileURLToPath(new URL('../../../plans/', import.meta.url));

// These loads take no site defaults (those are test/config/defaults.test.ts's): not the ones of
// whoever runs the tests either.
process.env.AGENT_UPDATE_DEFAULTS = '';

function tmpdir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'agent-update-config-'));
}

/** A temp folder with a HOME holding known_hosts, and a config file written from `yaml`. */
function setup(yaml: string): { dir: string; home: string; file: string; env: NodeJS.ProcessEnv } {
  const dir = tmpdir();
  const home = path.join(dir, 'home');
  fs.mkdirSync(path.join(home, '.ssh'), { recursive: true });
  fs.writeFileSync(path.join(home, '.ssh', 'known_hosts'), '');
  const file = path.join(dir, 'fleet.yaml');
  fs.writeFileSync(file, yaml);
  return { dir, home, file, env: { HOME: home, USER: 'tester' } };
}


const GOOD = `source:
  repo: https://github.com/example/agent
  branch: master
servers:
  - { name: app1, host: 10.0.0.11 }
agent:
  version_command: git rev-parse HEAD
  update:
    - git fetch {repo} {branch}
  health:
    command: curl -fsS http://127.0.0.1/version
`;

test('loadConfig reads a file with HOME and USER from opts.env', () => {
  const { file, home, env } = setup(GOOD);
  const c = loadConfig(file, { env });
  assert.equal(c.file, file);
  assert.equal(c.ssh.user, 'tester');
  assert.equal(c.ssh.knownHosts, path.join(home, '.ssh', 'known_hosts'));
  assert.deepEqual(c.servers, [{ name: 'app1', host: '10.0.0.11', port: 22, user: 'tester', type: 'default', types: ['default'] }]);
});

test('loadConfig resolves a relative file against opts.cwd, and relative paths in it against its folder', () => {
  const { dir, env } = setup(`${GOOD}ssh:\n  identity_file: keys/id\n`);
  fs.mkdirSync(path.join(dir, 'keys'));
  fs.writeFileSync(path.join(dir, 'keys', 'id'), 'key');
  const c = loadConfig('fleet.yaml', { cwd: dir, env });
  assert.equal(c.file, path.join(dir, 'fleet.yaml'));
  assert.equal(c.ssh.identityFile, path.join(dir, 'keys', 'id'));
});

test('a missing file, a folder: ConfigError, exit 2', () => {
  const dir = tmpdir();
  const missing = configError(() => loadConfig(path.join(dir, 'nope.yaml')));
  assert.equal(missing.exitCode, EXIT.usage);
  assert.match(missing.message, /nope\.yaml: no such file/);
  const folder = configError(() => loadConfig(dir));
  assert.match(folder.message, /is a folder/);
});

test('a path that cannot be read is a config error naming it (exit 2)', () => {
  // A path under a regular file fails with ENOTDIR, for root too (chmod 000 would not stop root).
  const { file, env } = setup(GOOD);
  const e = configError(() => loadConfig(path.join(file, 'inner.yaml'), { env }));
  assert.equal(e.exitCode, EXIT.usage);
  assert.match(e.message, /inner\.yaml: cannot read it: .*ENOTDIR/);
});

test('YAML syntax errors carry a line number', () => {
  const { file, env } = setup('source:\n  repo: x\n  branch: [master\nservers: []\n');
  const e = configError(() => loadConfig(file, { env }));
  assert.equal(e.problems.length >= 1, true);
  const p = e.problems[0];
  assert.match(p?.message ?? '', /YAML syntax error/);
  assert.equal(typeof p?.line, 'number');
  assert.match(e.message, new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+: YAML syntax error`));
});

test('a tab-indented file fails with the line of the tab', () => {
  const e = configError(() => loadConfigText('source:\n  repo: x\n\tbranch: y\n', '/x/c.yaml'));
  assert.ok(e.problems.some((p) => p.line === 3), JSON.stringify(e.problems));
});

test('duplicate keys are refused, with the key and its line', () => {
  const e = configError(() => loadConfigText(`${GOOD}agent:\n  version_command: x\n`, '/x/c.yaml'));
  assert.deepEqual(
    e.problems.map((p) => [p.line, p.message]),
    [[12, 'duplicate key "agent": each key may appear only once in a mapping']],
  );
  const nested = configError(() => loadConfigText(GOOD.replace('  branch: master\n', '  branch: master\n  branch: main\n'), '/x/c.yaml'));
  assert.equal(nested.problems[0]?.line, 4);
  assert.match(nested.problems[0]?.message ?? '', /duplicate key "branch"/);
});

test('several YAML documents are refused', () => {
  const e = configError(() => loadConfigText(`${GOOD}---\nname: x\n`, '/x/c.yaml'));
  assert.match(e.problems[0]?.message ?? '', /several YAML documents/);
});

test('validation problems carry the line of their key', () => {
  const yaml = `name: ok-name
source:
  repo: https://github.com/example/agent
  branch: "master;rm -rf /"
  commit: abc123z
servers:
  - { name: app1, host: 10.0.0.11 }
  - name: app1
    host: 10.0.0.12
    prot: 22
agent:
  version_command: git rev-parse HEAD
  update:
    - git fetch {repo} {branch}
    - git reset --hard {comit}
  restart:
    web: sudo supervisorctl restart agent:web
  health:
    command: curl -fsS http://127.0.0.1/version
    timeout: 5 minutes
restart: [web, wrkers]
`;
  const { file, env } = setup(yaml);
  const e = configError(() => loadConfig(file, { env }));
  const got = e.problems.map((p) => [p.path, p.line]);
  assert.deepEqual(got, [
    ['source.branch', 4],
    ['source.commit', 5],
    ['servers[1].name', 8],
    ['servers[1].prot', 10],
    ['agent.update[1]', 15],
    ['agent.health.timeout', 20],
    ['restart[1]', 21],
  ]);
  // the message is file:line: path: message, one line per problem
  const lines = e.message.split('\n');
  assert.equal(lines.length, 7);
  assert.equal(lines[3], `${file}:10: servers[1].prot: unknown key; did you mean port?`);
});

test('a missing key is reported at the line of its section', () => {
  const e = configError(() => loadConfigText(GOOD.replace('  version_command: git rev-parse HEAD\n', ''), '/x/c.yaml', { home: '/h', user: 'u', exists: () => true }));
  assert.deepEqual(e.problems, [{ path: 'agent.version_command', message: 'is required (a shell command)', line: 6 }]);
});

test('a missing known_hosts is reported clearly', () => {
  const e = configError(() => loadConfigText(GOOD, '/x/c.yaml', { home: '/nonexistent-home', user: 'u' }));
  assert.equal(e.problems.length, 1);
  assert.match(
    e.message,
    /^\/x\/c\.yaml: ssh\.known_hosts: file not found: \/nonexistent-home\/\.ssh\/known_hosts \(the default\); host keys are always verified; create it with ssh-keyscan or point ssh\.known_hosts at one$/,
  );
});

test('YAML anchors and merge keys work', () => {
  const yaml = `${GOOD.replace('servers:\n  - { name: app1, host: 10.0.0.11 }\n', `servers:
  - &app { name: app1, host: 10.0.0.11, type: app, port: 2222 }
  - { <<: *app, name: app2, host: 10.0.0.12 }
`)}`;
  const c = loadConfigText(yaml, '/x/c.yaml', { home: '/h', user: 'u', exists: () => true });
  assert.deepEqual(c.servers[1], { name: 'app2', host: '10.0.0.12', port: 2222, user: 'u', type: 'app', types: ['app'] });
});

test('an empty file', () => {
  const e = configError(() => loadConfigText('', '/x/c.yaml'));
  assert.match(e.message, /the config file is empty/);
});

test('parseYaml.locate finds keys and list items', () => {
  const { locate, problems } = parseYaml('a:\n  b:\n    - x\n    - y: 1\n      z: 2\nc: 3\n');
  assert.deepEqual(problems, []);
  assert.equal(locate(['a']), 1);
  assert.equal(locate(['a', 'b']), 2);
  assert.equal(locate(['a', 'b', 0]), 3);
  assert.equal(locate(['a', 'b', 1]), 4);
  assert.equal(locate(['a', 'b', 1, 'z']), 5);
  assert.equal(locate(['c']), 6);
  assert.equal(locate(['nope']), undefined);
  assert.equal(locate(['a', 'b', 7]), undefined);
});

test('the example plans are valid (given their key files exist)', () => {
  const names = fs.readdirSync(PLANS).filter((n) => n.endsWith('.yaml') || n.endsWith('.yml'));
  for (const want of ['frappe-agent.yaml', 'minimal.yaml', 'with-inventory.yaml']) assert.ok(names.includes(want), want);
  for (const name of names) {
    const file = path.join(PLANS, name);
    const checked: string[] = [];
    const c = loadConfig(file, {
      home: '/home/frappe',
      user: 'frappe',
      exists: (p) => {
        checked.push(p);
        return true;
      },
    });
    assert.ok(checked.includes('/home/frappe/.ssh/known_hosts'), `${name}: known_hosts checked`);
    assert.ok(c.servers.length >= 1, name);
    assert.equal(c.agent.health.expect, '{commit}');
  }
  const f = loadConfig(path.join(PLANS, 'frappe-agent.yaml'), { home: '/home/frappe', user: 'me', exists: () => true });
  assert.equal(f.ssh.identityFile, '/home/frappe/.ssh/id_ed25519');
  assert.deepEqual(Object.keys(f.agent.restart), ['web', 'workers', 'rq', 'redis']);
  assert.equal(f.agent.restart.web, 'sudo supervisorctl restart agent:web');
  assert.equal(f.agent.health.command, 'curl -fsS http://127.0.0.1:25052/version');
  assert.deepEqual(f.restart, ['web', 'workers', 'rq']);
  // and without the key files, exactly the file problems are reported
  const e = configError(() => loadConfig(path.join(PLANS, 'frappe-agent.yaml'), { home: '/home/frappe', user: 'me', exists: () => false }));
  assert.deepEqual(
    e.problems.map((p) => p.path),
    ['ssh.identity_file', 'ssh.known_hosts'],
  );
});

test('a bad source.repo is reported with the file, its line and the key path (exit 2)', () => {
  const { file, env } = setup(GOOD.replace('repo: https://github.com/example/agent', 'repo: "https://x/agent;reboot"'));
  const e = configError(() => loadConfig(file, { env }));
  assert.equal(e.exitCode, EXIT.usage);
  assert.equal(e.message, `${file}:2: source.repo: "https://x/agent;reboot" must not contain the shell metacharacter ';' (no git URL or sane path has them)`);
});

test('the inventory example: servers and types from plans/inventory/production.ini, selected', () => {
  const c = loadConfig(path.join(PLANS, 'with-inventory.yaml'), { home: '/home/frappe', user: 'me', exists: () => true });
  assert.equal(c.inventory, path.join(PLANS, 'inventory', 'production.ini'));
  const byName = Object.fromEntries(c.servers.map((s) => [s.name, s]));
  assert.deepEqual(Object.keys(byName), [
    'bastion.example.com',
    'f01.example.com',
    'f02.example.com',
    'f03.example.com',
    'f04.example.com',
    'f-canary.example.com',
    'n1.example.com',
    'n2.example.com',
    'db1',
  ]);
  assert.deepEqual(byName['bastion.example.com'], { name: 'bastion.example.com', host: 'bastion.example.com', port: 22, user: 'ops', type: 'default', types: ['default'] });
  assert.deepEqual(byName['f-canary.example.com'], { name: 'f-canary.example.com', host: '10.0.0.99', port: 22, user: 'frappe', type: 'frappe', types: ['frappe', 'web'] });
  assert.deepEqual(byName['n2.example.com'], { name: 'n2.example.com', host: 'n2.example.com', port: 2222, user: 'frappe', type: 'proxy', types: ['proxy', 'web'] });
  assert.deepEqual(byName.db1, { name: 'db1', host: '10.0.0.21', port: 2222, user: 'ops', type: 'db', types: ['db'] });
  assert.deepEqual(selectServers(c).map((s) => s.name), ['f01.example.com', 'f02.example.com', 'f03.example.com', 'f04.example.com']);
});

test('the example behind a bastion: aliases of its ssh config, ssh.jump, a per-server key, jump: none', () => {
  const c = loadConfig(path.join(PLANS, 'via-bastion.yaml'), { home: '/home/frappe', user: 'me', exists: () => true });
  const bastion = { host: 'bastion.example.com', port: 22, user: 'ops', identityFiles: ['/home/frappe/.ssh/id_bastion', '/home/frappe/.ssh/id_ed25519'] };
  const by = Object.fromEntries(c.servers.map((s) => [s.name, s]));
  assert.deepEqual(
    [by.app1!.host, by.app1!.user, by.app1!.port, by.app1!.identityFiles, by.app1!.jump],
    ['app1.internal.example.com', 'frappe', 22, ['/home/frappe/.ssh/id_ed25519'], [bastion]],
  );
  assert.deepEqual([by.db1!.host, by.db1!.user, by.db1!.port], ['10.20.0.21', 'postgres-ops', 2222]);
  // ssh.jump names the ssh config's alias: the same bastion
  assert.deepEqual(by.legacy1!.jump, [bastion]);
  assert.deepEqual(by.legacy1!.identityFiles, ['/home/frappe/.ssh/id_legacy']);
  assert.equal(by.edge1!.jump, undefined);
  assert.equal(c.ssh.configFile, path.join(PLANS, 'via-bastion.ssh_config'));
  assert.equal(c.ssh.maxHandshakes, 8);
});

test('progressive delivery keys are reported with the file, their line and key path', () => {
  const yaml = `source:
  repo: https://github.com/example/agent
  branch: master
servers:
  - { name: app1, host: 10.0.0.11 }
agent:
  version_command: git rev-parse HEAD
  update:
    - git fetch {repo} {branch}
  restart:
    web: sudo supervisorctl restart agent:web
  health:
    command: curl -fsS http://127.0.0.1/version
restart: [web]
rollback:
  enabled: false
execution:
  steps:
    - 1
    - { servers: 0%, bake: soon }
    - 1
  bake: forever
  guard:
    interval: 0
    rollback: true
`;
  const { file, env } = setup(yaml);
  const e = configError(() => loadConfig(file, { env }));
  assert.deepEqual(
    e.problems.map((p) => [p.path, p.line]),
    [
      ['execution.steps[1].servers', 20],
      ['execution.steps[1].bake', 20],
      ['execution.steps[2]', 21],
      ['execution.bake', 22],
      ['execution.guard.interval', 24],
      ['execution.guard.rollback', 25],
    ],
  );
  assert.ok(e.message.split('\n').every((l) => l.startsWith(`${file}:`)), e.message);
});
