/** Ansible YAML inventories, one feature or error at a time (whole files: inventory-fixtures). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inventoryParser } from './inventory-helpers.js';

const FILE = '/inv/hosts.yml';

const { hosts, vars, errors } = inventoryParser(FILE, 'yaml');

test('all: hosts, children and vars, nested; a host with or without variables', () => {
  const h = hosts(`all:
  vars:
    ansible_user: admin
  hosts:
    bastion:
      ansible_port: 2022
  children:
    web:
      hosts:
        web1:
        web2: { ansible_host: 10.0.0.2 }
      children:
        canary:
          hosts:
            web2:
          vars:
            ansible_user: canary
`);
  assert.deepEqual([...h.keys()], ['bastion', 'web1', 'web2']);
  assert.deepEqual(h.get('bastion')!.groups, []);
  assert.deepEqual(h.get('web2')!.groups, ['web', 'canary']);
  assert.deepEqual(vars(h.get('web2')), { ansible_user: 'canary', ansible_host: '10.0.0.2' });
  assert.deepEqual(vars(h.get('web1')), { ansible_user: 'admin' });
  assert.deepEqual(vars(h.get('bastion')), { ansible_user: 'admin', ansible_port: 2022 });
  assert.equal(h.get('web2')!.place.line, 11);
  assert.equal(h.get('web2')!.vars.get('ansible_user')!.place.line, 17);
  assert.equal(h.get('web2')!.vars.get('ansible_user')!.place.path, 'all.children.web.children.canary.vars.ansible_user');
});

test('a single name instead of a mapping; a group defined in two places is one group; top-level groups besides all', () => {
  const h = hosts(`all:
  children:
    web:
      hosts: web1
prod:
  children: web
  vars:
    env: prod
web:
  hosts:
    web2:
`);
  assert.deepEqual(h.get('web1')!.groups, ['web', 'prod']);
  assert.deepEqual(h.get('web2')!.groups, ['web', 'prod']);
  assert.equal(vars(h.get('web2')).env, 'prod');
});

test('host:port keys and ranges work as in INI', () => {
  const h = hosts(`all:
  hosts:
    "web[01:02]:2222":
    db[a:b]:
      ansible_user: pg
`);
  assert.deepEqual([...h.keys()], ['web01', 'web02', 'dba', 'dbb']);
  assert.equal(vars(h.get('web02')).ansible_port, 2222);
  assert.equal(vars(h.get('dbb')).ansible_user, 'pg');
});

test('YAML 1.1 as Ansible reads it: yes is true, 0755 octal, 1:30 is 90, y and 1e3 stay strings', () => {
  const h = hosts('all:\n  hosts:\n    h:\n      a: yes\n      b: 0755\n      c: 1:30\n      d: y\n      e: 1e3\n      f: "22"\n');
  assert.deepEqual(vars(h.get('h')), { a: true, b: 493, c: 90, d: 'y', e: '1e3', f: '22' });
});

test('anchors and merge keys; a key given twice keeps its last value', () => {
  const h = hosts(`all:
  hosts:
    a: &base { ansible_user: deploy, ansible_port: 2200 }
    b: { <<: *base, ansible_port: 2201 }
    c:
      x: 1
      x: 2
`);
  assert.deepEqual(vars(h.get('b')), { ansible_port: 2201, ansible_user: 'deploy' });
  assert.equal(vars(h.get('c')).x, 2);
  assert.equal(h.get('c')!.vars.get('x')!.place.line, 7, 'the line of the value that counts');
});

test('a !vault value is read as encrypted, a !unsafe one as its text', () => {
  const h = hosts('all:\n  hosts:\n    h:\n      secret: !vault |\n        $ANSIBLE_VAULT;1.1;AES256\n        3133\n      u: !unsafe "{{ x }}"\n');
  assert.equal(h.get('h')!.vars.get('secret')!.vault, true);
  assert.equal(vars(h.get('h')).u, '{{ x }}');
});

test('errors: what Ansible skips with a warning is refused, with the line', () => {
  assert.deepEqual(errors('all:\n  children:\n    web: [web1, web2]\n'), [
    '3: all.children.web: a group must be a mapping (with hosts, children or vars), got a list',
  ]);
  assert.deepEqual(errors('all:\n  hosst:\n    web1:\n'), ['2: all.hosst: unknown key in group "all": a group has hosts, children and vars']);
  assert.deepEqual(errors('all:\n  hosts:\n    - web1\n    - web2\n'), [
    '2: all.hosts: must be a mapping of host names (each with a colon after it), got a list',
  ]);
  assert.deepEqual(errors('all:\n  vars: [a]\n'), ['2: all.vars: must be a mapping of variables, got a list']);
  assert.deepEqual(errors('all:\n  hosts:\n    web1: 10.0.0.1\n'), [
    '3: all.hosts.web1: a host\'s value must be a mapping of its variables (or nothing), got the string "10.0.0.1"',
  ]);
  assert.deepEqual(errors('all:\n  hosts:\n    10:\n'), ['3: all.hosts: a host pattern must be a string, got 10 (put it in quotes)']);
  assert.deepEqual(errors('all:\n  hosts:\n    web[1:3:0]:\n'), ['3: all.hosts.web[1:3:0]: host pattern "web[1:3:0]": the step of [1:3:0] must not be 0']);
  // as in Ansible, the child's own children are read first, so the loop shows at the outer edge
  assert.deepEqual(errors('a:\n  children:\n    b:\n      children:\n        a:\n'), ['3: a.children.b: making "b" a child of "a" makes a loop: b → a → b']);
  assert.match(errors('all:\n  children:\n    a: &a\n      children:\n        b: *a\n')[0] ?? '', /nested more than 50 deep: does a YAML alias point at its own group\?/);
  assert.deepEqual(errors('all:\n  hosts:\n    web1: [a, b\n'), ['4: YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a ]']);
});
