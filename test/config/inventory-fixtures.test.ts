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
  for (const want of ['flat.ini', 'groups.ini', 'nested.yml', 'tricky.ini', 'tricky.yaml', 'values.ini', 'values.yml', 'with-vars-dirs/hosts.ini']) {
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
    const read = readInventory(file);
    assert.equal(read.kind, 'ansible', JSON.stringify(read));
    if (read.kind !== 'ansible') return;
    const got = new Map(read.entries.map((e) => [e.raw.name as string, e.raw]));
    // The hosts left out are exactly the ones a problem names (a name agent-update cannot use).
    const left = [...want.keys()].filter((h) => !got.has(h));
    assert.deepEqual(left, read.problems.map((p) => p.path).filter((p) => want.has(p)));
    for (const [name, w] of want) {
      const raw = got.get(name);
      if (!raw) continue;
      const c = connection(name, w.vars);
      assert.equal(raw.host, c.host, `${name}: host`);
      assert.equal(raw.port ?? null, c.port, `${name}: port`);
      assert.equal(raw.user ?? null, c.user, `${name}: user`);
      assert.deepEqual([...(raw.type as string[])].sort(), w.groups.length ? w.groups : ['default'], `${name}: types`);
    }
  });
}
