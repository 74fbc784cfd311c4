/**
 * execution.window end to end (issue 24, item 4) on the real sshd fleet. The windows are written
 * relative to the time the test runs (UTC, every day, to the minute), so each test means the same
 * at any hour: "closed now, opens in 2 hours", "open now for 2 more hours".
 *
 * The real CLI in its own process: `start` outside the window pauses before any server (exit 3,
 * nothing sent to a server, the reason everywhere a person or a script looks), `auto` outside it
 * exits 0 touching nothing (not even creating the database), inside it a rollout runs as without
 * one. The CLI's commands in this process with a clock of the test's (CliContext.clock, moved
 * ahead by hours at will; time passes as it does): `auto` across a window that closes during its
 * rollout and opens again the next day, and `start --wait-for-window` waiting for one that opens
 * two seconds later.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { autoCommand } from '../../src/cli/auto.js';
import { CliContext } from '../../src/cli/context.js';
import { runCommand } from '../../src/cli/start.js';
import { systemClock, type Clock } from '../../src/clock.js';
import { agentCommands, currentCommit, readDeployCount } from '../../src/sim/agent.js';
import { byName, cli, planned, sharedFleet, statusJson } from '../helpers/cli.js';
import { openGate, waitGate } from '../helpers/gates.js';
import { openStore, until, waitForStore as waitFor, withStore } from '../helpers/db.js';

const fleetFor = sharedFleet({ servers: 2 });

// The commands run in this process read no site defaults (as the CLI's processes of cli() do not).
process.env.AGENT_UPDATE_DEFAULTS = '';

const MIN = 60_000;
const HOUR = 60 * MIN;

/** The operator's machine on UTC: the opening is said once (on another zone, its local time follows). */
const UTC = { TZ: 'UTC' };

/** `HH:MM` (UTC) of an instant. */
const hhmm = (ms: number) => new Date(ms).toISOString().slice(11, 16);

/** A window of every day, in UTC, over [now + from, now + to) to the minute; `start`/`end` the instants of today's. */
function windowAround(fromMs: number, toMs: number, now = Date.now()) {
  const start = Math.floor((now + fromMs) / MIN) * MIN;
  const end = Math.floor((now + toMs) / MIN) * MIN;
  return { config: { hours: `${hhmm(start)}-${hhmm(end)}`, timezone: 'UTC' }, start, end };
}

/** The journal of an update holds only the plan's probes: nothing was sent to a server by the run. */
async function onlyProbes(db: string, name: string): Promise<void> {
  const phases = await withStore(db, async (store) => (await store.getJournal(name)).map((j) => j.phase));
  assert.deepEqual([...new Set(phases)], ['probe'], `the run sent commands: ${phases.join(', ')}`);
}

test('start outside the window: paused before any server with the reason (exit 3), nothing sent to a server; status and --json say so', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const w = windowAround(2 * HOUR, 3 * HOUR);
  const { db, name } = await planned(fleet, { execution: { window: w.config } });
  const opens = new Date(w.start).toISOString().slice(0, 16).replace('T', ' ');

  // the operator's machine in New York: the opening in the window's time and in theirs
  const r = await cli(['start', name], { db, env: { TZ: 'America/New_York' } });
  assert.equal(r.code, 3, r.stdout + r.stderr);
  const reason = new RegExp(`outside the rollout window \\(every day ${w.config.hours} UTC\\): it opens \\w{3} ${opens} UTC \\(local time: \\w{3} [-0-9]{10} \\d\\d:\\d\\d America/New_York\\)`);
  assert.match(r.stdout, reason);
  assert.match(r.stdout, new RegExp(`continue with: .*resume ${name} --wait-for-window`));
  const doc = await statusJson(db, name);
  assert.equal(doc.status, 'paused');
  assert.match(doc.reason ?? '', reason);
  assert.deepEqual(Object.values(byName(doc)).map((s) => s.status), ['pending', 'pending']);
  await onlyProbes(db, name);
  for (const s of ['s1', 's2']) assert.equal(readDeployCount(fleet.home(s)), 0, `${s} was deployed to`);

  // status shows the reason and the window
  const status = await cli(['status', name], { db, env: UTC });
  assert.match(status.stdout, /reason {3}outside the rollout window/);
  assert.match(status.stdout, new RegExp(`window {3}every day ${w.config.hours} UTC \\(closed now; opens \\w{3} ${opens} UTC\\)`));

  // resume --json, still outside: the stream ends with the pause and its reason, exit 3
  const again = await cli(['--json', 'resume', name], { db });
  assert.equal(again.code, 3, again.stderr);
  const lines = again.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const finished = lines.find((l) => l.type === 'update-finished')!;
  assert.equal(finished.status, 'paused');
  assert.match(String(finished.reason), /^outside the rollout window \(every day /);
  assert.deepEqual([lines.at(-1)!.type, lines.at(-1)!.exitCode], ['result', 3]);
  assert.ok(!lines.some((l) => l.type === 'server-started'));
  await onlyProbes(db, name);
});

test('inside the window: plan prints it, and the rollout runs as without one', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const w = windowAround(-HOUR, 2 * HOUR);
  const db = join(fleet.root, 'plan.db');
  const plan = await cli(['plan', '-c', fleet.writeConfig({ name: 'u1', execution: { window: w.config } })], { db, env: UTC });
  assert.equal(plan.code, 0, plan.stderr);
  assert.match(plan.stdout, new RegExp(`window {3}every day ${w.config.hours} UTC \\(open now, until \\w{3} [-0-9]{10} ${hhmm(w.end)} UTC\\)`));
  const r = await cli(['start', 'u1'], { db });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const doc = await statusJson(db, 'u1');
  assert.equal(doc.status, 'success');
  assert.equal(currentCommit(fleet.home('s2')), fleet.upstream.commits.good);
});

test('auto outside the window: exit 0 saying when it opens; plans nothing, touches nothing, not even the database', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const w = windowAround(2 * HOUR, 3 * HOUR);
  const db = join(fleet.root, 'plan.db');
  const config = fleet.writeConfig({ name: 'nightly', execution: { window: w.config } });
  const r = await cli(['auto', '-c', config], { db, env: UTC });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, new RegExp(`^\\S+Z outside the rollout window \\(every day ${w.config.hours} UTC\\): it opens .* UTC; nothing planned or started, no server touched$`));
  assert.ok(!existsSync(db), 'no database was made');
  const json = await cli(['--json', 'auto', '-c', config], { db });
  assert.equal(json.code, 0, json.stderr);
  const line = JSON.parse(json.stdout) as Record<string, unknown>;
  assert.deepEqual([line.type, line.outcome, line.exitCode, line.updates], ['auto', 'outside-window', 0, []]);
  for (const s of ['s1', 's2']) assert.equal(readDeployCount(fleet.home(s)), 0);
});

/** A clock that runs as the real one, set ahead by `offset` (ms) as the test likes. */
class ShiftedClock implements Clock {
  offset = 0;
  now = () => new Date(Date.now() + this.offset);
  sleep = systemClock.sleep;
  /** from now on, the clock reads `ms` (then runs on from there) */
  setTo(ms: number): void {
    this.offset = ms - Date.now();
  }
}

/** One invocation of the CLI in this process, with the test's clock; its stdout and stderr kept. */
class Ctx extends CliContext {
  override readonly clock: Clock;
  stdout = '';
  stderr = '';
  constructor(db: string, clock: Clock, json = false) {
    const out = new PassThrough();
    const err = new PassThrough();
    super({ db, json, color: false }, out as unknown as NodeJS.WriteStream, err as unknown as NodeJS.WriteStream);
    this.clock = clock;
    out.on('data', (d: Buffer) => (this.stdout += d.toString()));
    err.on('data', (d: Buffer) => (this.stderr += d.toString()));
  }
}

async function inProcess(ctx: Ctx, run: (ctx: Ctx) => Promise<number>): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const code = await run(ctx);
    return { code, stdout: ctx.stdout, stderr: ctx.stderr };
  } finally {
    await ctx.close();
  }
}

test('auto across a window: plans and starts inside it, pauses (exit 0) when it closes under the server in flight, says so outside, resumes the next day', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const w = windowAround(2 * HOUR, 3 * HOUR);
  const db = join(fleet.root, 'plan.db');
  // s1 held in its update command (a wait the clock cannot cut short, as it would a health check's)
  const config = fleet.writeConfig({ name: 'nightly', execution: { window: w.config }, agent: { update: [...agentCommands().update, waitGate('update')] } });
  const clock = new ShiftedClock();
  const auto = () => inProcess(new Ctx(db, clock), (ctx) => autoCommand(ctx, { config }));

  // inside the window: auto plans and starts; s1 is held in its update
  clock.setTo(w.start + 5 * MIN);
  const running = auto();
  await until('the database', () => existsSync(db));
  await waitFor(db, 's1 updating', async (store) => (await store.getServers('nightly').catch(() => [])).find((s) => s.name === 's1' && s.step === 'update'));
  // the window closes while s1 is in flight: s1 finishes, s2 is not begun
  clock.setTo(w.end + 5 * MIN);
  openGate(fleet, 'update', ['s1']);
  const closed = await running;
  assert.equal(closed.code, 0, closed.stdout + closed.stderr);
  assert.match(closed.stdout, /planned nightly to [0-9a-f]{12}; starting it/);
  assert.match(closed.stdout, /nightly paused \(outside the rollout window .*\)/);
  let doc = await statusJson(db, 'nightly');
  assert.equal(doc.status, 'paused');
  assert.deepEqual([byName(doc).s1!.status, byName(doc).s2!.status], ['success', 'pending']);
  assert.equal(readDeployCount(fleet.home('s2')), 0);

  // still outside: says when it opens, touches nothing
  const outside = await auto();
  assert.equal(outside.code, 0, outside.stdout + outside.stderr);
  assert.match(outside.stdout, /^\S+Z nightly is paused for the rollout window \(every day .* UTC\): it opens .*; the first auto run once it is open resumes it; nothing touched\n$/);

  // the next day, inside it again: resumed to the end
  openGate(fleet, 'update', ['s2']);
  clock.setTo(w.start + 24 * HOUR + 5 * MIN);
  const resumed = await auto();
  assert.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
  assert.match(resumed.stdout, /resuming nightly of .*: paused for its rollout window, which is open now/);
  doc = await statusJson(db, 'nightly');
  assert.equal(doc.status, 'success', doc.reason ?? '');
  assert.equal(readDeployCount(fleet.home('s1')), 1, 's1 was not deployed again');
  assert.equal(readDeployCount(fleet.home('s2')), 1);
  const store = openStore(db);
  try {
    assert.deepEqual((await store.autoRuns()).map((r) => r.outcome), ['started', 'started'], 'an auto outside the window writes nothing');
  } finally {
    await store.close();
  }
});

test('start --wait-for-window: waits (a window-waiting event and line), then rolls out once it opens', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const w = windowAround(2 * HOUR, 3 * HOUR);
  const { db, name } = await planned(fleet, { execution: { window: w.config } });
  // four seconds before it opens
  const clock = new ShiftedClock();
  clock.setTo(w.start - 4_000);
  const r = await inProcess(new Ctx(db, clock, true), (ctx) => runCommand(ctx, 'start', [name], { waitForWindow: true }));
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const waits = events.filter((e) => e.type === 'window-waiting');
  assert.equal(waits.length, 1);
  assert.equal(waits[0]!.opensAt, new Date(w.start).toISOString());
  assert.equal(waits[0]!.window, `every day ${w.config.hours} UTC`);
  assert.ok(Number(waits[0]!.waitMs) > 0 && Number(waits[0]!.waitMs) <= 4_000);
  const types = events.map((e) => e.type);
  assert.ok(types.indexOf('window-waiting') < types.indexOf('server-started'));
  // the first server began once the window was open (`at` is the command's clock)
  assert.ok(Date.parse(String(events.find((e) => e.type === 'server-started')!.at)) >= w.start);
  assert.match(r.stderr, /waiting for the rollout window \(every day .* UTC\): it opens .*, in \d+s; Ctrl-C pauses the update instead/);
  assert.equal((await statusJson(db, name)).status, 'success');
  for (const s of ['s1', 's2']) assert.equal(readDeployCount(fleet.home(s)), 1);
});
