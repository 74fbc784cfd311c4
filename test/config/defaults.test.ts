/**
 * Site defaults (issue 15, item 4), through the one loader: where the file is looked for, how it
 * merges under a config (maps key by key, the config winning; lists and scalars whole; null drops
 * a default), each key's origin, every problem against the file, line and key path it was
 * written at, relative paths against the defaults' folder, and the keys refused there.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chooseDefaults, mergeLayers, type Origin } from '../../src/config/defaults.js';
import { loadConfig, loadEffectiveConfig, parseYaml, type EffectiveConfig } from '../../src/config/load.js';
import { formatKeyPath } from '../../src/config/checker.js';
import { makeTempDir } from '../helpers/tmp.js';
import { configError } from './helpers.js';

/** A folder with a HOME (known_hosts in it), a site/ folder and the files given, relative to the folder. */
function setup(files: Record<string, string>): { dir: string; home: string; env: NodeJS.ProcessEnv; at: (f: string) => string } {
  const dir = makeTempDir('agent-update-defaults-');
  const home = path.join(dir, 'home');
  fs.mkdirSync(path.join(home, '.ssh'), { recursive: true });
  fs.writeFileSync(path.join(home, '.ssh', 'known_hosts'), '');
  for (const [f, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    fs.writeFileSync(path.join(dir, f), text);
  }
  return { dir, home, env: { HOME: home, USER: 'tester' }, at: (f) => path.join(dir, f) };
}


function originsOf(eff: EffectiveConfig): Record<string, Origin> {
  return Object.fromEntries(eff.origins.map(([p, o]) => [formatKeyPath(p), o]));
}

const SITE = `source:
  repo: https://github.com/example/agent
  branch: master
ssh:
  user: frappe
  port: 2222
  identity_file: keys/deploy
agent:
  version_command: git -C ~/agent/repo rev-parse HEAD
  update:
    - git -C ~/agent/repo fetch --quiet {repo} {branch}
    - git -C ~/agent/repo reset --hard {commit}
  restart:
    web: sudo supervisorctl restart agent:web
  health:
    command: curl -fsS http://127.0.0.1:25052/version
    timeout: 2m
`;

const LEAN = `name: canary
servers:
  - { name: app1, host: 10.0.0.11 }
ssh:
  user: ops
agent:
  restart:
    workers: sudo supervisorctl restart 'agent:worker-*'
restart: [web, workers]
`;

test('a config that says only what differs: the defaults merged under it, maps key by key, the config winning, each key with its file and line', () => {
  const s = setup({ 'site/defaults.yml': SITE, 'site/keys/deploy': 'key', 'rollouts/canary.yml': LEAN });
  const eff = loadEffectiveConfig(s.at('rollouts/canary.yml'), { env: { ...s.env, AGENT_UPDATE_DEFAULTS: s.at('site/defaults.yml') } });
  const c = eff.config;
  assert.equal(c.name, 'canary');
  assert.deepEqual(c.source, { repo: 'https://github.com/example/agent', branch: 'master', commit: null, version: null, minCompatible: null, maxCompatible: null, minVersion: null, steppingStones: [] });
  // the config's ssh.user wins; ssh.port comes from the defaults, and the servers take both
  assert.equal(c.ssh.user, 'ops');
  assert.equal(c.ssh.port, 2222);
  assert.deepEqual(c.servers.map((x) => [x.name, x.user, x.port]), [['app1', 'ops', 2222]]);
  // agent.restart is a mapping: the config adds workers to the site's web
  assert.deepEqual(c.agent.restart, { workers: "sudo supervisorctl restart 'agent:worker-*'", web: 'sudo supervisorctl restart agent:web' });
  assert.deepEqual(c.restart, ['web', 'workers']);
  assert.equal(c.agent.update.length, 2);
  assert.equal(c.agent.health.timeoutMs, 120_000);
  // a relative path in the defaults names a file next to the defaults, not next to the config
  assert.equal(c.ssh.identityFile, s.at('site/keys/deploy'));

  assert.deepEqual(eff.defaults, { file: s.at('site/defaults.yml'), source: '$AGENT_UPDATE_DEFAULTS' });
  const o = originsOf(eff);
  const cfg = s.at('rollouts/canary.yml');
  const site = s.at('site/defaults.yml');
  assert.deepEqual(o['name'], { file: cfg, line: 1 });
  assert.deepEqual(o['ssh'], { file: cfg, line: 4, also: { file: site, line: 4 } });
  assert.deepEqual(o['ssh.user'], { file: cfg, line: 5 });
  assert.deepEqual(o['ssh.port'], { file: site, line: 6 });
  assert.deepEqual(o['source.repo'], { file: site, line: 2 });
  assert.deepEqual(o['agent.restart.workers'], { file: cfg, line: 8 });
  assert.deepEqual(o['agent.restart.web'], { file: site, line: 14 });
  assert.deepEqual(o['agent.update[1]'], { file: site, line: 12 });
  assert.deepEqual(o['agent.health.timeout'], { file: site, line: 17 });
  // keys in the config's order, then the ones only the defaults have
  assert.deepEqual(Object.keys(eff.document as object), ['name', 'servers', 'ssh', 'agent', 'restart', 'source']);
  assert.deepEqual(Object.keys((eff.document as { ssh: object }).ssh), ['user', 'port', 'identity_file']);
});

test('lists and scalars of the config replace the default whole; null drops a default for the built-in one', () => {
  const s = setup({
    'site/defaults.yml': SITE,
    'site/keys/deploy': 'key',
    'c.yml': `servers: [{ name: app1, host: h1 }]
ssh: { port: null, identity_file: null }
agent:
  update:
    - git -C ~/agent/repo checkout {commit}
  health: { timeout: 30s }
`,
  });
  const c = loadConfig(s.at('c.yml'), { env: s.env, defaults: s.at('site/defaults.yml') });
  assert.deepEqual(c.agent.update, ['git -C ~/agent/repo checkout {commit}']);
  assert.equal(c.ssh.port, 22);
  assert.equal(c.ssh.identityFile, null);
  assert.equal(c.agent.health.timeoutMs, 30_000);
  assert.equal(c.agent.health.command, 'curl -fsS http://127.0.0.1:25052/version');
});

test('a bad default is reported against the defaults file, with its line and key path; the config\'s own problems against the config', () => {
  const s = setup({
    'site/defaults.yml': SITE.replace('timeout: 2m', 'timeout: 2 minutes').replace('  port: 2222\n', '  port: 2222\n  usr: x\n'),
    'site/keys/deploy': 'key',
    'c.yml': `servers: [{ name: app1, host: h1 }]
ssh:
  conect_timeout: 3s
`,
  });
  const site = s.at('site/defaults.yml');
  const e = configError(() => loadConfig(s.at('c.yml'), { env: s.env, defaults: site }));
  assert.deepEqual(
    e.problems.map((p) => [p.file, p.line, p.path]),
    [
      [undefined, 3, 'ssh.conect_timeout'],
      [site, 7, 'ssh.usr'],
      [site, 18, 'agent.health.timeout'],
    ],
  );
  assert.match(e.message, new RegExp(`^${site.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:18: agent\\.health\\.timeout: bad duration`, 'm'));
  // a required key neither file has: against the config, where it belongs
  const s2 = setup({ 'site/defaults.yml': 'ssh: { user: frappe }\n', 'c.yml': 'servers: [{ name: app1, host: h1 }]\n' });
  const e2 = configError(() => loadConfig(s2.at('c.yml'), { env: s2.env, defaults: s2.at('site/defaults.yml') }));
  assert.ok(e2.problems.some((p) => p.path === 'source' && p.file === undefined), e2.message);
  // a required key missing below a section only the defaults have: against the defaults' section
  const s3 = setup({ 'site/defaults.yml': 'source: { repo: https://example.com/a.git }\n', 'c.yml': 'servers: [{ name: app1, host: h1 }]\n' });
  const e3 = configError(() => loadConfig(s3.at('c.yml'), { env: s3.env, defaults: s3.at('site/defaults.yml') }));
  const branch = e3.problems.find((p) => p.path === 'source.branch');
  assert.deepEqual([branch?.file, branch?.line], [s3.at('site/defaults.yml'), 1]);
});

test('YAML errors of both files are reported together, each against its file', () => {
  const s = setup({ 'd.yml': 'ssh:\n  user: a\n  user: b\n', 'c.yml': 'servers: [\n' });
  const e = configError(() => loadConfig(s.at('c.yml'), { env: s.env, defaults: s.at('d.yml') }));
  assert.ok(e.problems.some((p) => p.file === undefined && /YAML syntax error/.test(p.message)), e.message);
  assert.ok(e.problems.some((p) => p.file === s.at('d.yml') && p.line === 3 && /duplicate key "user"/.test(p.message)), e.message);
});

test('what one update covers and targets is refused in the site defaults, each named with its line', () => {
  const s = setup({
    'd.yml': `name: everything
servers: [{ name: app1, host: h1 }]
include: web*
source: { repo: https://example.com/a.git, branch: master, commit: abcdef1 }
rollback: { commit: abcdef1 }
`.replace('commit: abcdef1 }\nrollback', 'commit: abcdef1, min_version: 1.1.0, stepping_stones: [] }\nrollback'),
    'c.yml': 'servers: [{ name: app1, host: h1 }]\n',
  });
  const e = configError(() => loadConfig(s.at('c.yml'), { env: s.env, defaults: s.at('d.yml') }));
  assert.deepEqual(
    e.problems.map((p) => [p.file, p.line, p.path]),
    [
      [s.at('d.yml'), 1, 'name'],
      [s.at('d.yml'), 2, 'servers'],
      [s.at('d.yml'), 3, 'include'],
      [s.at('d.yml'), 4, 'source.commit'],
      [s.at('d.yml'), 4, 'source.min_version'],
      [s.at('d.yml'), 4, 'source.stepping_stones'],
      [s.at('d.yml'), 5, 'rollback.commit'],
    ],
  );
  assert.match(e.problems[1]!.message, /belongs in each update's config, not in the site defaults/);
});

test('where the defaults are: $AGENT_UPDATE_DEFAULTS (empty: none), else $XDG_CONFIG_HOME when absolute, else ~/.config', () => {
  assert.deepEqual(chooseDefaults({ AGENT_UPDATE_DEFAULTS: 'site.yml', XDG_CONFIG_HOME: '/x' }, '/home/op', '/work'), { path: '/work/site.yml', source: '$AGENT_UPDATE_DEFAULTS' });
  assert.equal(chooseDefaults({ AGENT_UPDATE_DEFAULTS: '', XDG_CONFIG_HOME: '/x' }, '/home/op', '/work'), null);
  assert.deepEqual(chooseDefaults({ XDG_CONFIG_HOME: '/x' }, '/home/op', '/work'), { path: '/x/agent-update/defaults.yml', source: '$XDG_CONFIG_HOME' });
  assert.deepEqual(chooseDefaults({ XDG_CONFIG_HOME: 'rel' }, '/home/op', '/work'), { path: '/home/op/.config/agent-update/defaults.yml', source: 'home' });
  assert.deepEqual(chooseDefaults({}, '/home/op', '/work'), { path: '/home/op/.config/agent-update/defaults.yml', source: 'home' });
});

test('the per-user file is read when there, silently skipped when not; one named by $AGENT_UPDATE_DEFAULTS must exist', () => {
  const s = setup({ 'c.yml': LEAN.replace('ssh:\n  user: ops\n', '') });
  // no ~/.config/agent-update/defaults.yml: the config alone (which lacks source, agent…)
  const alone = configError(() => loadConfig(s.at('c.yml'), { env: s.env }));
  assert.ok(alone.problems.some((p) => p.path === 'source'), alone.message);
  fs.mkdirSync(path.join(s.home, '.config', 'agent-update'), { recursive: true });
  fs.writeFileSync(path.join(s.home, '.config', 'agent-update', 'defaults.yml'), SITE.replace('  identity_file: keys/deploy\n', ''));
  const eff = loadEffectiveConfig(s.at('c.yml'), { env: s.env });
  assert.deepEqual(eff.defaults, { file: path.join(s.home, '.config', 'agent-update', 'defaults.yml'), source: 'home' });
  assert.equal(eff.config.ssh.user, 'frappe');
  // $XDG_CONFIG_HOME instead, when set (absolute)
  const xdg = path.join(s.dir, 'xdg');
  fs.mkdirSync(path.join(xdg, 'agent-update'), { recursive: true });
  fs.writeFileSync(path.join(xdg, 'agent-update', 'defaults.yml'), SITE.replace('  identity_file: keys/deploy\n', '').replace('user: frappe', 'user: xdg'));
  assert.equal(loadConfig(s.at('c.yml'), { env: { ...s.env, XDG_CONFIG_HOME: xdg } }).ssh.user, 'xdg');
  // empty: none, even with the per-user file there
  const none = configError(() => loadConfig(s.at('c.yml'), { env: { ...s.env, AGENT_UPDATE_DEFAULTS: '' } }));
  assert.ok(none.problems.some((p) => p.path === 'source'), none.message);
  // named but missing: an error naming it and the variable, before anything else
  const missing = s.at('nope/defaults.yml');
  const e = configError(() => loadConfig(s.at('c.yml'), { env: { ...s.env, AGENT_UPDATE_DEFAULTS: missing } }));
  assert.deepEqual(e.problems.map((p) => p.file), [missing]);
  assert.match(e.message, /nope\/defaults\.yml: site defaults \(named by \$AGENT_UPDATE_DEFAULTS\): no such file/);
  // a folder where the per-user file should be is an error too, not silently none
  fs.rmSync(path.join(s.home, '.config', 'agent-update', 'defaults.yml'));
  fs.mkdirSync(path.join(s.home, '.config', 'agent-update', 'defaults.yml'));
  const folder = configError(() => loadConfig(s.at('c.yml'), { env: s.env }));
  assert.match(folder.message, /defaults\.yml: site defaults \(the per-user file in ~\/\.config\): is a folder/);
});

test('an empty defaults file is no defaults; one that is not a mapping is refused', () => {
  const s = setup({ 'c.yml': `servers: [{ name: app1, host: h1 }]\n${SITE.replace('  identity_file: keys/deploy\n', '')}`, 'empty.yml': '# nothing yet\n', 'list.yml': '- a\n' });
  const full = s.at('c.yml');
  assert.equal(loadEffectiveConfig(full, { env: s.env, defaults: s.at('empty.yml') }).defaults, null);
  const e = configError(() => loadConfig(full, { env: s.env, defaults: s.at('list.yml') }));
  assert.match(e.message, /list\.yml: site defaults must be a mapping/);
});

test('mergeLayers: without defaults the config alone, its own file for every key', () => {
  const text = 'ssh: { user: a }\nrestart: [web]\n';
  const p = parseYaml(text);
  const m = mergeLayers(null, { file: '/c.yml', dir: '/', value: p.value, locate: p.locate });
  assert.deepEqual(m.value, { ssh: { user: 'a' }, restart: ['web'] });
  assert.deepEqual(
    m.origins().map(([k, o]) => [formatKeyPath(k), o.file, o.line]),
    [
      ['ssh', '/c.yml', 1],
      ['ssh.user', '/c.yml', 1],
      ['restart', '/c.yml', 2],
      ['restart[0]', '/c.yml', 2],
    ],
  );
  // a key named __proto__ stays a key
  const d = parseYaml('agent:\n  restart:\n    __proto__: x\n');
  const m2 = mergeLayers({ file: '/d.yml', dir: '/', value: d.value, locate: d.locate }, { file: '/c.yml', dir: '/', value: { agent: { restart: {} } }, locate: () => undefined });
  assert.deepEqual(Object.keys((m2.value as { agent: { restart: object } }).agent.restart), ['__proto__']);
  assert.equal(Object.getPrototypeOf((m2.value as { agent: { restart: object } }).agent.restart), Object.prototype);
});

test('the example plans/site/canary.yaml leans on plans/site/defaults.yml and is valid with it (given its key files exist)', () => {
  const PLANS = fileURLToPath(new URL('../../../plans/site/', import.meta.url));
  const checked: string[] = [];
  const eff = loadEffectiveConfig(path.join(PLANS, 'canary.yaml'), {
    defaults: path.join(PLANS, 'defaults.yml'),
    home: '/home/frappe',
    user: 'frappe',
    exists: (p) => {
      checked.push(p);
      return true;
    },
  });
  const c = eff.config;
  assert.equal(c.ssh.user, 'ops');
  assert.equal(c.ssh.identityFile, path.join(PLANS, 'keys', 'deploy'));
  assert.equal(c.ssh.knownHosts, '/home/frappe/.ssh/known_hosts');
  assert.deepEqual(c.restart, ['web']);
  assert.equal(c.agent.health.timeoutMs, 120_000);
  assert.equal(c.agent.health.command, 'curl -fsS http://127.0.0.1:25052/version');
  assert.equal(c.source.repo, 'https://github.com/example/agent');
  assert.ok(checked.includes(path.join(PLANS, 'keys', 'deploy')));
  // and without its defaults it is not a config on its own
  const e = configError(() => loadConfig(path.join(PLANS, 'canary.yaml'), { defaults: null, home: '/home/frappe', user: 'frappe', exists: () => true }));
  assert.ok(e.problems.some((p) => p.path === 'source'), e.message);
});
