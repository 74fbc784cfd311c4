/**
 * `--limit PATTERN` (issue 25 §4.1): Ansible's patterns over the servers the config selects,
 * matched on names as include and exclude are; a pattern that matches none of them is exit 2
 * with what it could match.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { checkLimit, limitServers, parseLimit, splitLimit } from '../../src/config/limit.js';
import type { ServerSpec } from '../../src/config/types.js';
import { EXIT, UsageError } from '../../src/errors.js';

function server(name: string, type = 'web'): ServerSpec {
  return { name, host: `${name}.example`, port: 22, user: 'ops', type, types: [type] };
}
const web = ['web1', 'web2', 'web3', 'web10'].map((n) => server(n));
const db = server('db1', 'db');
const names = (ss: readonly { name: string }[]) => ss.map((s) => s.name);
const limit = (...values: string[]) => limitServers(web, parseLimit(values));

function usage(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof UsageError, String(e));
    assert.equal(e.exitCode, EXIT.usage);
    return e.message;
  }
  assert.fail('expected a UsageError');
}

test('patterns split at , and : but not inside a brace list or brackets', () => {
  assert.deepEqual(splitLimit('web1,web2:db*'), ['web1', 'web2', 'db*']);
  assert.deepEqual(splitLimit(' {web,app}* , web[1-3]:!x '), ['{web,app}*', 'web[1-3]', '!x']);
  assert.deepEqual(splitLimit('a'), ['a']);
});

test("Ansible's semantics: plain patterns are a union, & intersects, ! takes out, whatever the order; all is every server", () => {
  assert.deepEqual(names(limit('web1,web3')), ['web1', 'web3'], 'in the config order');
  assert.deepEqual(names(limit('web3', 'web1')), ['web1', 'web3'], '--limit given twice: both');
  assert.deepEqual(names(limit('web*:!web1*')), ['web2', 'web3'], 'web1 and web10 taken out');
  assert.deepEqual(names(limit('!web2')), ['web1', 'web3', 'web10'], 'only exclusions: from every server');
  assert.deepEqual(names(limit('web?,&*3')), ['web3'], 'the intersection');
  assert.deepEqual(names(limit('!web2,web*')), ['web1', 'web3', 'web10'], 'a ! first still takes out');
  assert.deepEqual(names(limit('all:!web10')), ['web1', 'web2', 'web3']);
  assert.deepEqual(names(limit('web{1,3}')), ['web1', 'web3'], 'a brace list as include has it');
  assert.deepEqual(names(limit('web[23]')), ['web2', 'web3']);
  assert.deepEqual(names(limit('WEB1')), [], 'case-sensitive, as include and exclude');
});

test('@FILE: one pattern (or several, separated) a line; comments and blank lines skipped; relative to the working folder', () => {
  const dir = mkdtempSync(join(tmpdir(), 'agent-update-limit-'));
  try {
    writeFileSync(join(dir, 'retry.txt'), '# the ones that failed\nweb2\n\nweb10, web1\n');
    assert.deepEqual(names(limitServers(web, parseLimit(['@retry.txt'], dir))), ['web1', 'web2', 'web10']);
    assert.deepEqual(names(limitServers(web, parseLimit(['@retry.txt:!web1'], dir))), ['web2', 'web10']);
    writeFileSync(join(dir, 'bad.txt'), 'web1\nweb[1:3]\n');
    assert.match(usage(() => parseLimit(['@bad.txt'], dir)), /bad\.txt:2: "web\[1:3\]": \[1:3\] is an inventory range, not a glob/);
    writeFileSync(join(dir, 'empty.txt'), '# nothing\n');
    assert.match(usage(() => parseLimit(['@empty.txt'], dir)), /empty\.txt \(@empty\.txt\) has no pattern in it/);
    assert.match(usage(() => parseLimit(['@missing.txt'], dir)), /cannot read .*missing\.txt \(@missing\.txt\): ENOENT/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('patterns that cannot be used: each named at once, exit 2', () => {
  assert.match(usage(() => parseLimit(['web1,,web2'])), /an empty pattern in "web1,,web2"/);
  assert.match(usage(() => parseLimit(['!'])), /"!": ! needs a pattern after it/);
  assert.match(usage(() => parseLimit(['~web\\d'])), /regular expressions \(~\) are not supported; use a glob/);
  assert.match(usage(() => parseLimit(['!@f'])), /a file \(@FILE\) is a pattern of its own/);
  const both = usage(() => parseLimit(['web[01:03]', '&']));
  assert.match(both, /inventory range/);
  assert.match(both, /"&": & needs a pattern after it/);
  assert.match(usage(() => parseLimit([])), /no pattern given/);
});

test('a pattern that matches none of the selected servers: exit 2, with what it could match', () => {
  const selected = web;
  const configured = [...web, db];
  const typo = usage(() => checkLimit(parseLimit(['web4']), selected, configured));
  assert.match(typo, /^--limit: "web4" matches none of the 4 servers the config selects; did you mean "web1", "web2" or "web3"\?; the config selects web1, web2, web3, web10$/);
  const left = usage(() => checkLimit(parseLimit(['web1,!db1']), selected, configured));
  assert.match(left, /"!db1" matches none of the 4 servers the config selects \(it matches db1, which server_types, include or exclude leave out\)/, 'a typo-free exclusion of a server not selected is still named');
  const type = usage(() => checkLimit(parseLimit(['db']), selected, configured));
  assert.match(type, /db is a server type: --limit matches server names, as include and exclude do/);
  const two = usage(() => checkLimit(parseLimit(['x1', '&y*']), selected, configured));
  assert.match(two, /"x1" matches none.*; "&y\*" matches none/);
  assert.match(usage(() => checkLimit(parseLimit(['web1:&web2']), selected, configured)), /--limit web1,&web2 leaves none of the 4 servers the config selects/);
  assert.deepEqual(names(checkLimit(parseLimit(['web1*']), selected, configured)), ['web1', 'web10']);
});
