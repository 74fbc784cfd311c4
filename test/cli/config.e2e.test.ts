/**
 * Site defaults through the real CLI (issue 15, item 4): `config -c FILE` prints the effective
 * config with each key's file and line (text and --json), a bad default is exit 2 naming its
 * file, line and key path with nothing on stdout, $AGENT_UPDATE_DEFAULTS naming a missing file
 * is exit 2, the per-user file is found through $XDG_CONFIG_HOME; and `plan` of a config that
 * leans on the defaults for its source, ssh block and agent commands probes the real sshd fleet.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { parse, stringify } from 'yaml';
import { byName, cli, cliStatusJson, sharedFleet } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';
import type { Fleet } from '../fleet/fleet.js';

const fleetFor = sharedFleet({ servers: 2 });

/** A folder with known_hosts and a key, site defaults (a relative known_hosts) and a lean config. */
function files(): { dir: string; defaults: string; config: string } {
  const dir = makeTempDir('agent-update-config-cli-');
  mkdirSync(join(dir, 'site'));
  mkdirSync(join(dir, 'rollouts'));
  writeFileSync(join(dir, 'site', 'known_hosts'), '');
  const defaults = join(dir, 'site', 'defaults.yml');
  writeFileSync(
    defaults,
    `source:
  repo: https://github.com/example/agent
  branch: master
ssh:
  user: frappe
  known_hosts: known_hosts
agent:
  version_command: git -C ~/agent/repo rev-parse HEAD
  update:
    - git -C ~/agent/repo reset --hard {commit}
  health:
    command: curl -fsS http://127.0.0.1:25052/version
`,
  );
  const config = join(dir, 'rollouts', 'canary.yml');
  writeFileSync(config, `name: canary\nservers:\n  - { name: app1, host: 10.0.0.11 }\nssh:\n  user: ops\n`);
  return { dir, defaults, config };
}

test('config -c prints the merged config as YAML, each key with the file and line it came from; --json the same as data', async () => {
  const f = files();
  const env = { AGENT_UPDATE_DEFAULTS: f.defaults };
  const r = await cli(['config', '-c', f.config], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  const line = (re: RegExp) => r.stdout.split('\n').find((l) => re.test(l)) ?? '';
  assert.match(line(/^name:/), /^name: canary +# canary\.yml:1$/);
  assert.match(line(/^ssh:/), /# canary\.yml:4 \+ defaults\.yml:4$/);
  assert.match(line(/^ {2}user:/), /^ {2}user: ops +# canary\.yml:5$/);
  // relative in the defaults: shown with the file it names, next to the defaults
  assert.match(line(/known_hosts:/), new RegExp(`# defaults\\.yml:6 \\(${join(f.dir, 'site', 'known_hosts').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\)$`));
  assert.match(line(/^ {2}repo:/), /# defaults\.yml:2$/);
  assert.match(r.stdout, /merged over the site defaults .*defaults\.yml \(named by \$AGENT_UPDATE_DEFAULTS\)/);

  const j = await cli(['config', '-c', f.config, '--json'], { env });
  assert.equal(j.code, 0, j.stderr);
  const doc = JSON.parse(j.stdout) as { file: string; defaults: { file: string; source: string }; config: Record<string, unknown>; origins: Record<string, { file: string; line?: number; also?: unknown; resolved?: string }> };
  assert.equal(doc.file, f.config);
  assert.deepEqual(doc.defaults, { file: f.defaults, source: '$AGENT_UPDATE_DEFAULTS' });
  assert.deepEqual(Object.keys(doc.config), ['name', 'servers', 'ssh', 'source', 'agent']);
  assert.deepEqual(doc.origins['ssh.user'], { file: f.config, line: 5 });
  assert.deepEqual(doc.origins['ssh.known_hosts'], { file: f.defaults, line: 6, resolved: join(f.dir, 'site', 'known_hosts') });
  assert.deepEqual(doc.origins['agent.update[0]'], { file: f.defaults, line: 10 });
  assert.deepEqual(doc.origins['ssh'], { file: f.config, line: 4, also: { file: f.defaults, line: 4 } });
  // the text is YAML: the same document once the comments are dropped
  assert.deepEqual(parse(r.stdout), doc.config);
});

test('a bad default: exit 2 naming the defaults file, line and key path, nothing on stdout, and plan writes nothing', async () => {
  const f = files();
  writeFileSync(f.defaults, `${stringify({ ssh: { user: 'frappe', port: 'twenty-two', conect_timeout: '5s' } })}`);
  const r = await cli(['config', '-c', f.config], { env: { AGENT_UPDATE_DEFAULTS: f.defaults } });
  assert.equal(r.code, 2, r.stdout + r.stderr);
  assert.equal(r.stdout, '');
  assert.ok(r.stderr.includes(`${f.defaults}:3: ssh.port: must be a port number`), r.stderr);
  assert.ok(r.stderr.includes(`${f.defaults}:4: ssh.conect_timeout: unknown key; did you mean connect_timeout?`), r.stderr);
  // the config's problems are against the config (source and agent are required, the defaults have neither)
  assert.ok(r.stderr.includes(`${f.config}: source: is required`), r.stderr);
  // plan reads the same way, and writes nothing
  const db = join(f.dir, 'plan.db');
  const p = await cli(['plan', '-c', f.config], { env: { AGENT_UPDATE_DEFAULTS: f.defaults }, db });
  assert.equal(p.code, 2);
  assert.ok(p.stderr.includes(`${f.defaults}:3: ssh.port`), p.stderr);
  assert.equal(existsSync(db), false);
});

test('$AGENT_UPDATE_DEFAULTS naming a missing file is exit 2; unset, the per-user file in $XDG_CONFIG_HOME is read; empty, none', async () => {
  const f = files();
  const missing = join(f.dir, 'no-such', 'defaults.yml');
  const r = await cli(['config', '-c', f.config], { env: { AGENT_UPDATE_DEFAULTS: missing } });
  assert.equal(r.code, 2);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /no-such\/defaults\.yml: site defaults \(named by \$AGENT_UPDATE_DEFAULTS\): no such file/);
  const j = await cli(['config', '-c', f.config, '--json'], { env: { AGENT_UPDATE_DEFAULTS: missing } });
  assert.equal(j.code, 2);
  const err = JSON.parse(j.stdout) as { error: string; problems: Array<{ file: string }> };
  assert.match(err.error, /no such file/);
  assert.deepEqual(err.problems.map((p) => p.file), [missing]);

  const xdg = join(f.dir, 'xdg');
  mkdirSync(join(xdg, 'agent-update'), { recursive: true });
  writeFileSync(join(xdg, 'agent-update', 'defaults.yml'), `known_hosts_is_elsewhere: 1\n`);
  // unset: the file in $XDG_CONFIG_HOME, here with an unknown key reported against it
  const x = await cli(['config', '-c', f.config], { env: { AGENT_UPDATE_DEFAULTS: undefined as unknown as string, XDG_CONFIG_HOME: xdg } });
  assert.equal(x.code, 2);
  assert.ok(x.stderr.includes(`${join(xdg, 'agent-update', 'defaults.yml')}:1: known_hosts_is_elsewhere: unknown key`), x.stderr);
  // empty: no defaults, so the lean config alone lacks source and agent
  const none = await cli(['config', '-c', f.config], { env: { XDG_CONFIG_HOME: xdg } });
  assert.equal(none.code, 2);
  assert.ok(!none.stderr.includes('known_hosts_is_elsewhere'), none.stderr);
  assert.match(none.stderr, /source: is required/);
});

/** The fleet's config split: what a site shares in the defaults (a relative key path), the rest in the config. */
function split(fleet: Fleet): { defaults: string; config: string } {
  const whole = fleet.configObject();
  const site = join(fleet.root, 'site');
  mkdirSync(site, { recursive: true });
  const ssh = { ...(whole.ssh as Record<string, unknown>), identity_file: relative(site, fleet.identityFile) };
  const defaults = join(site, 'defaults.yml');
  writeFileSync(defaults, stringify({ source: whole.source, ssh, agent: whole.agent, rollback: whole.rollback }));
  const config = join(fleet.root, 'lean.yml');
  writeFileSync(config, stringify({ name: 'lean', servers: whole.servers, restart: whole.restart }));
  return { defaults, config };
}

test('plan of a config that leans on the site defaults probes the real fleet; plan -c --show-commands reads them too', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const { defaults, config } = split(fleet);
  const env = { AGENT_UPDATE_DEFAULTS: defaults };
  const db = join(fleet.root, 'plan.db');

  // without the defaults the config is not enough
  const alone = await cli(['plan', '-c', config], { db });
  assert.equal(alone.code, 2, alone.stdout + alone.stderr);
  assert.equal(existsSync(db), false);

  const r = await cli(['plan', '-c', config], { env, db });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const doc = await cliStatusJson(db, 'lean');
  assert.equal(doc.source.repo, fleet.upstream.repo);
  assert.equal(doc.source.branch, 'master');
  const s = byName(doc);
  assert.deepEqual([s.s1?.status, s.s2?.status], ['pending', 'pending'], JSON.stringify(doc.servers));
  assert.match(s.s1!.fromCommit ?? '', /^[0-9a-f]{40}$/);

  const show = await cli(['plan', '-c', config, '--show-commands', '--json'], { env });
  assert.equal(show.code, 0, show.stderr);
  // the update commands of the defaults, with the defaults' repo filled in, for both servers
  const commands = JSON.stringify(JSON.parse(show.stdout));
  assert.ok(commands.includes(fleet.upstream.repo), commands.slice(0, 400));
  assert.match(commands, /"s1"[\s\S]*"s2"/);
});
