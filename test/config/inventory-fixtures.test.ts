/**
 * Our inventory parser against Ansible itself: each inventory under test/fixtures/inventory/ has
 * next to it the output of `ansible-inventory -i F --list` (F.ansible.json, see the README
 * there). For every host: the same hosts, the same groups (every group a host is in, through
 * child groups too), the same variables with the same values (so precedence, literal_eval and
 * YAML 1.1 are Ansible's), and the same address, port and user to connect to.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { detectFormat, parseAnsible, readInventory } from '../../src/config/inventory/index.js';

const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/inventory/', import.meta.url));

interface AnsibleList {
  _meta: { hostvars: Record<string, Record<string, unknown>> };
  [group: string]: { hosts?: string[]; children?: string[] } | AnsibleList['_meta'];
}

function fixtures(dir = FIXTURES): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...fixtures(full));
    else if (e.name.endsWith('.ansible.json')) out.push(full.slice(0, -'.ansible.json'.length));
  }
  return out.sort();
}

/** ansible-inventory's JSON writes `!unsafe` and `!vault` values as wrappers: unwrap them. */
function normalise(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(normalise);
  if (typeof v === 'object' && v !== null) {
    const o = v as Record<string, unknown>;
    if (Object.keys(o).length === 1 && '__ansible_unsafe' in o) return o.__ansible_unsafe;
    if (Object.keys(o).length === 1 && '__ansible_vault' in o) return { vault: true };
    return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, normalise(x)]));
  }
  return v;
}

function sorted<T>(o: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Hosts and their groups (transitively, without all and ungrouped) from the JSON. */
function expected(list: AnsibleList): Map<string, { groups: string[]; vars: Record<string, unknown> }> {
  const parents = new Map<string, string[]>();
  for (const [g, v] of Object.entries(list)) {
    if (g === '_meta') continue;
    for (const c of (v as { children?: string[] }).children ?? []) parents.set(c, [...(parents.get(c) ?? []), g]);
  }
  const out = new Map<string, { groups: string[]; vars: Record<string, unknown> }>();
  for (const [g, v] of Object.entries(list)) {
    if (g === '_meta') continue;
    for (const h of (v as { hosts?: string[] }).hosts ?? []) {
      const groups = new Set(out.get(h)?.groups ?? []);
      const queue = [g];
      for (let x = queue.shift(); x !== undefined; x = queue.shift()) {
        if (groups.has(x)) continue;
        groups.add(x);
        queue.push(...(parents.get(x) ?? []));
      }
      out.set(h, { groups: [...groups], vars: {} });
    }
  }
  for (const [h, e] of out) {
    e.groups = e.groups.filter((g) => g !== 'all' && g !== 'ungrouped').sort();
    e.vars = sorted(normalise(list._meta.hostvars[h] ?? {}) as Record<string, unknown>);
  }
  return out;
}

/**
 * Where Ansible's ssh connection goes, from the host's variables: the old `ansible_ssh_*` name
 * wins when both are set (checked with `ansible -m ping -vvv`); the address defaults to the
 * inventory name, port and user to the config's ssh.port and ssh.user (null here).
 */
function connection(name: string, vars: Record<string, unknown>): { host: unknown; port: unknown; user: unknown } {
  const get = (field: string) => vars[`ansible_ssh_${field}`] ?? vars[`ansible_${field}`] ?? null;
  const port = get('port');
  const user = get('user');
  return {
    host: String(get('host') ?? name),
    port: typeof port === 'string' && /^\d+$/.test(port) ? Number(port) : port,
    user: user === '' || user === null ? null : String(user),
  };
}

const FILES = fixtures();

test('there are fixtures: INI and YAML, flat, nested, tricky, values, group_vars/host_vars', () => {
  const names = FILES.map((f) => path.relative(FIXTURES, f));
  for (const want of [
    'flat.ini',
    'groups.ini',
    'nested.yml',
    'tricky.ini',
    'tricky.yaml',
    'values.ini',
    'values.yml',
    'with-vars-dirs/hosts.ini',
    'proxy.ini',
    'keys.ini',
    'refused.ini',
    'with-keys/hosts.yml',
  ]) {
    assert.ok(names.includes(want), `${want} is missing (have: ${names.join(', ')})`);
  }
});

for (const file of FILES) {
  const rel = path.relative(FIXTURES, file);
  test(`fixture ${rel}: the same hosts, groups and variables as ansible-inventory --list`, () => {
    const text = fs.readFileSync(file, 'utf8');
    const list = JSON.parse(fs.readFileSync(`${file}.ansible.json`, 'utf8')) as AnsibleList;
    const parsed = parseAnsible(file, text, detectFormat(file, text));
    assert.deepEqual(parsed.problems, []);
    const want = expected(list);
    const got = new Map(
      parsed.hosts.map((h) => [
        h.name,
        {
          groups: [...h.groups].sort(),
          vars: sorted(Object.fromEntries([...h.vars].map(([k, d]) => [k, d.vault ? { vault: true } : d.value]))),
        },
      ]),
    );
    assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), 'hosts');
    for (const [name, w] of want) {
      assert.deepEqual(got.get(name)?.groups, w.groups, `${name}: groups`);
      assert.deepEqual(got.get(name)?.vars, w.vars, `${name}: variables`);
    }
    // Hosts come out in the order Ansible lists them first.
    const firstSeen: string[] = [];
    for (const [g, v] of Object.entries(list)) {
      if (g === '_meta') continue;
      for (const h of (v as { hosts?: string[] }).hosts ?? []) if (!firstSeen.includes(h)) firstSeen.push(h);
    }
    assert.equal(parsed.hosts.length, firstSeen.length);
  });

  test(`fixture ${rel}: each host connects where Ansible's ssh would`, () => {
    const list = JSON.parse(fs.readFileSync(`${file}.ansible.json`, 'utf8')) as AnsibleList;
    const want = expected(list);
    const withSshG = fs.existsSync(`${file}.ssh.json`);
    const read = readInventory(file);
    assert.equal(read.kind, 'ansible', JSON.stringify(read));
    if (read.kind !== 'ansible') return;
    const got = new Map(read.entries.map((e) => [e.raw.name as string, e.raw]));
    // The hosts left out are exactly the ones a problem names (a name agent-update cannot use,
    // `host "x": …` for a host refused), and every problem names one of them.
    const left = [...want.keys()].filter((h) => !got.has(h));
    const named = (p: { path: string; message: string }) =>
      left.find((h) => p.path === h || p.path.startsWith(`${h} `) || p.message.startsWith(`host ${JSON.stringify(h)}:`));
    for (const p of read.problems) assert.ok(named(p), `a problem names no host left out: ${p.path}: ${p.message}`);
    assert.deepEqual(left, left.filter((h) => read.problems.some((p) => named(p) === h)), 'every host left out is named by a problem');
    for (const [name, w] of want) {
      const raw = got.get(name);
      if (!raw) continue;
      // with ssh options in the variables, the test below (ssh -G) is the one that knows
      if (!withSshG) {
        const c = connection(name, w.vars);
        assert.equal(raw.host, c.host, `${name}: host`);
        assert.equal(raw.port ?? null, c.port, `${name}: port`);
        assert.equal(raw.user ?? null, c.user, `${name}: user`);
      }
      assert.deepEqual([...(raw.type as string[])].sort(), w.groups.length ? w.groups : ['default'], `${name}: types`);
    }
  });
}

/**
 * What OpenSSH itself makes of the command line Ansible's ssh connection builds for each host
 * (F.ssh.json, written by ssh-g.py with `ssh -G`, see the README there).
 */
interface SshG {
  local_user: string;
  home: string;
  hosts: Record<string, { error?: string; hostname?: string; port?: number; user?: string; identityfile?: string[]; proxyjump?: string; proxycommand?: string }>;
}

/** The ProxyCommands of the fixtures that are a jump, and that jump. */
const PROXY_COMMAND_JUMPS: Record<string, string[]> = {
  'ssh -W %h:%p ops@bastion.example.com': ['ops@bastion.example.com'],
  'ssh -q -p 2222 -l jumper -W %h:%p bastion.example.com': ['jumper@bastion.example.com:2222'],
};

for (const file of FILES.filter((f) => fs.existsSync(`${f}.ssh.json`))) {
  const rel = path.relative(FIXTURES, file);
  test(`fixture ${rel}: host, port, user, key file and jump hosts as ssh -G reads Ansible's ssh command line`, () => {
    const g = JSON.parse(fs.readFileSync(`${file}.ssh.json`, 'utf8')) as SshG;
    const read = readInventory(file);
    assert.equal(read.kind, 'ansible', JSON.stringify(read));
    if (read.kind !== 'ansible') return;
    const got = new Map(read.entries.map((e) => [e.raw.name as string, e.raw]));
    for (const [name, want] of Object.entries(g.hosts)) {
      const raw = got.get(name);
      if (want.error !== undefined) {
        // Ansible's ssh would fail for it: it is refused here
        assert.equal(raw, undefined, `${name}: ssh fails (${want.error}), agent-update must refuse it`);
        continue;
      }
      if (!raw) continue; // refused (the test above checks a problem names it)
      assert.equal(raw.host, want.hostname, `${name}: host`);
      assert.equal(raw.port ?? 22, want.port, `${name}: port`);
      assert.equal(raw.user ?? g.local_user, want.user, `${name}: user`);
      assert.deepEqual(raw.identity_file === undefined ? [] : [raw.identity_file], want.identityfile, `${name}: key file`);
      const jump = want.proxyjump !== undefined ? want.proxyjump.split(',') : want.proxycommand !== undefined ? PROXY_COMMAND_JUMPS[want.proxycommand] : [];
      assert.ok(jump, `${name}: a ProxyCommand the test does not know: ${want.proxycommand}`);
      assert.deepEqual(raw.jump ?? [], jump, `${name}: jump hosts`);
    }
  });
}

test('fixture refused.ini: each host refused by name, with the variable, where it was set and what to do', () => {
  const file = path.join(FIXTURES, 'refused.ini');
  const read = readInventory(file);
  assert.equal(read.kind, 'ansible');
  if (read.kind !== 'ansible') return;
  assert.deepEqual(read.entries.map((e) => e.raw.name), []);
  const lines = read.problems.map((p) => `${p.line}: ${p.path}: ${p.message}`);
  const expect = (host: string, ...parts: string[]) => {
    const hit = lines.find((l) => (l.includes(`host ${JSON.stringify(host)}:`) || l.includes(`: ${host} `) || l.includes(`${JSON.stringify(host)} is not a valid server name`)) && parts.every((p) => l.includes(p)));
    assert.ok(hit, `${host}: no problem with ${parts.map((p) => JSON.stringify(p)).join(', ')} in:\n${lines.join('\n')}`);
  };
  expect('local1', '2: local1 ansible_connection:', `ansible_connection=local (set at ${file}:2`, 'only reaches servers over SSH');
  expect('box1', 'ansible_connection=docker');
  expect('w1', 'ansible_connection=winrm');
  expect('g1', `ansible_connection=community.docker.docker (set at ${file}:30, [containers:vars] ansible_connection)`);
  expect('g2', 'ansible_connection=community.docker.docker');
  expect('p1', 'ansible_password is set', 'never uses passwords', 'log in with a key');
  expect('p2', 'ansible_ssh_pass is set');
  expect('p3', 'ansible_become_pass is set', 'never becomes another user with one');
  expect('x1', 'ansible_ssh_common_args: ProxyCommand "nc -X 5 -x proxy:1080 %h %p" does not run ssh', 'runs no local command', 'ProxyJump');
  expect('x2', 'IdentitiesOnly=yes is not supported per host');
  expect('x3', '-o FooBar: agent-update does not know what this ssh option would change');
  expect('x4', 'gives the jump host its own key (-i)');
  expect('x5', 'the key file "keys/id_rsa" is a relative path', 'write it from / or ~/');
  expect('x6', 'ansible_user is a Jinja template', 'write the value itself');
  expect('x7', '-F /etc/ssh/other_config', 'ssh.config');
  expect('x8', 'UserKnownHostsFile=/etc/ssh/fleet_known_hosts', 'ssh.known_hosts');
  expect('2001:db8::10', 'e.g. 2001-db8-10 ansible_host=2001:db8::10 ansible_port=2222');
  expect('2001:db8::2', 'e.g. 2001-db8-2 ansible_host=2001:db8::2 ansible_port=2200');
  expect('c1', '23: [commented:vars] ansible_user:', 'ansible_user is "deploy # the deploy user"', 'a trailing # comment too, as Ansible reads it: put the comment on its own line');
});
