/**
 * A closed output never stops a rollout (issue 25): `start NAME | head -n 3`, `| less` then `q`,
 * a `--json` stream read by `head`, the progress on stderr read by `head`, a terminal that hangs
 * up. The command stops writing to what was closed, says so on stderr when that is still open,
 * and carries the update on to its end: no stack trace, no server left `running`. Real CLI, real
 * pipes (bash pipelines, script(1) for a terminal), real sshd.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { shellQuote } from '../../src/util/shell.js';
import { BIN, cli, sharedFleet, statusJson, testStateHome } from '../helpers/cli.js';
import { heldInVerify, openGate } from '../helpers/gates.js';
import type { Fleet } from '../fleet/fleet.js';

const fleetFor = sharedFleet({ servers: 3 });

/** The environment spawnCli() gives the CLI: no database or site defaults of whoever runs the tests. */
function cliEnv(): Record<string, string | undefined> {
  return { ...process.env, NO_COLOR: '1', XDG_STATE_HOME: testStateHome(), AGENT_UPDATE_DB: undefined, AGENT_UPDATE_DEFAULTS: '' };
}

async function plan(fleet: Fleet, name: string, overrides: Record<string, unknown> = {}): Promise<string> {
  const db = join(fleet.root, `${name}.db`);
  const r = await cli(['plan', '-c', fleet.writeConfig({ name, ...overrides })], { db });
  assert.equal(r.code, 0, r.stderr);
  return db;
}

/**
 * `script` (a bash pipeline of `node BIN ARGS…` and `reader`) run by bash, as a shell runs it;
 * exits with the CLI's own exit code (PIPESTATUS[0]).
 */
async function pipeline(args: string[], redirect: string, reader: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const cmd = ['node', BIN, ...args].map(shellQuote).join(' ');
  const r = await execa('bash', ['-c', `${cmd} ${redirect} | ${reader}; exit "\${PIPESTATUS[0]}"`], { reject: false, stdin: 'ignore', env: cliEnv(), timeout: 120_000 });
  return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** The update ended `success` with every server at the target, none left running. */
async function endedWell(db: string, name: string): Promise<void> {
  const doc = await statusJson(db, name);
  assert.equal(doc.status, 'success', JSON.stringify(doc.counts));
  assert.deepEqual(doc.counts, { total: 3, success: 3 });
  assert.ok(doc.servers.every((s) => s.step === null), 'no server left in a step');
}

const STACK = /Error: write|^\s+at /m;

test('start | head -n 3: stdout closed mid-rollout; stderr says so once, the rollout goes on to success, exit 0, no stack trace', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  const db = await plan(fleet, 'hd');
  const r = await pipeline(['--db', db, 'start', 'hd'], '', 'head -n 3');
  assert.doesNotMatch(r.stderr, STACK, r.stderr);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.split('\n').length, 3, 'head printed its 3 lines');
  const said = r.stderr.split('\n').filter((l) => /stdout/.test(l));
  assert.equal(said.length, 1, r.stderr);
  assert.match(said[0]!, /^agent-update: stdout was closed \(EPIPE\): nothing more is written to it; the rollout goes on to its end or next pause \(follow: .*--db \S+ status hd --watch; pause: Ctrl-C, or .*--db \S+ pause hd\)$/);
  await endedWell(db, 'hd');
});

test('--json start | head -n 3: the NDJSON reader goes away; the progress on stderr says so and goes on; exit 0', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  const db = await plan(fleet, 'jh');
  const r = await pipeline(['--db', db, '--json', 'start', 'jh'], '', 'head -n 3');
  assert.doesNotMatch(r.stderr, STACK, r.stderr);
  assert.equal(r.code, 0, r.stderr);
  for (const l of r.stdout.split('\n')) assert.equal((JSON.parse(l) as { v: number }).v, 1);
  assert.match(r.stderr, /stdout was closed \(EPIPE\)/);
  assert.match(r.stderr, /jh success: all 3 servers at the target/, 'the progress on stderr went on to the end');
  await endedWell(db, 'jh');
});

test('--json start 2>&1 >FILE | head -n 3: the progress on stderr closed; the NDJSON on stdout goes on to its result line; exit 0', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  const db = await plan(fleet, 'eh');
  const file = join(fleet.root, 'eh.ndjson');
  const r = await pipeline(['--db', db, '--json', 'start', 'eh'], `2>&1 >${shellQuote(file)}`, 'head -n 3');
  assert.equal(r.code, 0, r.stdout);
  assert.equal(r.stdout.split('\n').length, 3, r.stdout);
  const ndjson = readFileSync(file, 'utf8').trimEnd().split('\n');
  const last = JSON.parse(ndjson.at(-1)!) as { type: string; exitCode: number; status: string };
  assert.equal(last.type, 'result', ndjson.at(-1));
  assert.equal(last.exitCode, 0);
  assert.equal(last.status, 'success');
  await endedWell(db, 'eh');
});

test('live view on stderr, the NDJSON on stdout read by head: the note is drawn above the live view; the rollout ends well', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  const db = await plan(fleet, 'lh');
  const cmd = ['node', BIN, '--db', db, '--json', 'start', 'lh'].map(shellQuote).join(' ');
  const env = { ...cliEnv(), TERM: 'xterm-256color', NO_COLOR: undefined };
  const r = await execa('script', ['-qfec', `stty cols 120 rows 40; bash -c ${shellQuote(`${cmd} | head -n 3 >/dev/null; exit "\${PIPESTATUS[0]}"`)}`, '/dev/null'], {
    reject: false,
    stdin: 'ignore',
    env,
    timeout: 120_000,
  });
  const screen = String(r.stdout);
  assert.doesNotMatch(screen, STACK, screen);
  assert.equal(r.exitCode, 0, screen);
  assert.match(screen, /stdout was closed \(EPIPE\)/);
  assert.match(screen, /lh success: all 3 servers at the target/);
  await endedWell(db, 'lh');
});

test('live view on a terminal that hangs up mid-server (SIGHUP, then EIO on every write): the rollout goes on to success', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  // s1 is held in verify until the test opens its gate: the terminal goes away while it is in flight
  const db = await plan(fleet, 'hu', heldInVerify());
  const cmd = ['node', BIN, '--db', db, 'start', 'hu'].map(shellQuote).join(' ');
  const env = { ...cliEnv(), TERM: 'xterm-256color', NO_COLOR: undefined };
  const term = spawn('script', ['-qfec', `stty cols 120 rows 40; exec ${cmd}`, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env });
  t.after(() => term.kill('SIGKILL'));
  let screen = '';
  await new Promise<void>((resolve, reject) => {
    term.stdout.on('data', (d: Buffer) => {
      screen += d.toString();
      if (/s1 \S+ verify/.test(screen)) resolve();
    });
    term.on('exit', () => reject(new Error(`the terminal ended before s1 was in verify:\n${screen}`)));
  });
  // the terminal's window is closed: its master side goes, the CLI gets SIGHUP and EIO on writes
  term.kill('SIGKILL');
  await new Promise((resolve) => term.on('exit', resolve));
  openGate(fleet, 'online');
  const deadline = Date.now() + 60_000;
  for (;;) {
    const doc = await statusJson(db, 'hu');
    // ended, or its executor died with it (the bug: killed by the hangup, s1 left running)
    if (doc.status !== 'running' || doc.executor?.alive !== true) break;
    assert.ok(Date.now() < deadline, `still ${doc.status} after 60 s: ${JSON.stringify(doc.counts)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  await endedWell(db, 'hu');
});
