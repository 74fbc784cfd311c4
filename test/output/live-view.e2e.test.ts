/**
 * What an operator sees while a rollout runs, on the real fleet: in a pseudo-terminal of 80
 * columns (script(1)) three batches each get their own live line, with an overall line and the
 * k/N progress, each fitted to keep its server's step and health wait, and nothing the view
 * draws is wider than the terminal; through a pipe every line
 * is a plain line with a timestamp; -q prints the outcome line alone; a test-mode pause is said
 * once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { BIN, cli, sharedFleet, spawnCli, printed } from '../helpers/cli.js';
import { heldInVerify, openGate } from '../helpers/gates.js';
import { shellQuote } from '../../src/util/shell.js';
import { displayWidth } from '../../src/output/fit.js';
import type { Fleet } from '../fleet/fleet.js';
import { Screen } from './screen.js';

const fleetFor = sharedFleet({ servers: 6 });

async function plan(fleet: Fleet, name: string, overrides: Record<string, unknown> = {}): Promise<string> {
  const db = join(fleet.root, `${name}.db`);
  const r = await cli(['plan', '-c', fleet.writeConfig({ name, ...overrides })], { db });
  assert.equal(r.code, 0, r.stderr);
  return db;
}

const STAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ /;

test('in a terminal of 80 columns, three batches: one live line each and an overall one, with k/N done, the step and the health wait; nothing drawn wider than the terminal', async (t) => {
  const fleet = await fleetFor(t, { servers: 6 });
  if (!fleet) return;
  // every server is held in verify until the test opens its gate, so all three batches are in flight at once
  const db = await plan(fleet, 'lv', heldInVerify());
  assert.equal((await cli(['split', 'lv', '--batches', '3'], { db })).code, 0);
  const command = ['node', BIN, '--db', db, 'start', 'lv', 'lv.2', 'lv.3'].map(shellQuote).join(' ');
  const env: Record<string, string | undefined> = { ...process.env, TERM: 'xterm-256color', NO_COLOR: undefined, FORCE_COLOR: undefined };
  const child = spawn('script', ['-qfec', `stty cols 80 rows 40; exec ${command}`, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env });
  t.after(() => child.kill('SIGKILL'));
  let raw = '';
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));

  /**
   * the live area while every batch's server waits for health: three batch lines, then the
   * overall line. At 80 columns a line is too long whole: the host:port gives way, the step and
   * the health text stay (issue 25)
   */
  const batchLine = (name: string) => new RegExp(`^\\S ${name.replace('.', '\\.')} +\\d/2 done · \\d failed · s\\d verify \\d+s · waiting for health \\(try \\d+\\)$`);
  const allVerifying = (lines: string[]) => {
    const at = lines.findIndex((l) => batchLine('lv').test(l));
    return at >= 0 && batchLine('lv.2').test(lines[at + 1] ?? '') && batchLine('lv.3').test(lines[at + 2] ?? '') && /^ {2}3 updates +0\/6 done · 0 failed/.test(lines[at + 3] ?? '')
      ? lines.slice(at, at + 4)
      : null;
  };
  const snapshot = await new Promise<string[]>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      raw += d.toString();
      const area = allVerifying(new Screen(80).write(raw).lines());
      if (area) resolve(area);
    });
    void exited.then((code) => reject(new Error(`exited ${code} before every batch was verifying:\n${raw}\n${stderr}`)));
  });
  openGate(fleet, 'online');
  const code = await exited;
  assert.equal(code, 0, raw + stderr);

  assert.equal(snapshot.length, 4, 'one line per batch, and the overall line');
  const screen = new Screen(80).write(raw);
  assert.equal(screen.wraps, 0, `no line wider than the terminal:\n${screen.wrapped.join('\n')}`);
  assert.ok(screen.widest <= 80);
  const lines = screen.lines();
  for (const l of lines) assert.ok(displayWidth(l) <= 80, l);
  // the live area is gone at the end; each server's outcome line stayed, once
  assert.ok(!lines.some((l) => /^\S (lv|lv\.2|lv\.3) +\d\/2 done|^ {2}3 updates/.test(l)), `no live line left:\n${lines.join('\n')}`);
  const outcomes = lines.filter((l) => /✓ s\d success in /.test(l));
  assert.equal(outcomes.length, 6, lines.join('\n'));
  assert.ok(outcomes.some((l) => /\(2\/2 done · 0 failed\)$/.test(l)), 'the progress on the outcome line');
  for (const b of ['lv', 'lv.2', 'lv.3']) assert.ok(lines.includes(`${b} success: all 2 servers at the target`), `${b}'s outcome:\n${lines.join('\n')}`);
});

test('through a pipe: every line a plain line with a timestamp, steps, health waits (not every poll), outcomes', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const db = await plan(fleet, 'pl', heldInVerify());
  const run = spawnCli(['start', 'pl'], { db });
  // s1 is held in verify: its health is polled every 50 ms until the test opens its gate
  await printed(run, 'stdout', /s1: waiting for health/);
  openGate(fleet, 'online');
  const r = await run;
  assert.equal(r.exitCode, 0, String(r.stdout) + String(r.stderr));
  const lines = String(r.stdout).trimEnd().split('\n');
  for (const l of lines) assert.match(l, STAMP, `a timestamp on every line: ${JSON.stringify(l)}`);
  assert.doesNotMatch(String(r.stdout), /\x1b/, 'no colours, no cursor moves'); // eslint-disable-line no-control-regex
  const text = lines.map((l) => l.replace(STAMP, ''));
  const s1 = fleet.servers[0]!;
  const expected = [
    /^starting pl: 2 of 2 servers to go$/,
    new RegExp(`^\\[1/2\\] s1 \\(${s1.host.replace(/\./g, '\\.')}:${fleet.port}\\)$`),
    /^ {2}s1: update$/,
    /^ {2}s1: restart$/,
    /^ {2}s1: verify$/,
    /^ {2}s1: waiting for health \(\d+s, try 1\): exited 7: health: starting \(gate online closed\)$/,
    /^ {2}✓ s1 success in \S+ \(1\/2 done · 0 failed · ETA \d+s\)$/,
    /^\[2\/2\] s2 /,
    /^ {2}s2: update$/,
    /^ {2}s2: restart$/,
    /^ {2}s2: verify$/,
    /^ {2}✓ s2 success in \S+ \(2\/2 done · 0 failed\)$/,
    /^pl success: all 2 servers at the target$/,
  ];
  assert.equal(text.length, expected.length, text.join('\n'));
  expected.forEach((re, i) => assert.match(text[i]!, re, text.join('\n')));
  // the gate opened once the first wait was printed: s1's health was polled at least once more, printed once
  const polls = await cli(['logs', 'pl', '--server', 's1'], { db });
  assert.ok((polls.stdout.match(/\[verify\]/g) ?? []).length >= 2, polls.stdout);
});

test('-q prints the outcome line alone; a test-mode pause is said once, with the command that continues', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  const db = await plan(fleet, 'q', { test_mode: { stop_after: 1 } });
  const quiet = await cli(['-q', 'start', 'q'], { db });
  assert.equal(quiet.code, 3, quiet.stderr);
  assert.equal(quiet.stdout, `q paused (test mode: 1 server finished); continue with: agent-update --db ${db} resume q`, 'one line (execa drops the final newline)');
  const paused = await cli(['resume', 'q', '--stop-after', '1'], { db });
  assert.equal(paused.code, 3, paused.stderr);
  const said = paused.stdout.split('\n').filter((l) => /paused/.test(l));
  assert.equal(said.length, 1, `the pause said once:\n${paused.stdout}`);
  assert.match(said[0]!, new RegExp(`${STAMP.source}q paused \\(test mode: \\d servers? finished.*\\); continue with: agent-update --db \\S+ resume q$`));
  const done = await cli(['-q', 'resume', 'q'], { db });
  assert.equal(done.code, 0, done.stderr);
  assert.equal(done.stdout, 'q success: all 3 servers at the target');
});
