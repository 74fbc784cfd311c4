import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { expandCommand, expandText, findPlaceholders, shellQuote, unknownPlaceholders } from '../../src/util/shell.js';

/** What `sh` makes of `printf '%s\n' WORDS`: one line per word. */
function shWords(words: string): string {
  return execFileSync('sh', ['-c', `printf '%s\\n' ${words}`], { encoding: 'utf8' });
}

const NASTY = [
  '',
  ' ',
  'plain',
  "it's",
  "'",
  "''",
  '"double"',
  'a b  c',
  'line1\nline2',
  '$(reboot)',
  '`reboot`',
  '${HOME}',
  '$HOME',
  'x; rm -rf /',
  'a && b || c',
  '*',
  '?',
  '[a-z]',
  '~',
  '~/x',
  '-n',
  '-e',
  '\\',
  '\\n',
  'tab\there',
  '!!',
  '#comment',
  '{a,b}',
  '=cmd',
  'é ünïcödé ✓',
  "master';reboot;'",
  '\x01\x7f',
];

test('shellQuote makes exactly one shell word that sh reads back unchanged', () => {
  for (const s of NASTY) {
    const q = shellQuote(s);
    // printf's %s with a word starting with '-' still prints it (it is an argument, not the format)
    const out = shWords(`${q} END`);
    assert.equal(out, `${s}\nEND\n`, `shellQuote(${JSON.stringify(s)}) = ${q}`);
  }
});

test('shellQuote leaves harmless words bare and quotes the rest', () => {
  assert.equal(shellQuote('master'), 'master');
  assert.equal(shellQuote('https://github.com/example/agent.git'), 'https://github.com/example/agent.git');
  assert.equal(shellQuote(''), "''");
  assert.equal(shellQuote('a b'), "'a b'");
  assert.equal(shellQuote("it's"), "'it'\\''s'");
  assert.equal(shellQuote('~/x'), "'~/x'");
  assert.throws(() => shellQuote('a\0b'), /NUL/);
});

test('expandCommand quotes each value; a malicious repo stays a single word', () => {
  const repo = "https://x/'; touch /tmp/pwned; echo '$(reboot)\n`id`";
  const cmd = expandCommand('printf "%s\\n" {repo} {branch} {commit}', {
    repo,
    branch: 'feature/x',
    commit: 'abc1234',
  });
  assert.ok(!cmd.includes('{repo}'));
  const out = execFileSync('sh', ['-c', cmd], { encoding: 'utf8' });
  assert.equal(out, `${repo}\nfeature/x\nabc1234\n`);
});

test('expandCommand: single pass, unknown placeholders and shell braces left alone', () => {
  // a value that looks like a placeholder is not expanded again
  assert.equal(expandCommand('echo {branch} {commit}', { branch: '{commit}', commit: 'abc1234' }), "echo '{commit}' abc1234");
  assert.equal(expandCommand('echo {unknown} {commit}', { commit: 'abc1234' }), 'echo {unknown} abc1234');
  assert.equal(expandCommand("awk '{print $1}' ${commit} {commit}", { commit: 'abc1234' }), "awk '{print $1}' ${commit} abc1234");
  assert.equal(
    expandCommand('git reset --hard {previous_commit}', { previous_commit: 'deadbeef' }),
    'git reset --hard deadbeef',
  );
  assert.equal(expandCommand('no placeholders', {}), 'no placeholders');
});

test('expandCommand throws naming a placeholder without a value', () => {
  assert.throws(() => expandCommand('git reset --hard {previous_commit}', { previous_commit: null }), /\{previous_commit\}/);
  assert.throws(() => expandCommand('git fetch {repo}', {}), /\{repo\}/);
  // an unused missing value is fine
  assert.equal(expandCommand('echo {commit}', { commit: 'abc1234', previous_commit: null }), 'echo abc1234');
});

test('expandText substitutes without quoting', () => {
  assert.equal(expandText('{commit}', { commit: 'abc1234' }), 'abc1234');
  assert.equal(expandText('version {branch} ok', { branch: 'my branch' }), 'version my branch ok');
  assert.throws(() => expandText('{commit}', {}), /\{commit\}/);
});

test('findPlaceholders / unknownPlaceholders', () => {
  assert.deepEqual(findPlaceholders('git {repo} {commit} {repo} {foo} ${HOME} {Bar} { x } {a,b}'), ['repo', 'commit', 'foo']);
  assert.deepEqual(unknownPlaceholders('git {repo} {comit} {print}'), ['comit', 'print']);
  assert.deepEqual(unknownPlaceholders("awk '{ print $1 }' ${branch}"), []);
});
