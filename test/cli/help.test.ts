/** Help that teaches (issue 12, item 7): every command's --help has the global options, examples and exit codes. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Command } from 'commander';
import { HELP } from '../../src/cli/help.js';
import { buildProgram, commandOf } from '../../src/main.js';
import { cli } from '../helpers/cli.js';

const program = buildProgram({ code: 0 }, []);
const commands = program.commands.filter((c) => c.name() !== 'help');

test('every command has examples and exit codes', () => {
  for (const c of commands) {
    const h = HELP[c.name()];
    assert.ok(h, `${c.name()} has help`);
    assert.ok(h.examples.length >= 2, `${c.name()}: at least two examples`);
    assert.ok(h.exits.some(([code]) => code === 0), `${c.name()}: exit 0 is explained`);
    for (const [code] of h.exits) assert.ok([0, 1, 2, 3, 4, 5, 69, 130].includes(code), `${c.name()}: exit ${code} is one of SPEC's (or 5, 69, 130: docs/reference/exit-codes.md)`);
  }
});

/** The long options a command accepts, its own and the program's. */
function flags(c: Command): Set<string> {
  return new Set([...c.options, ...program.options].flatMap((o) => [o.long, o.short, o.negate ? o.long : undefined]).filter((f): f is string => !!f));
}

test('every example names a real command with options it has', () => {
  for (const h of Object.values(HELP)) {
    for (const [line] of h.examples) {
      // each `agent-update …` in the line (an example may chain two with &&)
      for (const part of line.split(/&&|\|/).map((p) => p.trim()).filter((p) => p.startsWith('agent-update'))) {
        const words = part.split(/\s+/).slice(1);
        const name = words.find((w) => !w.startsWith('-') && !/^\//.test(w));
        const c = commands.find((x) => x.name() === name);
        assert.ok(c, `${part}: ${name} is a command`);
        for (const w of words.filter((x) => x.startsWith('-'))) assert.ok(flags(c).has(w), `${part}: ${w} is an option of ${name}`);
      }
    }
  }
});

test('--help of each command, through the CLI, lists the global options, its examples and exit codes', async () => {
  for (const c of commands) {
    const r = await cli([c.name(), '--help']);
    assert.equal(r.code, 0, r.stderr);
    for (const needle of ['Global Options:', '--db <path-or-url>', '--json', '-q, --quiet', 'Examples:', 'Exit codes:']) {
      assert.ok(r.stdout.includes(needle), `${c.name()} --help shows ${needle}`);
    }
    assert.ok(r.stdout.includes(`$ ${HELP[c.name()]!.examples[0]![0]}`), `${c.name()} --help shows its first example`);
  }
  const root = await cli(['--help']);
  assert.match(root.stdout, /Getting started:[\s\S]*npm link[\s\S]*\.\/bin\/agent-update\.js[\s\S]*Exit codes:/);
});

test('no example chains with && a command that needs what the one before it does not give: a canary pause is exit 3, and pause returns before the update is paused', () => {
  // start/resume --stop-after N end paused (exit 3) when all goes well: `&&` would never run what follows
  // pause returns at once (exit 0), while the server in flight finishes: what needs a paused update is refused then
  const needsPaused = new Set(['cancel', 'split', 'drop', 'retry', 'undo', 'resume']);
  for (const [cmd, h] of Object.entries(HELP)) {
    for (const [line] of h.examples) {
      const parts = line.split('&&').map((p) => p.trim().split(/\s+/));
      for (let i = 0; i + 1 < parts.length; i++) {
        const [, name, ...rest] = parts[i]!;
        const next = parts[i + 1]![1]!;
        assert.ok(!((name === 'start' || name === 'resume') && rest.includes('--stop-after')), `${cmd}: "${line}": ${name} --stop-after exits 3 when the canary pauses, so && never runs ${next}`);
        assert.ok(!(name === 'pause' && needsPaused.has(next)), `${cmd}: "${line}": pause returns before the update is paused, so ${next} would be refused`);
      }
    }
  }
});

test('--commit and --branch are options of plan and auto; on another command they are answered with where they go, not "did you mean --config?"', async () => {
  const r = await cli(['start', 'x', '--commit', 'abc']);
  assert.equal(r.code, 2);
  assert.doesNotMatch(r.stderr, /did you mean/i);
  assert.match(r.stderr, /unknown option '--commit': the target commit is chosen when the update is planned: source\.commit in the config \(-c FILE\), or `plan -c FILE --commit SHA` \(also auto\)/);
  const b = await cli(['resume', 'x', '--branch=main']);
  assert.match(b.stderr, /unknown option '--branch': the branch is chosen when the update is planned: source\.branch in the config/);
  // on plan they are real options: the config's problem is what is said (a missing file), not the option
  const p = await cli(['plan', '-c', '/nonexistent/x.yaml', '--commit', 'abcdef0', '--branch', 'main']);
  assert.equal(p.code, 2);
  assert.doesNotMatch(p.stderr, /unknown option/);
  // any other unknown option keeps commander's suggestion
  assert.match((await cli(['plan', '--conf', 'x'])).stderr, /Did you mean --config\?/);
});

test("plan --version SEMVER and auto --version SEMVER are the release to roll out, not the program's version; --version alone still is", async () => {
  for (const command of ['plan', 'auto']) {
    const r = await cli(['--db', '/nonexistent/x.db', command, '-c', '/nonexistent/x.yaml', '--version', '1.4.0']);
    assert.equal(r.code, 2, `${command}: ${r.stdout}${r.stderr}`);
    assert.doesNotMatch(r.stdout, /^\d+\.\d+\.\d+\s*$/, `${command} --version did not print the program's version`);
    assert.match(r.stderr, /x\.yaml/, `${command}: the missing config is what is said`);
  }
  const v = await cli(['--version']);
  assert.equal(v.code, 0);
  assert.match(v.stdout.trim(), /^\d+\.\d+\.\d+$/);
  assert.equal(commandOf(['--db', 'plan', '-q', 'auto', '--version']), 'auto', '--db takes a value');
  assert.equal(commandOf(['--json', '--version']), undefined);
});
