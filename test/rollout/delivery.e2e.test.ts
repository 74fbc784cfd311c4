/**
 * Progressive delivery on the real sshd fleet (issue 24): steps with a bake, a server of a step
 * whose agent dies while it bakes, the guard over servers that passed, a kill -9 during a bake
 * and the takeover that goes on with the bake time left, a pause during a bake. Every run is the
 * real CLI; waits are on the NDJSON stream, the database or the servers' own files, never sleeps.
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { cli, planned, printed, sharedFleet, spawnCli } from '../helpers/cli.js';
import { until, withStore } from '../helpers/db.js';
import { openGate } from '../helpers/gates.js';
import { readDeployCount } from '../../src/sim/agent.js';
import type { Fleet } from '../fleet/fleet.js';

const fleetFor = sharedFleet({ servers: 6 });

/** health checks logged with their time (ms) in the server's own ~/health.log */
const LOGGED_HEALTH = 'echo "$(date +%s%3N)" >> ~/health.log; ~/agent/bin/health';

function events(stdout: string): Array<Record<string, unknown>> {
  return stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** When the server's `web` restarts happened (its own restarts.log), in ms. */
function restarts(fleet: Fleet, server: string): number[] {
  return readFileSync(join(fleet.home(server), 'agent', 'restarts.log'), 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('web '))
    .map((l) => Number(l.split(' ')[1]));
}

function healthLog(fleet: Fleet, server: string): number[] {
  try {
    return readFileSync(join(fleet.home(server), 'health.log'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** The agent of `server` stops answering its health check (as a crash would leave it). */
function killAgent(fleet: Fleet, server: string): void {
  rmSync(join(fleet.home(server), 'agent', 'run', 'web.state'), { force: true });
}

test('steps [1, "50%", "100%"] on six servers bake between steps: the servers’ own logs show the waits', async (t) => {
  const fleet = await fleetFor(t, { servers: 6 });
  if (!fleet) return;
  const bakeMs = 1500;
  const { db, name } = await planned(fleet, {
    agent: { health: { command: LOGGED_HEALTH, interval: '200ms' } },
    execution: { steps: [1, '50%', '100%'], bake: `${bakeMs}ms`, guard: false },
  });
  const r = await cli(['start', name, '--json'], { db, timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const ev = events(r.stdout);
  const kinds = ev.filter((e) => /^(step|bake)-/.test(String(e.type))).map((e) => `${String(e.type)} ${String(e.step)}${e.type === 'bake-ended' ? ` ${String(e.outcome)}` : ''}`);
  assert.deepEqual(
    kinds.filter((k) => !k.startsWith('bake-check')),
    ['step-started 1', 'bake-started 1', 'bake-ended 1 healthy', 'step-promoted 1', 'step-started 2', 'bake-started 2', 'bake-ended 2 healthy', 'step-promoted 2', 'step-started 3'],
  );
  // s1 alone, then s2 s3, then the rest; each step's first restart at least the bake after the last one before it
  const first = (s: string) => restarts(fleet, s).at(-1)!;
  assert.ok(first('s2') - first('s1') >= bakeMs, `s2 restarted ${first('s2') - first('s1')} ms after s1`);
  assert.ok(first('s4') - first('s3') >= bakeMs, `s4 restarted ${first('s4') - first('s3')} ms after s3`);
  assert.ok(first('s3') - first('s2') < bakeMs, 'within a step, no bake');
  // the bake re-checked s1 on s1 itself, through its whole bake, and s1 only in step 1's
  const s1Checks = healthLog(fleet, 's1').filter((at) => at > first('s1') && at < first('s2'));
  assert.ok(s1Checks.length >= 5, `s1 was re-checked ${s1Checks.length} times while it baked`);
  assert.ok(s1Checks.at(-1)! - s1Checks[0]! >= bakeMs - 400, `its checks span ${s1Checks.at(-1)! - s1Checks[0]!} ms`);
  assert.equal(healthLog(fleet, 's5').filter((at) => at < first('s4')).length, 0, 'a later step’s server is not checked before its turn');
  const doc = JSON.parse((await cli(['status', name, '--json'], { db })).stdout) as { status: string };
  assert.equal(doc.status, 'success');
});

test('a server of step 1 whose agent dies during the bake stops the rollout before step 2, and is rolled back when guard.rollback asks', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  for (const rollback of [false, true]) {
    await fleet.reset();
    const { db, name } = await planned(
      fleet,
      {
        agent: { health: { interval: '200ms' } },
        execution: { steps: [1, '100%'], bake: '60s', guard: { rollback } },
      },
      `bake-${rollback}`,
      join(fleet.root, `bake-${rollback}.db`),
    );
    const run = spawnCli(['start', name, '--json'], { db, timeoutMs: 120_000 });
    await printed(run, 'stdout', /"type":"bake-started"/);
    killAgent(fleet, 's1');
    const r = await run;
    assert.equal(r.exitCode, 5, `paused after s1 failed its bake: ${String(r.stdout)}${String(r.stderr)}`);
    const ev = events(String(r.stdout));
    const tripped = ev.find((e) => e.type === 'guard-tripped');
    assert.equal(tripped?.server, 's1');
    assert.equal(tripped?.source, 'bake');
    const status = JSON.parse((await cli(['status', name, '--json'], { db })).stdout) as { status: string; reason: string; servers: Array<{ name: string; status: string }> };
    assert.equal(status.status, 'paused');
    assert.match(status.reason, /bake: s1 turned unhealthy after it passed verify/);
    assert.equal(status.servers[0]!.status, rollback ? 'rolled-back' : 'failed');
    assert.equal(readDeployCount(fleet.home('s2')), 0, 'step 2 never began');
    if (rollback) assert.equal(status.servers[0]!.status, 'rolled-back');
  }
});

test('the guard: a server that dies after it passed, while later ones roll, pauses the update with its name', async (t) => {
  const fleet = await fleetFor(t, { servers: 4 });
  if (!fleet) return;
  // s3 (which has ~/hold) is held in verify until the test opens its gate; the guard re-checks s1 and s2 meanwhile
  const { db, name } = await planned(fleet, {
    agent: { health: { command: '{ [ ! -e ~/hold ] || [ -e ~/gates/online ] || { echo starting >&2; exit 7; }; } && ~/agent/bin/health', interval: '100ms', timeout: '60s' } },
    execution: { guard: { interval: '300ms' } },
  });
  await fleet.sh('s3', 'touch ~/hold');
  const run = spawnCli(['start', name, '--json'], { db, timeoutMs: 120_000 });
  await printed(run, 'stdout', /"type":"server-started"[^\n]*"server":"s3"/);
  killAgent(fleet, 's1');
  // the guard's round finds it while s3 is still in flight
  await printed(run, 'stdout', /"type":"guard-check"[^\n]*"unhealthy":\["s1"\]/);
  openGate(fleet, 'online', ['s3']);
  const r = await run;
  assert.equal(r.exitCode, 5, `paused after the guard found s1 unhealthy: ${String(r.stdout)}${String(r.stderr)}`);
  const status = JSON.parse((await cli(['status', name, '--json'], { db })).stdout) as { status: string; reason: string; servers: Array<{ name: string; status: string }> };
  assert.equal(status.status, 'paused');
  assert.match(status.reason, /guard: s1 turned unhealthy after it passed verify/);
  assert.deepEqual(status.servers.map((s) => s.status), ['failed', 'success', 'success', 'pending'], 's3 in flight finished; s4 was not started');
  assert.equal(readDeployCount(fleet.home('s4')), 0);
});

test('kill -9 during a bake: the next start goes on with the bake time left, neither from zero nor skipping it', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const bakeMs = 8000;
  const { db, name } = await planned(fleet, {
    agent: { health: { interval: '250ms' } },
    execution: { steps: [1, '100%'], bake: `${bakeMs}ms`, guard: false },
  });
  const run = spawnCli(['start', name, '--json'], { db, timeoutMs: 120_000 });
  await printed(run, 'stdout', /"type":"bake-started"/);
  // a few rounds of the bake go by, recorded
  const left = await until('the bake recorded some progress', () =>
    withStore(db, async (s) => {
      const u = await s.getUpdate(name);
      return u.bake && u.bake.leftMs <= bakeMs - 2000 ? u.bake.leftMs : false;
    }),
  );
  run.kill('SIGKILL');
  await run.catch(() => undefined);
  const began = Date.now();
  const r = await cli(['start', name, '--json'], { db, timeoutMs: 120_000 });
  const took = Date.now() - began;
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const ev = events(r.stdout);
  const bake = ev.find((e) => e.type === 'bake-started');
  assert.ok(bake, r.stdout);
  const resumedAt = bake.leftMs as number;
  assert.ok(resumedAt <= left && resumedAt > 0, `the takeover baked ${resumedAt} ms; ${left} were left at the kill`);
  assert.ok(resumedAt < bakeMs, 'not restarted from zero');
  assert.ok(took >= resumedAt - 500, `the takeover took ${took} ms for a bake of ${resumedAt} left: not skipped`);
  assert.equal(readDeployCount(fleet.home('s1')), 1, 's1 not touched again');
  assert.equal(readDeployCount(fleet.home('s2')), 1);
});

test('pause during a bake keeps the time left; resume bakes only the rest', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const bakeMs = 6000;
  const { db, name } = await planned(fleet, {
    agent: { health: { interval: '200ms' } },
    execution: { steps: [1, '100%'], bake: `${bakeMs}ms`, guard: false },
  });
  const run = spawnCli(['start', name, '--json'], { db, timeoutMs: 120_000 });
  await printed(run, 'stdout', /"type":"bake-check"/);
  assert.equal((await cli(['pause', name], { db })).code, 0);
  const r = await run;
  assert.equal(r.exitCode, 3, String(r.stderr));
  const paused = await withStore(db, (s) => s.getUpdate(name));
  assert.match(paused.reason ?? '', /pause requested .* while step 1 of 2 \(1 of 2 servers\) baked \(.* of the bake left\)/);
  const left = paused.bake!.leftMs;
  assert.ok(left > 0 && left < bakeMs, String(left));
  const resumed = await cli(['resume', name, '--json'], { db, timeoutMs: 120_000 });
  assert.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
  const bake = events(resumed.stdout).find((e) => e.type === 'bake-started');
  assert.ok(bake && (bake.leftMs as number) <= left, resumed.stdout);
});
