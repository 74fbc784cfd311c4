/**
 * `agent-update servers -c FILE [--json]` through the real CLI (issue 21): each server as the
 * transport will reach it, with where each value came from: a plain `servers:` list, an Ansible
 * INI inventory, an ssh config (checked against `ssh -G` when ssh is installed); a refused server
 * is exit 2 with the loader's message; relative paths are printed absolute; nothing is written.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { ServerReachJson } from '../../src/cli/servers.js';
import { cli, testStateHome } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';

const BASE = `source: { repo: https://github.com/example/agent, branch: master }
agent:
  version_command: git -C ~/agent rev-parse HEAD
  update: [git -C ~/agent fetch]
  health: { command: curl -fsS http://127.0.0.1:8080/version }
`;

/** A folder with keys, known_hosts files and `config.yaml` = BASE + `extra`. */
function folder(extra: string, files: Record<string, string> = {}): { dir: string; config: string } {
  const dir = makeTempDir('agent-update-servers-');
  mkdirSync(join(dir, 'keys'));
  for (const f of ['keys/id_a', 'keys/id_b', 'keys/id_c', 'known_hosts', 'kh_web']) writeFileSync(join(dir, f), '');
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const config = join(dir, 'config.yaml');
  writeFileSync(config, BASE + extra);
  return { dir, config };
}

type ServerJson = ServerReachJson;

async function serversJson(config: string, env: Record<string, string> = {}): Promise<ServerJson[]> {
  const r = await cli(['servers', '-c', config, '--json'], { env: { SSH_AUTH_SOCK: '', ...env } });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  const doc = JSON.parse(r.stdout) as { servers: ServerJson[] };
  assert.deepEqual(Object.keys(doc), ['servers']);
  return doc.servers;
}

/** The text's row `label` of server `name`: its value and its source. */
function row(text: string, name: string, label: string): string {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.startsWith(`${name}  (`));
  assert.ok(start >= 0, `no block for ${name} in:\n${text}`);
  const found = lines.slice(start + 1).find((l) => l.startsWith(`  ${label} `));
  assert.ok(found, `no row ${label} for ${name} in:\n${text}`);
  return found.slice(2 + label.length).trim().replace(/ {2,}/g, ' | ');
}

test('a plain servers: list: --json has exactly the documented shape, the ssh block filling in; the text says where each value came from', async () => {
  const { dir, config } = folder(`ssh:
  user: frappe
  identity_file: keys/id_a
  known_hosts: known_hosts
servers:
  - { name: app1, host: 10.0.0.11, port: 2222, type: [app, web] }
  - { name: db1, host: db1.internal, user: ops, identity_file: keys/id_b, jump: admin@bastion.example.com:2022 }
`);
  const servers = await serversJson(config);
  assert.deepEqual(servers, [
    {
      name: 'app1',
      types: ['app', 'web'],
      host: '10.0.0.11',
      port: 2222,
      user: 'frappe',
      identityFiles: [join(dir, 'keys/id_a')],
      identityAgent: 'none',
      identitiesOnly: true,
      jump: [],
      knownHosts: join(dir, 'known_hosts'),
    },
    {
      name: 'db1',
      types: ['default'],
      host: 'db1.internal',
      port: 22,
      user: 'ops',
      identityFiles: [join(dir, 'keys/id_b')],
      identityAgent: 'none',
      identitiesOnly: true,
      jump: [{ host: 'bastion.example.com', port: 2022, user: 'admin' }],
      knownHosts: join(dir, 'known_hosts'),
    },
  ]);

  // the agent: $SSH_AUTH_SOCK when ssh.agent is true (the default) and it is set
  const withAgent = await serversJson(config, { SSH_AUTH_SOCK: '/tmp/agent.sock' });
  assert.equal(withAgent[0]!.identityAgent, '/tmp/agent.sock');
  assert.equal(withAgent[0]!.identitiesOnly, false);

  const r = await cli(['servers', '-c', config], { env: { SSH_AUTH_SOCK: '/tmp/agent.sock' } });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(row(r.stdout, 'app1', 'host'), '10.0.0.11 | servers[0].host');
  assert.equal(row(r.stdout, 'app1', 'port'), '2222 | servers[0].port');
  assert.equal(row(r.stdout, 'app1', 'user'), 'frappe | ssh.user');
  assert.equal(row(r.stdout, 'app1', 'identity files'), `${join(dir, 'keys/id_a')} | ssh.identity_file`);
  assert.equal(row(r.stdout, 'app1', 'identity agent'), '/tmp/agent.sock | $SSH_AUTH_SOCK (ssh.agent: true)');
  assert.equal(row(r.stdout, 'app1', 'known_hosts'), `${join(dir, 'known_hosts')} | ssh.known_hosts`);
  assert.equal(row(r.stdout, 'db1', 'port'), '22 | ssh.port not set: 22');
  assert.equal(row(r.stdout, 'db1', 'user'), 'ops | servers[1].user');
  assert.equal(row(r.stdout, 'db1', 'identity files'), `${join(dir, 'keys/id_b')} | servers[1].identity_file`);
  assert.equal(row(r.stdout, 'db1', 'jump hosts'), 'admin@bastion.example.com:2022 | servers[1].jump');
});

test('an Ansible INI inventory: ansible_host, ansible_user and ansible_port, each with its file and line', async () => {
  const { dir, config } = folder(
    `ssh: { user: frappe, known_hosts: known_hosts, agent: false, identity_file: keys/id_a }
inventory: hosts.ini
`,
    { 'hosts.ini': '[db]\ndb1 ansible_host=10.0.0.31 ansible_user=pg ansible_port=2201\ndb2\n\n[db:vars]\nansible_port=2202\n' },
  );
  const servers = await serversJson(config);
  assert.deepEqual(
    servers.map((s) => [s.name, s.types, s.host, s.port, s.user]),
    [
      ['db1', ['db'], '10.0.0.31', 2201, 'pg'],
      ['db2', ['db'], 'db2', 2202, 'frappe'],
    ],
  );
  assert.equal(servers[0]!.identityAgent, 'none');
  const r = await cli(['servers', '-c', config]);
  assert.equal(r.code, 0, r.stderr);
  const ini = join(dir, 'hosts.ini');
  assert.match(row(r.stdout, 'db1', 'host'), new RegExp(`^10\\.0\\.0\\.31 \\| ${esc(ini)}:2 \\(.*ansible_host\\)$`));
  assert.match(row(r.stdout, 'db1', 'user'), new RegExp(`^pg \\| ${esc(ini)}:2 \\(.*ansible_user\\)$`));
  assert.match(row(r.stdout, 'db1', 'port'), new RegExp(`^2201 \\| ${esc(ini)}:2 \\(.*ansible_port\\)$`));
  assert.match(row(r.stdout, 'db2', 'port'), new RegExp(`^2202 \\| ${esc(ini)}:6 \\(.*ansible_port\\)$`));
  assert.equal(row(r.stdout, 'db2', 'user'), 'frappe | ssh.user');
  assert.equal(row(r.stdout, 'db2', 'identity agent'), 'none | ssh.agent: false');
});

function esc(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

function hasSsh(): boolean {
  try {
    execFileSync('ssh', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

test('an ssh config: HostName, User, Port, IdentityFile, ProxyJump, UserKnownHostsFile as ssh -G resolves them, with file:line', async (t) => {
  const dir0 = makeTempDir('agent-update-servers-sshcfg-');
  // absolute paths in the ssh config, so ssh -G (which resolves nothing against the file) names the same files
  const sshConfig = `Host bastion
  HostName 192.0.2.1
  User jumper
  Port 2022

Host web*
  HostName %h.example.com
  User deploy
  Port 2200
  IdentityFile ${dir0}/keys/id_b
  IdentityFile ${dir0}/keys/id_c
  ProxyJump bastion
  UserKnownHostsFile ${dir0}/kh_web
`;
  mkdirSync(join(dir0, 'keys'));
  for (const f of ['keys/id_a', 'keys/id_b', 'keys/id_c', 'known_hosts', 'kh_web']) writeFileSync(join(dir0, f), '');
  writeFileSync(join(dir0, 'ssh_config'), sshConfig);
  const config = join(dir0, 'config.yaml');
  writeFileSync(
    config,
    `${BASE}ssh: { user: frappe, known_hosts: known_hosts, identity_file: keys/id_a, config: ssh_config, agent: false }
servers:
  - { name: web1 }
  - { name: app1, host: 10.0.0.11 }
`,
  );
  const [web1, app1] = await serversJson(config);
  assert.deepEqual(web1, {
    name: 'web1',
    types: ['default'],
    host: 'web1.example.com',
    port: 2200,
    user: 'deploy',
    identityFiles: [join(dir0, 'keys/id_b'), join(dir0, 'keys/id_c')],
    identityAgent: 'none',
    identitiesOnly: true,
    jump: [{ host: '192.0.2.1', port: 2022, user: 'jumper' }],
    knownHosts: join(dir0, 'kh_web'),
  });
  assert.equal(app1!.host, '10.0.0.11');
  assert.equal(app1!.knownHosts, join(dir0, 'known_hosts'));

  const r = await cli(['servers', '-c', config]);
  assert.equal(r.code, 0, r.stderr);
  const at = (line: number) => `ssh config ${join(dir0, 'ssh_config')}:${line}`;
  assert.equal(row(r.stdout, 'web1', 'host'), `web1.example.com | ${at(7)}`);
  assert.equal(row(r.stdout, 'web1', 'user'), `deploy | ${at(8)}`);
  assert.equal(row(r.stdout, 'web1', 'port'), `2200 | ${at(9)}`);
  assert.equal(row(r.stdout, 'web1', 'identity files'), `${join(dir0, 'keys/id_b')}, ${join(dir0, 'keys/id_c')} | ${at(10)}, ${at(11)}`);
  assert.equal(row(r.stdout, 'web1', 'jump hosts'), `jumper@192.0.2.1:2022 | ${at(12)}`);
  assert.equal(row(r.stdout, 'web1', 'known_hosts'), `${join(dir0, 'kh_web')} | ${at(13)}`);
  assert.equal(row(r.stdout, 'app1', 'host'), '10.0.0.11 | servers[1].host');

  if (!hasSsh()) {
    t.diagnostic('ssh is not installed: not compared with ssh -G');
    return;
  }
  const g = execFileSync('ssh', ['-G', '-F', join(dir0, 'ssh_config'), 'web1'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const all = (k: string) => g.split('\n').filter((l) => l.startsWith(`${k} `)).map((l) => l.slice(k.length + 1));
  assert.deepEqual([web1!.host], all('hostname'));
  assert.deepEqual([String(web1!.port)], all('port'));
  assert.deepEqual([web1!.user], all('user'));
  assert.deepEqual(web1!.identityFiles, all('identityfile'));
  assert.deepEqual([web1!.knownHosts], all('userknownhostsfile'));
  assert.deepEqual(['bastion'], all('proxyjump'));
  const b = execFileSync('ssh', ['-G', '-F', join(dir0, 'ssh_config'), 'bastion'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const hop = (k: string) => b.split('\n').find((l) => l.startsWith(`${k} `))?.slice(k.length + 1);
  assert.deepEqual(web1!.jump, [{ host: hop('hostname'), port: Number(hop('port')), user: hop('user') }]);
});

test('a server plan would refuse: exit 2 with the loader message, nothing on stdout; with --json the error object', async () => {
  const { config } = folder(
    `ssh: { user: frappe, known_hosts: known_hosts, config: ssh_config }
servers:
  - { name: web1 }
`,
    { ssh_config: 'Host web1\n  ProxyCommand nc %h %p\n' },
  );
  const r = await cli(['servers', '-c', config]);
  assert.equal(r.code, 2, r.stdout + r.stderr);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /servers\[0\]\.host.*ProxyCommand .*is not supported/);
  const plan = await cli(['plan', '-c', config], { db: join(makeTempDir('agent-update-servers-db-'), 'p.db') });
  assert.equal(plan.code, 2);
  assert.equal(r.stderr, plan.stderr, 'the same messages as plan');

  const j = await cli(['servers', '-c', config, '--json']);
  assert.equal(j.code, 2);
  const err = JSON.parse(j.stdout) as { type: string; exitCode: number; error: string; problems: Array<{ path: string; message: string }> };
  assert.equal(err.type, 'error');
  assert.equal(err.exitCode, 2);
  assert.match(err.error, /ProxyCommand/);
  assert.deepEqual(err.problems.map((p) => p.path), ['servers[0].host']);
});

test('servers writes nothing: no database appears, the XDG state folder stays as it was', async () => {
  const { dir, config } = folder(`ssh: { user: frappe, known_hosts: known_hosts }
servers:
  - { name: app1, host: 10.0.0.11 }
`);
  const state = makeTempDir('agent-update-servers-state-');
  const before = readdirSync(dir).sort();
  const r = await cli(['servers', '-c', config], { env: { XDG_STATE_HOME: state, AGENT_UPDATE_DB: join(dir, 'x.db') } });
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /database/);
  assert.deepEqual(readdirSync(state), []);
  assert.deepEqual(readdirSync(dir).sort(), before);
  assert.equal(existsSync(join(dir, 'x.db')), false);
  assert.equal(existsSync(join(testStateHome(), 'agent-update', 'agent-update.db')), false);
});
