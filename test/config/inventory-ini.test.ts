/**
 * Ansible INI inventories, one syntax feature (or one error) at a time. The fixtures test
 * (inventory-fixtures.test.ts) checks whole files against Ansible itself; these pin each rule
 * and each error's file, line and message.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inventoryParser } from './inventory-helpers.js';

const FILE = '/inv/hosts';

const { hosts, vars, errors } = inventoryParser(FILE, 'ini');

test('hosts before any section are ungrouped; blank lines and # and ; comments are skipped', () => {
  const h = hosts('# a comment\n; another\n\nweb1\n   ; indented comment\n\tweb2  \n');
  assert.deepEqual([...h.keys()], ['web1', 'web2']);
  assert.deepEqual(h.get('web1')!.groups, []);
  assert.equal(h.get('web1')!.place.line, 4);
  assert.equal(h.get('web2')!.place.line, 6);
});

test('host variables on the host line, # ending the line even inside a word, ; not', () => {
  const h = hosts('web1 ansible_host=10.0.0.1 ansible_port=2222 # the rest is a comment x=1\nweb2 a=b#c d=e;f\n');
  assert.deepEqual(vars(h.get('web1')), { ansible_host: '10.0.0.1', ansible_port: 2222 });
  assert.deepEqual(vars(h.get('web2')), { a: 'b', });
  const h3 = hosts('web3 note=a;b\n');
  assert.deepEqual(vars(h3.get('web3')), { note: 'a;b' });
});

test('values are Python literals: numbers, quoted strings, booleans, None, and plain text kept as is', () => {
  const h = hosts(`h port=2222 sport="'2222'" s="a b" b=True n=None f=1.5 ip=10.0.0.1 w=web-1 l="[1, 'x']" e=\n`);
  assert.deepEqual(vars(h.get('h')), { port: 2222, sport: '2222', s: 'a b', b: true, n: null, f: 1.5, ip: '10.0.0.1', w: 'web-1', l: [1, 'x'], e: '' });
});

test('[group:vars] values: the rest of the line after the first =, a quoted value loses a trailing comment', () => {
  const h = hosts('[g]\nh\n[g:vars]\na = x = y\nb = "quoted" # gone\nc = plain # kept\nd=\n');
  assert.deepEqual(vars(h.get('h')), { a: 'x = y', b: 'quoted', c: 'plain # kept', d: '' });
});

test('a host in several groups has every group, in the order it was listed, then the parents', () => {
  const h = hosts('[web]\nh1\n[db]\nh1\nh2\n[prod:children]\ndb\nweb\n[eu:children]\nprod\n');
  assert.deepEqual(h.get('h1')!.groups, ['web', 'db', 'prod', 'eu']);
  assert.deepEqual(h.get('h2')!.groups, ['db', 'prod', 'eu']);
});

test('variable precedence: host > child group > parent group > all; ties by priority, then by name', () => {
  const h = hosts(
    [
      '[all:vars]',
      'v=all',
      'only_all=1',
      '[parent:children]',
      'child',
      '[parent:vars]',
      'v=parent',
      'p=parent',
      '[child]',
      'h1',
      'h2 v=host',
      '[child:vars]',
      'v=child',
      '[aaa]',
      'h1',
      '[aaa:vars]',
      'p=aaa',
    ].join('\n'),
  );
  assert.deepEqual(vars(h.get('h1')), { v: 'child', only_all: 1, p: 'parent' }, 'child beats parent; parent (deeper) beats aaa');
  assert.equal(vars(h.get('h2')).v, 'host');
  // same depth: the later name wins, unless ansible_group_priority says otherwise
  const same = hosts('[a]\nh\n[b]\nh\n[a:vars]\nv=a\n[b:vars]\nv=b\n');
  assert.equal(vars(same.get('h')).v, 'b');
  const prio = hosts('[a]\nh\n[b]\nh\n[a:vars]\nv=a\nansible_group_priority=5\n[b:vars]\nv=b\n');
  assert.equal(vars(prio.get('h')).v, 'a');
  assert.equal('ansible_group_priority' in vars(prio.get('h')), false, 'the priority is not a variable');
});

test('[x:children] may name groups before their sections; nesting goes as deep as it likes', () => {
  const h = hosts('[top:children]\nmid\n[mid:children]\nleaf\n[leaf]\nh\n[top:vars]\nv=top\n');
  assert.deepEqual(h.get('h')!.groups, ['leaf', 'mid', 'top']);
  assert.equal(vars(h.get('h')).v, 'top');
});

test('ranges: zero padding, letters, a stride, several in one name', () => {
  const names = (text: string) => [...hosts(text).keys()];
  assert.deepEqual(names('web[01:03].example.com\n'), ['web01.example.com', 'web02.example.com', 'web03.example.com']);
  assert.deepEqual(names('web[1:3]\n'), ['web1', 'web2', 'web3']);
  assert.deepEqual(names('db-[a:c]\n'), ['db-a', 'db-b', 'db-c']);
  assert.deepEqual(names('n[1:10:4]\n'), ['n1', 'n5', 'n9']);
  assert.deepEqual(names('n[001:010:3]\n'), ['n001', 'n004', 'n007', 'n010']);
  assert.deepEqual(names('r[1:2]-[a:b]\n'), ['r1-a', 'r1-b', 'r2-a', 'r2-b']);
  assert.deepEqual(names('x[:2]\n'), ['x0', 'x1', 'x2'], 'an empty begin is 0');
});

test('host:port sets ansible_port; a host variable given after it wins', () => {
  const h = hosts('web1:2222\nweb2:2222 ansible_port=22\n[10.0.0.1]:2200\n[g]\nweb1:9999\n');
  assert.equal(vars(h.get('web1')).ansible_port, 2222, 'the port of a later line is ignored, as in Ansible');
  assert.equal(vars(h.get('web2')).ansible_port, 22);
  assert.equal(vars(h.get('10.0.0.1')).ansible_port, 2200);
});

test('[all] and [ungrouped] sections; a host in another group too leaves ungrouped', () => {
  const h = hosts('[all]\na\n[ungrouped]\nb\nc\n[g]\nc\n');
  assert.deepEqual(h.get('a')!.groups, []);
  assert.deepEqual(h.get('b')!.groups, []);
  assert.deepEqual(h.get('c')!.groups, ['g']);
});

test('errors: sections', () => {
  assert.deepEqual(errors('[web:host]\nh\n'), ['1: [web:host]: unknown kind of section "host": a section is [web], [web:vars] or [web:children]']);
  assert.deepEqual([...hosts('[web:hosts]\nh\n').values()].map((h) => h.groups), [['web']], '[web:hosts] is [web], as in Ansible');
  assert.deepEqual(errors('h\n[web servers]\nx\n'), [
    '2: [web servers]: not a valid section header: a section is [name], [name:vars] or [name:children], with no spaces and no ] or : in the name',
  ]);
  assert.deepEqual(errors('[web] # fine\nh\n[db] junk\n'), ['3: [db]: not a valid section header: only a # comment may follow the ]']);
});

test('errors: children and vars of groups that are never defined; loops', () => {
  assert.deepEqual(errors('[p:children]\nnope\n'), ['2: [p:children] nope: group "nope" is not defined: add a [nope] section (or [nope:children]) for it']);
  assert.deepEqual(errors('[g:vars]\nx=1\n'), ['1: [g:vars]: group "g" is not defined: [g:vars] needs a [g] or [g:children] section too']);
  assert.deepEqual(errors('[a:children]\nb\n[b]\nh\n[b:children]\na\n'), ['6: [b:children] a: making "a" a child of "b" makes a loop: a → b → a']);
  assert.deepEqual(errors('[a:children]\nb\n[b:children]\nc\n[c:children]\na\n'), ['6: [c:children] a: making "a" a child of "c" makes a loop: a → c → b → a']);
  assert.deepEqual(errors('[a]\nh\n[a:children]\na\n'), ['4: [a:children] a: group "a" cannot be a child of itself']);
  assert.deepEqual(errors('[a]\nh\n[a:children]\nb c\n'), ['4: [a:children]: expected a group name, got "b c"']);
  assert.deepEqual(errors('[a]\nh\n[a:vars]\njust_a_word\n'), ['4: [a:vars]: expected key=value, got "just_a_word"']);
});

test('errors: host lines', () => {
  assert.deepEqual(errors('[g]\nweb1 ansible_user="deploy\n'), ['2: [g]: cannot read the host line: a quote is not closed']);
  assert.deepEqual(errors('web1 user\n'), ['1: web1: expected key=value after the host, got "user" (put the value in quotes if it holds spaces)']);
  assert.deepEqual(errors('web1:\n'), ['1: web1:: host pattern "web1:" ends with \':\', which must be followed by a port']);
  assert.deepEqual(errors('---\n'), ["1: ---: a host named '---': is this a YAML file? Name it .yml or .yaml"]);
});

test('errors: ranges', () => {
  assert.deepEqual(errors('web[01:9]\n'), ['1: web[01:9]: host pattern "web[01:9]": a zero-padded range needs a begin and an end of the same length, got [01:9]']);
  assert.deepEqual(errors('web[1:3\n'), ['1: web[1:3: host pattern "web[1:3": a range is missing its closing \']\'']);
  assert.deepEqual(errors('web[1:2:3:4]\n'), ['1: web[1:2:3:4]: host pattern "web[1:2:3:4]": a range must be [begin:end] or [begin:end:step], got [1:2:3:4]']);
  assert.deepEqual(errors('web[5:1]\n'), ['1: web[5:1]: host pattern "web[5:1]": the range [5:1] gives no host']);
  assert.deepEqual(errors('web[1:3:0]\n'), ['1: web[1:3:0]: host pattern "web[1:3:0]": the step of [1:3:0] must not be 0']);
  assert.deepEqual(errors('web[a:5]\n'), ['1: web[a:5]: host pattern "web[a:5]": the range [a:5] is neither numbers nor letters']);
  assert.deepEqual(errors('web[c:a]\n'), ['1: web[c:a]: host pattern "web[c:a]": the range [c:a] must have begin <= end']);
  assert.deepEqual(errors('web[1:]\n'), ['1: web[1:]: host pattern "web[1:]": the range [1:] has no end']);
  assert.match(errors('web[1:1000000]\n')[0] ?? '', /gives 1000000 hosts, more than 100000/);
});

test('every problem of the file is reported, not only the first', () => {
  assert.deepEqual(errors('[a:bad]\nx\n[b]\nh k\n[c:children]\nnope\n').map((l) => l.split(':')[0]), ['1', '4', '6']);
});

test('CRLF line ends and a final line without a newline', () => {
  const h = hosts('[g]\r\nh1 a=1\r\nh2');
  assert.deepEqual([...h.keys()], ['h1', 'h2']);
  assert.equal(h.get('h2')!.place.line, 3);
});
