/**
 * Placeholders are safe wherever they appear in a command (issue 10, 2.1): for hostile values,
 * the expanded command is run by real shells with the placeholder in every quoting context, and
 * the value must come out as exactly the literal text, with nothing run. Positions that cannot
 * be made safe are refused when the config is validated.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { expandCommand, placeholderSites } from '../../src/util/shell.js';
import { validateConfig } from '../../src/config/validate.js';
import { loadConfigText } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { ctx, variant } from './helpers.js';

/** A shell: its name, and the program and arguments that come before `-c SCRIPT`. */
interface Shell {
  name: string;
  argv: string[];
}

/**
 * The shells the guarantee is for (bash, dash, zsh, busybox sh) and others that happen to be
 * here, each program once (/bin/sh is often dash; /bin and /usr/bin are often the same). One the
 * machine lacks is skipped (said in the test's name), never waited for.
 */
const REQUIRED = ['bash', 'dash', 'zsh', 'busybox sh'];
const CANDIDATES: Shell[] = [
  { name: 'sh', argv: ['/bin/sh'] },
  { name: 'dash', argv: ['/usr/bin/dash'] },
  { name: 'dash', argv: ['/bin/dash'] },
  { name: 'bash', argv: ['/usr/bin/bash'] },
  { name: 'bash', argv: ['/bin/bash'] },
  { name: 'zsh', argv: ['/usr/bin/zsh'] },
  { name: 'zsh', argv: ['/bin/zsh'] },
  { name: 'ksh', argv: ['/usr/bin/ksh'] },
  { name: 'mksh', argv: ['/usr/bin/mksh'] },
  { name: 'busybox sh', argv: ['/usr/bin/busybox', 'sh'] },
  { name: 'busybox sh', argv: ['/bin/busybox', 'sh'] },
];
const SHELLS: Shell[] = [
  ...new Map(
    CANDIDATES.filter((s) => existsSync(s.argv[0]!)).map((s) => [[realpathSync(s.argv[0]!), ...s.argv.slice(1)].join(' '), s] as const),
  ).values(),
].filter((s, i, all) => all.findIndex((o) => o.name === s.name) === i);
const MISSING = REQUIRED.filter((n) => !SHELLS.some((s) => s.name === n));

/**
 * How long one `shell -c` may take: every script here ends in well under a second per value; one
 * that does not (a shell waiting on a user lookup, a prompt, a hang) fails the test at once with
 * the shell and the script named, instead of holding the suite until its 10-minute ceiling.
 */
const RUN_TIMEOUT_MS = 60_000;

const work = mkdtempSync(path.join(tmpdir(), 'agent-update-placeholders-'));
const HOME = path.join(work, 'home');
mkdirSync(HOME);
const RAN = path.join(work, 'ran');
mkdirSync(RAN);
test.after(() => rmSync(work, { recursive: true, force: true }));

/** Values that would run something, split into several words, glob or expand if not quoted right. */
function hostileValues(): string[] {
  const m = (tag: string) => path.join(RAN, tag);
  const fixed = [
    '', ' ', '  ', 'plain', 'master', 'abc1234', 'feature/x', 'https://example.com/a.git', 'user@host:path/repo.git',
    "it's", "'", "''", '"', '""', `'"`, `"'`, `'"'"'`, 'a b', 'a  b', '\ta', 'line1\nline2', '\n', 'x\n',
    `$(touch ${m('dollar-paren')})`, `\`touch ${m('backquote')}\``, `"$(touch ${m('dq-dollar-paren')})"`,
    `'$(touch ${m('sq-dollar-paren')})'`, `'"$(touch ${m('mixed')})"'`, `"'$(touch ${m('mixed2')})'"`,
    `\n$(touch ${m('newline-paren')})`, `'; touch ${m('semi-sq')}; '`, `"; touch ${m('semi-dq')}; "`,
    `;touch ${m('semi')}`, `&& touch ${m('and')}`, `| touch ${m('pipe')}`, `$(touch ${m('a')})$(touch ${m('b')})`,
    `\\"; touch ${m('bs-dq')}; \\"`, `\\'; touch ${m('bs-sq')}; \\'`, `\${IFS}touch\${IFS}${m('ifs')}`,
    '$HOME', '${HOME}', '$0', '$1', '$@', '$*', '$#', '$?', '$$', '$!', '$-', "$'x'", '$"x"', '$((1+1))',
    '\\', '\\\\', 'a\\', '\\n', '\\t', "\\'", '\\"', '\\$HOME', '\\`',
    '*', '?', '[a]', '[!a]', '*.ts', '~', '~root', '~/x', '-n', '-e', '--', '-', '#x', '# c', 'a#b',
    '{a,b}', '{1..3}', 'x,y', '1..3', '!', '!!', '%', '%1', '=ls', '2', '0', '>x', '<x', '>&2',
    '(', ')', '{', '}', '()', '( x )', 'done', 'if', 'then', 'fi', 'esac', 'in', 'case', 'do', '!x',
    'é ünïcödé ✓', '\x01\x7f', '\x1b[31m', 'a=b', 'PATH=/nowhere', '<<EOF', 'EOF', '&', ';', '|',
  ];
  // and random ones over an alphabet of shell-special characters (fixed seed: reproducible)
  const alphabet = ['\'', '"', '`', '$', '(', ')', '{', '}', '\\', ' ', '\n', '\t', '*', '?', '[', ']', '~', '#', ';', '&', '|', '<', '>', '!', '=', ',', 'a', 'x', '-', '/', '.', ':', '@', '%'];
  let seed = 20260101;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const random: string[] = [];
  for (let i = 0; i < 120; i++) {
    let s = '';
    const len = 1 + rand(12);
    for (let j = 0; j < len; j++) s += alphabet[rand(alphabet.length)];
    random.push(s);
  }
  return [...fixed, ...random];
}

/** A template with `{repo}` in one quoting context, and the arguments printf must receive. */
interface Context {
  template: string;
  /** `dsq` is what this shell makes of `$'a'`: `a` (bash, ksh, zsh) or `$a` (dash) */
  expect: (v: string, dsq: string) => string[];
  /** shells whose grammar this context relies on (default: all) */
  only?: RegExp;
}

const P = "printf '%s\\000'";
const CONTEXTS: Context[] = [
  { template: `${P} {repo}`, expect: (v) => [v] },
  { template: `${P} "{repo}"`, expect: (v) => [v] },
  { template: `${P} '{repo}'`, expect: (v) => [v] },
  { template: `${P} "a{repo}b"`, expect: (v) => [`a${v}b`] },
  { template: `${P} 'a{repo}b'`, expect: (v) => [`a${v}b`] },
  { template: `${P} x{repo}y`, expect: (v) => [`x${v}y`] },
  { template: `${P} "x"{repo}'y'`, expect: (v) => [`x${v}y`] },
  { template: `${P} "{repo}"'{repo}'{repo}`, expect: (v) => [`${v}${v}${v}`] },
  { template: `${P} {repo} "{repo}" '{repo}'`, expect: (v) => [v, v, v] },
  { template: `${P} ~{repo}`, expect: (v) => [`~${v}`] },
  // zsh expands a word-starting `~` or `=` whatever the quoting after it (`~''` is $HOME, `='ls'` /usr/bin/ls)
  { template: `${P} ~{repo}/x ={repo} a=~{repo}`, expect: (v) => [`~${v}/x`, `=${v}`, `a=~${v}`] },
  { template: `x=~{repo} y=a:~{repo}; ${P} "$x" "$y"`, expect: (v) => [`~${v}`, `a:~${v}`] },
  { template: `${P} "$HOME{repo}" $HOME{repo}`, expect: (v) => [`${HOME}${v}`, `${HOME}${v}`] },
  { template: `${P} --repo={repo}`, expect: (v) => [`--repo=${v}`] },
  { template: `x={repo}; ${P} "$x"`, expect: (v) => [v] },
  { template: `x="{repo}" y='{repo}'; ${P} "$x$y"`, expect: (v) => [`${v}${v}`] },
  { template: `${P} {repo}>/dev/null; ${P} {repo}`, expect: (v) => [v] },
  { template: `( ${P} "{repo}" )`, expect: (v) => [v] },
  { template: `{ ${P} {repo}; }`, expect: (v) => [v] },
  { template: `case {repo} in *) ${P} "{repo}";; esac`, expect: (v) => [v] },
  { template: `for w in {repo}; do ${P} "$w"; done`, expect: (v) => [v] },
  { template: `${P} "$(printf x)"{repo} "$(printf '%s' "it's")""{repo}"`, expect: (v) => [`x${v}`, `it's${v}`] },
  { template: `${P} \`printf x\`'{repo}'`, expect: (v) => [`x${v}`] },
  { template: `${P} "\\$x \\" \\\\ {repo}"`, expect: (v) => [`$x " \\ ${v}`] },
  { template: `${P} \\"{repo}\\'`, expect: (v) => [`"${v}'`] },
  { template: `${P} {repo} # it's a comment "with quotes`, expect: (v) => [v] },
  { template: `: 'it''s'; ${P} "{repo}"`, expect: (v) => [v] },
  { template: `${P} $'a'{repo}"$'b'"`, expect: (v, dsq) => [`${dsq}${v}$'b'`] },
  { template: `${P} "\${HOME}{repo}" \${HOME:-x}{repo}`, expect: (v) => [`${HOME}${v}`, `${HOME}${v}`] },
  { template: `${P} $((1+1)){repo}`, expect: (v) => [`2${v}`] },
  { template: `${P} "{repo}" \\\n  '{repo}'`, expect: (v) => [v, v] },
  { template: `${P} "{repo}\n{repo}"\n${P} '{repo}\n'`, expect: (v) => [`${v}\n${v}`, `${v}\n`] },
  { template: `${P} {a,{repo}}`, expect: (v) => ['a', v], only: /bash|zsh|ksh/ },
  { template: `${P} {{repo},{repo}}`, expect: (v) => [v, v], only: /bash|zsh|ksh/ },
];

/** Runs `script` with `shell -c`; its stdout. Throws when it fails, or does not end within RUN_TIMEOUT_MS (said so). */
function run(shell: Shell, script: string): string {
  try {
    return execFileSync(shell.argv[0]!, [...shell.argv.slice(1), '-c', script], {
      cwd: work,
      env: { HOME, PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C.UTF-8' },
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 64 * 1024 * 1024,
      timeout: RUN_TIMEOUT_MS,
      killSignal: 'SIGKILL',
    }).toString('utf8');
  } catch (e) {
    if ((e as { code?: string }).code === 'ETIMEDOUT' || (e as { signal?: string }).signal === 'SIGKILL') {
      throw new TimedOut(`${shell.name} (${shell.argv.join(' ')}) -c did not end within ${RUN_TIMEOUT_MS / 1000} s`);
    }
    throw e;
  }
}

class TimedOut extends Error {}

/** The arguments printf printed (each ends in NUL). */
function args(out: string): string[] {
  assert.ok(out === '' || out.endsWith('\0'), `output does not end in NUL: ${JSON.stringify(out)}`);
  return out === '' ? [] : out.slice(0, -1).split('\0');
}

test('every placeholder context, every hostile value, every shell: the value arrives as exactly one literal string', async (t) => {
  assert.ok(SHELLS.length > 0, 'no shell found');
  const values = hostileValues();
  for (const missing of MISSING) await t.test(`${missing}: not installed here`, { skip: `${missing} is not installed` }, () => {});
  for (const shell of SHELLS) {
    await t.test(`${shell.name} (${shell.argv.join(' ')})`, () => everyContext(shell, values));
  }
});

function everyContext(shell: Shell, values: string[]): void {
  const dsq = args(run(shell, `${P} $'a'`))[0] ?? '';
  let checked = 0;
  for (const c of CONTEXTS) {
    if (c.only && !c.only.test(shell.name)) continue;
    // One shell per context: every value's command in turn, each in its own subshell, with a
    // marker after it; on any difference, each value is run alone to say which (a run that does
    // not end fails at once: it would not end alone either).
    const commands = values.map((v) => expandCommand(c.template, { repo: v }));
    const script = commands.map((cmd, i) => `(\n${cmd}\n)\n${P} '<${i}>'\n`).join('');
    const want = values.map((v, i) => [...c.expect(v, dsq), `<${i}>`].map((a) => `${a}\0`).join('')).join('');
    let got: string | null;
    try {
      got = run(shell, script);
    } catch (e) {
      if (e instanceof TimedOut) assert.fail(`${e.message}: template ${JSON.stringify(c.template)} with every value`);
      got = null;
    }
    if (got !== want) {
      values.forEach((v, i) => {
        let alone: string[];
        try {
          alone = args(run(shell, commands[i]!));
        } catch (e) {
          assert.fail(`${shell.name} -c failed for template ${JSON.stringify(c.template)}, value ${JSON.stringify(v)}:\n${commands[i]}\n${(e as Error).message}`);
        }
        assert.deepEqual(alone, c.expect(v, dsq), `${shell.name}: template ${JSON.stringify(c.template)}, value ${JSON.stringify(v)}\n  expanded: ${commands[i]}`);
      });
      assert.fail(`${shell.name}: template ${JSON.stringify(c.template)}: the values differ only when run together`);
    }
    checked += values.length;
    assert.deepEqual(readdirSync(RAN), [], `something ran with ${shell.name}, template ${JSON.stringify(c.template)}`);
  }
  assert.ok(checked > 1000, `only ${checked} combinations checked`);
}

test('random templates: wherever the lexer accepts a placeholder, no hostile value runs anything in any shell', () => {
  // Templates glued from shell syntax fragments (most are not even valid commands); for each one
  // whose {repo} is accepted, every hostile value is run through every shell, each command on its
  // own (`shell -c`, in parallel), by one driver shell per template.
  const fragments = [
    "'", '"', '$(', ')', '`', '\\', ' ', '{repo}', '{repo}', '{repo}', 'x', '$x', '${', '}', '#', '\n', ';', '(',
    '<<E', "$'", 'case ', ' in ', '((', '$((', 'echo ', '$', '\\\n', '"$', "'\\''", '|', '&&', '{', '=', '~', '*',
    '$"', '<<-E', "<<'E'", 'E\n', '\\"', "\\'", '${x:-', '${#', '$((1+', '))', 'esac', ') ', ';;',
  ];
  const m = (tag: string) => path.join(RAN, `random-${tag}`);
  const values = [
    `$(touch ${m('a')})`, `\`touch ${m('b')}\``, `'$(touch ${m('c')})'`, `"$(touch ${m('d')})"`, `\\"$(touch ${m('e')})\\"`,
    `';touch ${m('f')};'`, `";touch ${m('g')};"`, `\ntouch ${m('h')}\n`, `'\ntouch ${m('i')}\n'`, `"\ntouch ${m('j')}\n"`,
    `\\'$(touch ${m('k')})`, `\\\n$(touch ${m('l')})`, `}$(touch ${m('m')})`, `)$(touch ${m('n')})`, `\`)$(touch ${m('o')})`,
  ];
  let seed = 4242;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  let accepted = 0;
  for (let k = 0; k < 400; k++) {
    let template = '';
    const len = 2 + rand(14);
    for (let j = 0; j < len; j++) template += fragments[rand(fragments.length)];
    if (!template.includes('{repo}')) template += '{repo}';
    if (placeholderSites(template).some((s) => s.refused !== null)) continue;
    accepted++;
    const commands = values.map((v) => expandCommand(template, { repo: v }));
    for (const shell of SHELLS) {
      // /bin/sh drives: each command run by the shell under test (`busybox sh` is two words)
      const r = spawnSync('/bin/sh', ['-c', 'for c do "$SH0" ${SH1:+"$SH1"} -c "$c" >/dev/null 2>&1 </dev/null & done; wait', 'sh', ...commands], {
        cwd: work,
        env: { HOME, PATH: process.env.PATH ?? '/usr/bin:/bin', SH0: shell.argv[0]!, SH1: shell.argv[1] ?? '' },
        stdio: 'ignore',
        timeout: RUN_TIMEOUT_MS,
        killSignal: 'SIGKILL',
      });
      assert.ok(r.error === undefined, `${shell.name}: template ${JSON.stringify(template)}: the commands did not end within ${RUN_TIMEOUT_MS / 1000} s (${r.error?.message})`);
      const ran = readdirSync(RAN);
      assert.deepEqual(ran, [], `${shell.name}: template ${JSON.stringify(template)} let a value run: ${ran.join(', ')}`);
    }
  }
  assert.ok(accepted > 150, `only ${accepted} random templates were accepted`);
});

test('expandCommand keeps plain values readable and quotes only what needs it', () => {
  assert.equal(expandCommand('git fetch {repo} {branch}', { repo: 'https://x/a.git', branch: 'master' }), 'git fetch https://x/a.git master');
  assert.equal(expandCommand('git fetch "{repo}"', { repo: 'https://x/a.git' }), 'git fetch "https://x/a.git"');
  assert.equal(expandCommand("git reset --hard '{commit}'", { commit: 'abc1234' }), "git reset --hard 'abc1234'");
  assert.equal(expandCommand('git fetch "{repo}"', { repo: '/srv/up stream' }), `git fetch ""'/srv/up stream'""`);
  assert.equal(expandCommand("echo '{repo}'", { repo: "it's" }), `echo 'it'\\''s'`);
  assert.equal(expandCommand('echo x{branch}', { branch: 'master' }), "echo x'master'");
  // a reserved word is never left bare, in case the placeholder stands where a command would
  assert.equal(expandCommand('{branch} x', { branch: 'done' }), "'done' x");
  // a `~` or a word-starting `=` right before a placeholder is written \~ / \=: zsh expands them whatever follows
  assert.equal(expandCommand('ls ~{branch} ={branch} --x={branch} a=~{branch}', { branch: '' }), "ls \\~'' \\='' --x='' a=\\~''");
  assert.equal(expandCommand('ls \\~{branch}', { branch: 'x' }), "ls \\~'x'", 'a ~ already quoted is left as it is');
});

/** Templates whose placeholder cannot be made one literal word: refused when validated. */
const REFUSED: Array<[string, RegExp]> = [
  ['git fetch $(echo {repo})', /\{repo\} is inside a \$\(…\) command substitution/],
  ['git fetch "$(echo {repo})"', /\{repo\} is inside a \$\(…\) command substitution/],
  ['git fetch `echo {repo}`', /\{repo\} is inside a `…` command substitution/],
  ['git fetch "`echo {repo}`"', /\{repo\} is inside a `…` command substitution/],
  ['echo $(( {commit} + 1 ))', /\{commit\} is inside an arithmetic expression/],
  ['(( {commit} ))', /\{commit\} is inside an arithmetic expression/],
  ['echo ${X:-{repo}}', /\{repo\} is inside a \$\{…\} parameter expansion/],
  ['echo "${X:-{repo}}"', /\{repo\} is inside a \$\{…\} parameter expansion/],
  ["echo $'{repo}'", /\{repo\} is inside a \$'…' string/],
  ["echo $'a\\'b' {repo}", /\{repo\} comes after a \$'…' string with a backslash/],
  ['echo \\{repo}', /\{repo\} comes right after a backslash/],
  ['echo "\\{repo}"', /\{repo\} comes right after a backslash/],
  ['echo x # from {repo}', /\{repo\} is in a comment/],
  ['cat <<EOF\n{repo}\nEOF', /\{repo\} is in or after a here-document/],
  ['cat <<EOF >f\nx\nEOF\necho {repo}', /\{repo\} is in or after a here-document/],
  ['echo "$(case x in x) echo;; esac)" "{repo}"', /\{repo\} comes after a case statement/],
  ['x=; echo "${x:-$\'a\'}" {repo}', /\{repo\} comes after a \$'…' inside "\$\{…\}"/],
  ['echo "${x:-\'}\'}" {repo}', /\{repo\} comes after a \$\{…\} with quotes inside double quotes/],
  // found by fuzzing (bash and dash disagree on where these end)
  ['echo `echo \'`\' {repo}', /\{repo\} comes after a `…` holding quotes/],
  ['"${repo};echo `case case \'`{repo}', /\{repo\} comes after a `…` holding quotes/],
  ['echo $(()\\\'"<<-E{repo}&&;;))', /\{repo\} comes after a \$\(\(…\)\) or \(\(…\)\) that does not end with `\)\)`/],
];

test('a placeholder where its value cannot be quoted is refused at validation, with the key path', () => {
  for (const [command, message] of REFUSED) {
    for (const where of ['update', 'restart', 'health'] as const) {
      const raw = variant((c) => {
        if (where === 'update') c.agent.update[1] = command;
        else if (where === 'restart') c.agent.restart.web = command;
        else c.agent.health.command = command;
      });
      const r = validateConfig(raw, ctx());
      assert.ok('problems' in r, `accepted: ${JSON.stringify(command)} in ${where}`);
      const path = where === 'update' ? 'agent.update[1]' : where === 'restart' ? 'agent.restart.web' : 'agent.health.command';
      const mine = r.problems.filter((p) => p.path === path);
      assert.equal(mine.length, 1, `${JSON.stringify(command)}: ${JSON.stringify(r.problems)}`);
      assert.match(mine[0]!.message, message, command);
    }
    // and expandCommand itself never produces a command for it
    assert.throws(() => expandCommand(command, { repo: 'r', commit: 'abc1234' }), message, command);
  }
});

test('placeholders in safe positions around command substitutions and quotes are accepted', () => {
  for (const command of [
    'git fetch "{repo}" \'{branch}\'',
    'test "$(git -C ~/agent/repo rev-parse HEAD)" = "{commit}"',
    'echo "`date`: {commit}" $(date) {commit}',
    'c={commit}; git log -1 "$(echo "$c")"',
    'echo ${HOME} {commit} # a comment',
    "echo $'a' {commit}",
    'echo "$(echo $\'a\')" {commit}',
    "echo ${x:-$'a'} ${y:-'b'} {commit}",
    'cat <<EOF {commit}\nx\nEOF',
  ]) {
    const r = validateConfig(variant((c) => void (c.agent.update[1] = command)), ctx());
    assert.ok('config' in r, `${JSON.stringify(command)}: ${'problems' in r ? JSON.stringify(r.problems) : ''}`);
  }
});

test('the refusal names the file, the line and the key path', () => {
  const yaml = `source:
  repo: https://github.com/example/agent
  branch: master
servers:
  - { name: app1, host: 10.0.0.11 }
ssh:
  known_hosts: /dev/null
agent:
  version_command: git -C ~/agent/repo rev-parse HEAD
  update:
    - git -C ~/agent/repo fetch "$(echo {repo})" {branch}
  health:
    command: curl -fsS http://127.0.0.1:25052/version
`;
  try {
    loadConfigText(yaml, '/srv/fleet.yaml', { home: '/home/op', user: 'op', exists: () => true });
    assert.fail('accepted');
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    assert.match(e.message, /^\/srv\/fleet\.yaml:11: agent\.update\[0\]: \{repo\} is inside a \$\(…\) command substitution/);
  }
});
