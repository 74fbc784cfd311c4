/**
 * readInventory: which format a file is read as, what is refused (and how it is said), the
 * group_vars/ and host_vars/ files, and each host turned into a server entry.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { detectFormat, readInventory, type InventoryRead } from '../../src/config/inventory/index.js';

function tmp(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-update-inv-'));
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

function read(files: Record<string, string>, name: string): { r: InventoryRead; dir: string } {
  const dir = tmp(files);
  return { r: readInventory(path.join(dir, name)), dir };
}

function ansible(r: InventoryRead) {
  assert.equal(r.kind, 'ansible', JSON.stringify(r));
  if (r.kind !== 'ansible') throw new Error('unreachable');
  return r;
}

function problems(r: InventoryRead): string[] {
  if (r.kind === 'problems') return r.problems.map((p) => `${path.basename(p.file ?? '')}:${p.line ?? '-'}: ${p.path ? `${p.path}: ` : ''}${p.message}`);
  if (r.kind === 'ansible') return r.problems.map((p) => `${path.basename(p.file ?? '')}:${p.line ?? '-'}: ${p.path ? `${p.path}: ` : ''}${p.message}`);
  if (r.kind === 'unreadable') return [r.message];
  assert.fail(`expected problems, got ${r.kind}`);
}

test('the format: by extension, else by content', () => {
  assert.equal(detectFormat('/x/hosts.yml', 'web1\n'), 'yaml');
  assert.equal(detectFormat('/x/hosts.YAML', ''), 'yaml');
  assert.equal(detectFormat('/x/hosts.json', '{}'), 'yaml');
  assert.equal(detectFormat('/x/hosts.ini', 'all:\n  hosts:\n    a:\n'), 'ini');
  // no (known) extension: YAML when it is a mapping or a list of mappings
  assert.equal(detectFormat('/x/hosts', 'all:\n  hosts:\n    a:\n'), 'yaml');
  assert.equal(detectFormat('/x/hosts', '- { name: a, host: h }\n'), 'yaml');
  assert.equal(detectFormat('/x/hosts', 'web1\nweb2\n'), 'ini', 'a list of names is one YAML string: INI');
  assert.equal(detectFormat('/x/hosts', '[web]\nweb1\n'), 'ini');
  assert.equal(detectFormat('/x/hosts', '[web]\n'), 'ini', 'a YAML list of strings is not a list of servers');
  assert.equal(detectFormat('/x/production.inv', 'web1 ansible_host=10.0.0.1\n'), 'ini');
  assert.equal(detectFormat('/x/hosts', ''), 'ini');
});

test('agent-update\'s own format: a list, or a mapping with servers:', () => {
  const list = read({ 'hosts.yml': '- { name: a, host: 10.0.0.1 }\n' }, 'hosts.yml').r;
  assert.equal(list.kind, 'servers');
  if (list.kind === 'servers') {
    assert.deepEqual(list.base, []);
    assert.equal(list.locate([0, 'host']), 1);
  }
  const map = read({ 'servers.yaml': 'servers:\n  - name: a\n    host: 10.0.0.1\n' }, 'servers.yaml').r;
  assert.equal(map.kind, 'servers');
  if (map.kind === 'servers') {
    assert.deepEqual(map.base, ['servers']);
    assert.equal(map.locate(['servers', 0, 'host']), 3);
  }
  // read like the config: a key twice is an error, with the inventory file and line
  assert.deepEqual(problems(read({ 's.yml': '- name: a\n  name: b\n' }, 's.yml').r), ['s.yml:2: duplicate key "name": each key may appear only once in a mapping']);
});

test('refused, saying what to do: missing, folder, script, plugin config, --list JSON, vault, empty, no hosts', () => {
  const { r: missing, dir } = read({}, 'nope.ini');
  assert.deepEqual(problems(missing), [`file not found: ${path.join(dir, 'nope.ini')}`]);
  const folder = read({ 'inv/hosts': 'a\n' }, 'inv').r;
  assert.match(problems(folder)[0]!, /is a folder; inventory folders are not supported: name the inventory file$/);

  const scriptDir = tmp({ 'ec2.py': '#!/usr/bin/env python3\nprint("{}")\n' });
  fs.chmodSync(path.join(scriptDir, 'ec2.py'), 0o755);
  assert.deepEqual(problems(readInventory(path.join(scriptDir, 'ec2.py'))), [
    'ec2.py:1: is an executable inventory script; dynamic inventories are not supported: export it to a static file with `ansible-inventory -i SOURCE --list --yaml > inventory.yml` and point inventory at that',
  ]);
  assert.match(problems(read({ 'aws_ec2.yml': 'plugin: amazon.aws.aws_ec2\nregions: [eu-west-1]\n' }, 'aws_ec2.yml').r)[0]!, /^aws_ec2\.yml:1: is the configuration of an inventory plugin \(plugin:\); dynamic inventories are not supported/);
  assert.match(problems(read({ 'list.json': '{"_meta": {"hostvars": {}}, "all": {"children": []}}' }, 'list.json').r)[0]!, /^list\.json:1: looks like the JSON of `ansible-inventory --list`/);
  assert.deepEqual(problems(read({ 'v.ini': '$ANSIBLE_VAULT;1.1;AES256\n6231\n' }, 'v.ini').r), [
    'v.ini:1: is encrypted with ansible-vault, which agent-update cannot decrypt; the inventory must be plain text',
  ]);
  assert.deepEqual(problems(read({ 'e.yml': '# nothing\n' }, 'e.yml').r), ['e.yml:-: the inventory is empty']);
  assert.deepEqual(problems(read({ 'g.ini': '[web]\n[db]\n' }, 'g.ini').r), ['g.ini:-: the inventory lists no hosts']);
  assert.deepEqual(problems(read({ 's.yml': '"just a string"\n' }, 's.yml').r), [
    's.yml:1: must be a list of servers, a mapping with servers: (a list), or an Ansible YAML inventory (a mapping of groups such as all:)',
  ]);
  // a .yml file is YAML: INI in it is a YAML error, not a second guess
  assert.match(problems(read({ 'h.yml': '[web]\nweb1 a=b\n' }, 'h.yml').r)[0]!, /^h\.yml:\d+: YAML syntax error/);
});

test('each host as a server entry: name, address, port, user, types, and where each came from', () => {
  const r = ansible(
    read(
      {
        hosts: 'lone\n[web]\nweb1 ansible_host=10.0.0.1 ansible_port=2222\nweb2\n[web:vars]\nansible_user=deploy\n[db]\nweb1\ndb1 ansible_ssh_user=old ansible_user=new\n',
      },
      'hosts',
    ).r,
  );
  assert.deepEqual(r.problems, []);
  assert.equal(r.format, 'ini');
  const byName = Object.fromEntries(r.entries.map((e) => [e.raw.name, e]));
  assert.deepEqual(byName.web1!.raw, { name: 'web1', host: '10.0.0.1', port: 2222, user: 'deploy', type: ['web', 'db'] });
  assert.deepEqual(byName.web2!.raw, { name: 'web2', host: 'web2', user: 'deploy', type: ['web'] });
  assert.deepEqual(byName.db1!.raw, { name: 'db1', host: 'db1', user: 'old', type: ['db'] }, 'ansible_ssh_user wins over ansible_user');
  assert.deepEqual(byName.lone!.raw, { name: 'lone', host: 'lone', type: ['default'] }, 'ungrouped: the type default');
  assert.deepEqual(byName.web1!.places.port, { file: r.file, line: 3, path: 'web1 ansible_port' });
  assert.deepEqual(byName.web1!.places.user, { file: r.file, line: 6, path: '[web:vars] ansible_user' });
  assert.deepEqual(byName.web2!.places.host, { file: r.file, line: 4, path: 'web2' });
});

test('an empty ansible_user is no user (ssh.user applies); a quoted port is a port', () => {
  const r = ansible(read({ 'h.yml': 'all:\n  hosts:\n    a: { ansible_user: "", ansible_port: "2200" }\n' }, 'h.yml').r);
  assert.deepEqual(r.entries[0]!.raw, { name: 'a', host: 'a', port: 2200, type: ['default'] });
});

test('templates, vault-encrypted connection variables and unusable names are problems at their lines; other hosts go on', () => {
  const r = ansible(
    read(
      {
        'h.yml': [
          'all:',
          '  hosts:',
          '    a:',
          '      ansible_host: "{{ inventory_hostname }}.example.com"',
          '    b:',
          '      ansible_user: !vault |',
          '        $ANSIBLE_VAULT;1.1;AES256',
          '        3133',
          '    "2001:db8::1":',
          '    ok:',
          '      other: "{{ not used }}"',
        ].join('\n'),
      },
      'h.yml',
    ).r,
  );
  assert.deepEqual(problems(r), [
    'h.yml:4: all.hosts.a.ansible_host: ansible_host is a Jinja template ("{{ inventory_hostname }}.example.com"); agent-update does not evaluate templates: write the value itself',
    'h.yml:6: all.hosts.b.ansible_user: ansible_user is encrypted with ansible-vault, which agent-update cannot decrypt: write it in plain text',
    'h.yml:9: 2001:db8::1: "2001:db8::1" is not a valid server name (letters, digits, \'.\', \'_\' and \'-\', starting with a letter or digit): give the host a name and put the address in ansible_host, e.g. 2001-db8-1 ansible_host=2001:db8::1',
  ]);
  assert.deepEqual(r.entries.map((e) => e.raw.name), ['ok']);
});

test('group_vars/ and host_vars/: vaulted files skipped, bad ones reported in their own file and line', () => {
  const base = {
    'hosts.ini': '[web]\nweb1\n',
    'group_vars/all/vault.yml': '$ANSIBLE_VAULT;1.1;AES256\n6231\n',
    'group_vars/all/.hidden.yml': 'ansible_user: hidden\n',
    'group_vars/all/main.yml~': 'ansible_user: backup\n',
    'group_vars/all/notes.txt': 'ansible_user: txt\n',
    'group_vars/all/main.yml': 'ansible_user: deploy\n',
  };
  const ok = ansible(read(base, 'hosts.ini').r);
  assert.deepEqual(ok.entries[0]!.raw, { name: 'web1', host: 'web1', user: 'deploy', type: ['web'] });
  assert.equal(ok.entries[0]!.places.user.file, path.join(path.dirname(ok.file), 'group_vars', 'all', 'main.yml'));

  assert.deepEqual(problems(read({ ...base, 'host_vars/web1.yml': 'ansible_port: [2222\n' }, 'hosts.ini').r), [
    'web1.yml:2: YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a ]',
  ]);
  assert.deepEqual(problems(read({ ...base, 'group_vars/web.yml': '- a\n- b\n' }, 'hosts.ini').r), [
    'web.yml:1: a vars file must be a mapping of variable names to values',
  ]);
  // a bad value is reported where it was written, in the vars file
  const bad = ansible(read({ ...base, 'group_vars/web': 'ansible_port: "{{ port }}"\n' }, 'hosts.ini').r);
  assert.deepEqual(problems(bad), ['web:1: ansible_port: ansible_port is a Jinja template ("{{ port }}"); agent-update does not evaluate templates: write the value itself']);
});

test('a host named .. never reads the folder above host_vars/ as its variables', () => {
  const r = ansible(read({ 'hosts.ini': '[g]\n..\nok\n', 'host_vars/ok.yml': 'ansible_port: 2200\n', 'notes.yml': '- not: vars\n' }, 'hosts.ini').r);
  assert.deepEqual(r.problems.map((p) => p.path), ['..'], 'only its name is a problem');
  assert.deepEqual(r.entries.map((e) => e.raw), [{ name: 'ok', host: 'ok', port: 2200, type: ['g'] }]);
});
