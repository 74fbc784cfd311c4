/**
 * `inventory:`, `include:` and `exclude:` in a config, end to end through loadConfig: the union
 * with `servers:`, every problem with its file and line, server_types with hosts in several
 * groups, and the selection plan makes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { selectServers } from '../../src/plan/plan.js';
import { configError } from './helpers.js';

const AGENT = `source:
  repo: https://github.com/example/agent
  branch: master
agent:
  version_command: git rev-parse HEAD
  update:
    - git fetch {repo} {branch}
  health:
    command: curl -fsS http://127.0.0.1/version
`;

/** A folder with a HOME (known_hosts in it), the config `fleet.yaml` and other files. */
function setup(config: string, files: Record<string, string> = {}): { dir: string; home: string; file: string; load: () => Config } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-update-invcfg-'));
  const home = path.join(dir, 'home');
  fs.mkdirSync(path.join(home, '.ssh'), { recursive: true });
  fs.writeFileSync(path.join(home, '.ssh', 'known_hosts'), '');
  for (const [name, text] of Object.entries(files)) {
    const full = path.join(dir, name.replace(/^~\//, 'home/'));
    fs.mkdirSync(path.dirname(full), { recursive: true });
    fs.writeFileSync(full, text);
  }
  const file = path.join(dir, 'fleet.yaml');
  fs.writeFileSync(file, config);
  return { dir, home, file, load: () => loadConfig(file, { env: { HOME: home, USER: 'op' } }) };
}


const INI = `[web]
web1 ansible_host=10.0.0.1
web2 ansible_host=10.0.0.2 ansible_port=2222

[db]
db1 ansible_host=10.0.1.1 ansible_user=postgres
web2

[prod:children]
web
db
`;

test('inventory: instead of servers: every host a server, its groups its types (the first the primary one)', () => {
  const { load } = setup(`${AGENT}inventory: hosts.ini\nssh:\n  port: 2200\n`, { 'hosts.ini': INI });
  const c = load();
  assert.deepEqual(c.servers, [
    { name: 'web1', host: '10.0.0.1', port: 2200, user: 'op', type: 'web', types: ['web', 'prod'] },
    { name: 'web2', host: '10.0.0.2', port: 2222, user: 'op', type: 'web', types: ['web', 'db', 'prod'] },
    { name: 'db1', host: '10.0.1.1', port: 2200, user: 'postgres', type: 'db', types: ['db', 'prod'] },
  ]);
  assert.equal(path.basename(c.inventory ?? ''), 'hosts.ini');
});

test('inventory: relative to the config folder, ~ is home; servers: and inventory together are the union, servers first', () => {
  const { load, home } = setup(
    `${AGENT}inventory: ~/inv/hosts\nservers:\n  - { name: extra, host: 10.9.9.9, type: [tools, ops] }\n`,
    { '~/inv/hosts': INI },
  );
  const c = load();
  assert.deepEqual(c.servers.map((s) => s.name), ['extra', 'web1', 'web2', 'db1']);
  assert.deepEqual(c.servers[0]!.types, ['tools', 'ops'], 'type may be a list in servers: too');
  assert.equal(c.inventory, path.join(home, 'inv', 'hosts'));
  const rel = setup(`${AGENT}inventory: inventories/prod.yml\n`, { 'inventories/prod.yml': 'all:\n  hosts:\n    a:\n' });
  assert.deepEqual(rel.load().servers.map((s) => s.name), ['a']);
});

test("agent-update's own format in an inventory file, with its problems in that file", () => {
  const good = setup(`${AGENT}inventory: servers.yml\n`, { 'servers.yml': '- { name: a, host: 10.0.0.1, type: app }\n- { name: b, host: 10.0.0.2, port: 2222 }\n' });
  assert.deepEqual(good.load().servers, [
    { name: 'a', host: '10.0.0.1', port: 22, user: 'op', type: 'app', types: ['app'] },
    { name: 'b', host: '10.0.0.2', port: 2222, user: 'op', type: 'default', types: ['default'] },
  ]);
  const bad = setup(`${AGENT}inventory: servers.yml\n`, {
    'servers.yml': 'servers:\n  - name: a\n    host: 10.0.0.1\n  - name: a\n    host: "bad host"\n    prot: 22\nextra: 1\n',
  });
  const e = configError(bad.load);
  const inv = path.join(bad.dir, 'servers.yml');
  assert.deepEqual(e.message.split('\n'), [
    `${inv}:4: servers[1].name: duplicate server name "a" (also servers[0])`,
    `${inv}:5: servers[1].host: "bad host" must not contain whitespace`,
    `${inv}:6: servers[1].prot: unknown key; did you mean port?`,
    `${inv}:7: extra: unknown key: an inventory in agent-update's format holds servers: only`,
  ]);
});

test('the same name in servers: and in the inventory is an error naming both places', () => {
  const { load, file, dir } = setup(`${AGENT}inventory: hosts.ini\nservers:\n  - { name: app1, host: 10.0.0.50 }\n  - { name: web2, host: 10.0.0.99 }\n`, {
    'hosts.ini': INI,
  });
  const e = configError(load);
  assert.deepEqual(e.message.split('\n'), [
    `${file}:13: servers[1].name: duplicate server name "web2": the inventory lists it too (${path.join(dir, 'hosts.ini')}:3); list each server once, under servers or in the inventory`,
  ]);
});

test('the same user@host:port twice is refused, across servers: and the inventory and within the inventory', () => {
  const across = setup(`${AGENT}inventory: hosts.ini\nssh:\n  user: op\nservers:\n  - { name: app1, host: 10.0.0.1 }\n`, { 'hosts.ini': INI });
  const e = configError(across.load);
  assert.deepEqual(e.message.split('\n'), [
    `${path.join(across.dir, 'hosts.ini')}:2: web1: "web1" is the same host, port and user (op@10.0.0.1:22) as servers[0] "app1" (${across.file}:14): one account is one agent checkout; list it once`,
  ]);
  const within = setup(`${AGENT}inventory: hosts.ini\n`, { 'hosts.ini': '[g]\nworker[a:c] ansible_host=10.9.1.1\n' });
  const inv = path.join(within.dir, 'hosts.ini');
  assert.deepEqual(configError(within.load).message.split('\n'), [
    `${inv}:2: workerb: "workerb" is the same host, port and user (op@10.9.1.1:22) as "workera" (line 2): one account is one agent checkout; list it once`,
    `${inv}:2: workerc: "workerc" is the same host, port and user (op@10.9.1.1:22) as "workera" (line 2): one account is one agent checkout; list it once`,
  ]);
});

test('a missing or unreadable inventory names the config file and the inventory key', () => {
  const { load, file, dir } = setup(`${AGENT}inventory: nope.ini\n`);
  const e = configError(load);
  assert.deepEqual(e.message.split('\n'), [`${file}:10: inventory: file not found: ${path.join(dir, 'nope.ini')} (from "nope.ini")`]);
  const folder = setup(`${AGENT}inventory: inv\n`, { 'inv/hosts': 'a\n' });
  assert.match(configError(folder.load).message, /fleet\.yaml:10: inventory: .*inv is a folder; inventory folders are not supported/);
  const notString = setup(`${AGENT}inventory: [a.ini]\n`);
  assert.match(configError(notString.load).message, /fleet\.yaml:10: inventory: must be a file path \(a string\), got a list/);
});

test('problems inside the inventory name its file and line; a bad group variable is reported once, not per host', () => {
  const { load, dir } = setup(`${AGENT}inventory: hosts.ini\n`, {
    'hosts.ini': '[web]\nweb[1:20]\nbad_@host\n[web:vars]\nansible_port=22x\nansible_user=-rf\n',
  });
  const inv = path.join(dir, 'hosts.ini');
  assert.deepEqual(configError(load).message.split('\n'), [
    `${inv}:3: bad_@host: "bad_@host" is not a valid server name (letters, digits, '.', '_' and '-', starting with a letter or digit): give the host a name and put the address in ansible_host, e.g. web1 ansible_host=2001:db8::1`,
    `${inv}:5: [web:vars] ansible_port: must be a port number (an integer 1 to 65535), got the string "22x"`,
    `${inv}:6: [web:vars] ansible_user: "-rf" must not start with '-'`,
  ]);
  const syntax = setup(`${AGENT}inventory: hosts.ini\nserver_types: [web]\n`, { 'hosts.ini': '[web]\nweb1 ansible_host="10.0.0.1\n' });
  assert.deepEqual(configError(syntax.load).message.split('\n'), [
    `${path.join(syntax.dir, 'hosts.ini')}:2: [web]: cannot read the host line: a quote is not closed`,
  ], 'and nothing else: server_types is not judged against a half-read inventory');
});

test('config problems come first, then the inventory\'s, each sorted by line', () => {
  const { load, file, dir } = setup(`${AGENT.replace('branch: master', 'branch: "a..b"')}inventory: hosts.ini\n`, {
    'hosts.ini': '[web]\nweb1 ansible_port=0\n',
  });
  const lines = configError(load).message.split('\n');
  assert.equal(lines.length, 2);
  assert.ok(lines[0]!.startsWith(`${file}:3: source.branch:`), lines[0]);
  assert.ok(lines[1]!.startsWith(`${path.join(dir, 'hosts.ini')}:2: web1 ansible_port: must be a port number`), lines[1]);
});

test('server_types selects a server when any of its types is listed; all and ungrouped are not types', () => {
  const { load } = setup(`${AGENT}inventory: hosts.ini\nserver_types: [db]\n`, { 'hosts.ini': INI });
  const c = load();
  assert.deepEqual(c.serverTypes, ['db']);
  assert.deepEqual(selectServers(c).map((s) => s.name), ['web2', 'db1'], 'web2 is in web and db');
  const parent = setup(`${AGENT}inventory: hosts.ini\nserver_types: [prod]\n`, { 'hosts.ini': INI });
  assert.deepEqual(selectServers(parent.load()).map((s) => s.name), ['web1', 'web2', 'db1'], 'a parent group selects its children\'s hosts');
  const all = setup(`${AGENT}inventory: hosts.ini\nserver_types: [all]\n`, { 'hosts.ini': INI });
  assert.match(configError(all.load).message, /server_types\[0\]: no server has type "all"; Ansible's group all is not a type: leave server_types out to cover every server \(the servers' types: web, prod, db\)/);
  const ungrouped = setup(`${AGENT}inventory: hosts.ini\nserver_types: [ungrouped]\n`, { 'hosts.ini': 'lone\n[web]\nweb1\n' });
  assert.match(configError(ungrouped.load).message, /no server has type "ungrouped"; Ansible's group ungrouped is not a type: hosts in no group have the type default/);
  const dflt = setup(`${AGENT}inventory: hosts.ini\nserver_types: [default]\n`, { 'hosts.ini': 'lone\n[web]\nweb1\n' });
  assert.deepEqual(selectServers(dflt.load()).map((s) => s.name), ['lone']);
});

test('include and exclude: globs on server names, after server_types; a string or a list', () => {
  const servers = Array.from({ length: 6 }, (_, i) => `  - { name: web${i + 1}, host: 10.0.0.${i + 1}, type: ${i < 4 ? 'web' : 'canary'} }`).join('\n');
  const names = (extra: string) => selectServers(setup(`${AGENT}servers:\n${servers}\n  - { name: db1, host: 10.0.1.1, type: db }\n${extra}`).load()).map((s) => s.name);
  assert.deepEqual(names('include: "web*"\n'), ['web1', 'web2', 'web3', 'web4', 'web5', 'web6']);
  assert.deepEqual(names('include: [db1, "web[1-2]"]\n'), ['web1', 'web2', 'db1'], 'config order, not pattern order');
  assert.deepEqual(names('exclude: web?\n'), ['db1']);
  assert.deepEqual(names('include: "web*"\nexclude: [web2, "web{5,6}"]\n'), ['web1', 'web3', 'web4']);
  assert.deepEqual(names('server_types: [web]\nexclude: web1\n'), ['web2', 'web3', 'web4']);
  assert.deepEqual(names('exclude: nothing-like-this\n'), ['web1', 'web2', 'web3', 'web4', 'web5', 'web6', 'db1'], 'an exclude that matches nothing is fine');
  assert.deepEqual(names('include: "!(web*)"\n'), ['db1'], 'extglobs work');
});

test('include and exclude: an include matching nothing, a selection left empty, bad patterns are config errors', () => {
  const cfg = `${AGENT}servers:\n  - { name: web1, host: 10.0.0.1, type: web }\n  - { name: db1, host: 10.0.1.1, type: db }\n`;
  const msg = (extra: string) => configError(setup(cfg + extra).load).message.replace(/^.*fleet\.yaml:\d+: /, '');
  assert.equal(msg('include: [web*, wbe*]\n'), 'include[1]: "wbe*" matches no server (the servers: web1, db1); a pattern that matches nothing is almost always a typo');
  assert.equal(msg('server_types: [db]\ninclude: web*\n'), 'include: "web*" matches no server of server_types (db); it matches web1, of other types');
  assert.equal(msg('exclude: "*"\n'), 'exclude: leaves no server to update (of 2 in all)');
  assert.equal(
    msg('include: "web[1:3]"\n'),
    'include: "web[1:3]": [1:3] is an inventory range, not a glob (in a glob it is one character of [1:3]); use a character class such as web0[1-3] or a brace list such as web{01,02,03}',
  );
  assert.equal(msg('include: []\n'), 'include: must list at least one server-name pattern; leave it out to keep every server');
  assert.equal(msg('exclude: [""]\n'), 'exclude[0]: must not be empty');
  assert.equal(msg('include: [1]\n'), 'include[0]: must be a server-name pattern (a string), e.g. "web*"; YAML read it as the number 1, so put it in quotes');
});

test('include over an inventory: the CLI-style selection of an Ansible fleet', () => {
  const { load } = setup(`${AGENT}inventory: hosts.ini\nserver_types: [prod]\ninclude: "web*"\nexclude: web2\n`, { 'hosts.ini': INI });
  assert.deepEqual(selectServers(load()).map((s) => s.name), ['web1']);
});

test('Ansible ssh variables become the server fields: jump hosts, key file (~ and group vars), -o User/Port; refusals exit 2 at file:line', () => {
  const { load, home } = setup(`${AGENT}inventory: hosts.ini\n`, {
    'hosts.ini':
      "[private]\napp1 ansible_host=10.0.1.11 ansible_ssh_common_args='-o ProxyJump=ops@bastion.example.com:2222,inner'\n" +
      "app2 ansible_host=10.0.1.12 ansible_ssh_common_args='-o ProxyCommand=\"ssh -q -l jumper -W %h:%p bastion\" -o User=app -o Port=2200'\n" +
      '[private:vars]\nansible_ssh_private_key_file=~/.vagrant.d/insecure_private_key\n',
    '~/.vagrant.d/insecure_private_key': 'key',
  });
  const key = path.join(home, '.vagrant.d', 'insecure_private_key');
  assert.deepEqual(load().servers, [
    {
      name: 'app1',
      host: '10.0.1.11',
      port: 22,
      user: 'op',
      type: 'private',
      types: ['private'],
      identityFiles: [key],
      jump: [
        { host: 'bastion.example.com', port: 2222, user: 'ops' },
        { host: 'inner', port: 22, user: 'op' },
      ],
    },
    { name: 'app2', host: '10.0.1.12', port: 2200, user: 'app', type: 'private', types: ['private'], identityFiles: [key], jump: [{ host: 'bastion', port: 22, user: 'jumper' }] },
  ]);
  const bad = setup(`${AGENT}inventory: hosts.ini\n`, { 'hosts.ini': '[local]\nctl\n[local:vars]\nansible_connection=local\nansible_ssh_private_key_file=~/missing\n' });
  const inv = path.join(bad.dir, 'hosts.ini');
  assert.deepEqual(configError(bad.load).message.split('\n'), [
    `${inv}:4: [local:vars] ansible_connection: host "ctl": ansible_connection=local (set at ${inv}:4, [local:vars] ansible_connection): Ansible would not use ssh for this host, and agent-update only reaches servers over SSH; leave this host out of the inventory agent-update reads, or give it an ssh connection (ansible_connection=ssh)`,
  ]);
  const missing = setup(`${AGENT}inventory: hosts.ini\n`, { 'hosts.ini': '[g]\nh1\n[g:vars]\nansible_ssh_private_key_file=~/missing\n' });
  const inv2 = path.join(missing.dir, 'hosts.ini');
  assert.deepEqual(configError(missing.load).message.split('\n'), [
    `${inv2}:4: [g:vars] ansible_ssh_private_key_file: file not found: ${path.join(missing.home, 'missing')} (from "~/missing")`,
  ]);
});
