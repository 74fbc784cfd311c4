/** The Python pieces of Ansible's INI parser (shlex, literal_eval) and its host patterns. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { literalEval, shlexSplit, ShlexError } from '../../src/config/inventory/python.js';
import { expandHostPattern, parseAddress } from '../../src/config/inventory/hosts.js';

test('shlexSplit: POSIX shell words, # comments, quotes and backslashes', () => {
  assert.deepEqual(shlexSplit('web1  a=1\tb=2 '), ['web1', 'a=1', 'b=2']);
  assert.deepEqual(shlexSplit('h a="x y" b=\'p q\' c=mid"dle x"end'), ['h', 'a=x y', 'b=p q', 'c=middle xend']);
  assert.deepEqual(shlexSplit('h a=b#c d'), ['h', 'a=b']);
  assert.deepEqual(shlexSplit('h # all comment'), ['h']);
  assert.deepEqual(shlexSplit('h a="#x"'), ['h', 'a=#x']);
  assert.deepEqual(shlexSplit('h a=\\"q b="\\"x\\\\y\\z"'), ['h', 'a="q', 'b="x\\y\\z']);
  assert.deepEqual(shlexSplit("h e=''"), ['h', 'e=']);
  assert.deepEqual(shlexSplit('h a=b;c'), ['h', 'a=b;c']);
  assert.throws(() => shlexSplit('h a="x'), ShlexError);
  assert.throws(() => shlexSplit("h a='x"), ShlexError);
  assert.throws(() => shlexSplit('h a=\\'), ShlexError);
});

test('literalEval: Python literals become values; anything else stays text', () => {
  const cases: Array<[string, unknown]> = [
    ['2222', 2222],
    ['-5', -5],
    ['+5', 5],
    ['0x1F', 31],
    ['0o17', 15],
    ['0b101', 5],
    ['1_000', 1000],
    ['1.5', 1.5],
    ['.5', 0.5],
    ['5.', 5],
    ['1e3', 1000],
    ['010', '010'],
    ['00', 0],
    ['True', true],
    ['False', false],
    ['None', null],
    ["'x'", 'x'],
    ['"a b"', 'a b'],
    ['"a" \'b\'', 'ab'],
    ["'tab\\tx'", 'tab\tx'],
    ["'\\x41\\u00e9\\101'", 'Aé' + 'A'],
    ["r'\\n'", '\\n'],
    ["b'by'", 'by'],
    ["'''tri'''", 'tri'],
    ["'q' # comment", 'q'],
    ['[1, "a", None]', [1, 'a', null]],
    ['[1, 2,]', [1, 2]],
    ['(1, 2)', [1, 2]],
    ['(1)', 1],
    ['()', []],
    ['1, 2', [1, 2]],
    ["{'a': 1, 'b': [2]}", { a: 1, b: [2] }],
    ['{}', {}],
    ['set()', []],
    ['{1, 2}', [1, 2]],
    ['10.0.0.1', '10.0.0.1'],
    ['deploy', 'deploy'],
    ['web-1', 'web-1'],
    ['a b', 'a b'],
    ['1+2', '1+2'],
    ['1j', '1j'],
    ['--5', '--5'],
    ["f'x'", "f'x'"],
    ["'unclosed", "'unclosed"],
    ['', ''],
    ['x = 1', 'x = 1'],
    ['"a" b', '"a" b'],
  ];
  for (const [text, want] of cases) assert.deepEqual(literalEval(text), want, text);
});

test('parseAddress and expandHostPattern: ports, IPv6 in brackets, ranges', () => {
  assert.deepEqual(parseAddress('web1'), { host: 'web1', port: null });
  assert.deepEqual(parseAddress('web1.example.com:2222'), { host: 'web1.example.com', port: 2222 });
  assert.deepEqual(parseAddress('10.0.0.1:22'), { host: '10.0.0.1', port: 22 });
  assert.deepEqual(parseAddress('[2001:db8::1]:2200'), { host: '2001:db8::1', port: 2200 });
  assert.deepEqual(parseAddress('2001:db8::1'), { host: '2001:db8::1', port: null });
  assert.deepEqual(parseAddress('web[01:03]:22'), { host: 'web[01:03]', port: 22 });
  assert.equal(parseAddress('web_'), null, 'a label may not end in _ or -');
  assert.equal(parseAddress('a b'), null);
  assert.deepEqual(expandHostPattern('web_:22'), { names: ['web_:22'], port: null }, 'not an address: taken as written, as Ansible does');
  assert.deepEqual(expandHostPattern('db[a:c]-[1:2]:2200'), { names: ['dba-1', 'dba-2', 'dbb-1', 'dbb-2', 'dbc-1', 'dbc-2'], port: 2200 });
  assert.deepEqual(expandHostPattern('n[10:1:-3]').names, ['n10', 'n7', 'n4'], 'a negative stride counts down, as range() does');
});
