/**
 * Progressive delivery seen from the CLI (issue 24, part 6) on the real sshd fleet: `plan` prints
 * the steps the update will take (which servers fall in which step) and the guard,
 * `plan --show-commands NAME` the guard's re-check as it will be sent, and `status NAME` during a
 * bake shows the step, the bake's time left and the guard's last round (text and JSON), then the
 * time a `pause` kept. Waits are on the NDJSON stream and the database, never sleeps.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { cli, printed, sharedFleet, spawnCli, type StatusDoc } from '../helpers/cli.js';
import { until, withStore } from '../helpers/db.js';

const fleetFor = sharedFleet({ servers: 4 });

test('plan prints the step split and the guard; status during a bake shows the step, the bake left and the guard’s last round', async (t) => {
  const fleet = await fleetFor(t, { servers: 4 });
  if (!fleet) return;
  const db = join(fleet.root, 'views.db');
  const config = fleet.writeConfig({
    name: 'views',
    agent: { health: { interval: '200ms' } },
    execution: { steps: [1, { servers: '50%', pause_after: true }, '100%'], bake: '10m', guard: { interval: '300ms' } },
  });
  const plan = await cli(['plan', '-c', config], { db });
  assert.equal(plan.code, 0, plan.stdout + plan.stderr);
  assert.match(plan.stdout, /^ {2}steps {4}3 steps over 4 servers \(execution\.steps\), in the order they will be taken:$/m);
  assert.match(plan.stdout, /^ {11}step 1 \(up to 1 of 4\) {2}s1 {6}then bakes 10m \(its servers re-checked every 200ms\)$/m);
  assert.match(plan.stdout, /^ {11}step 2 \(up to 2 of 4\) {2}s2 {6}then bakes 10m \(its servers re-checked every 200ms\), then waits for resume \(pause_after\)$/m);
  assert.match(plan.stdout, /^ {11}step 3 \(up to 4 of 4\) {2}s3, s4 {2}the last: the update ends with it$/m);
  assert.match(plan.stdout, /^ {2}guard {4}while the update runs, every server that passed is re-checked with the health command every 300ms; /m);
  const json = JSON.parse((await cli(['status', 'views', '--json'], { db })).stdout) as StatusDoc;
  assert.deepEqual(json.steps?.plan.map((p) => p.servers), [['s1'], ['s2'], ['s3', 's4']]);
  assert.deepEqual([json.bake, json.guard], [null, null]);

  // the guard's command, as the guard will send it
  const shown = await cli(['plan', '--show-commands', 'views'], { db });
  assert.equal(shown.code, 0, shown.stdout + shown.stderr);
  assert.match(shown.stdout, /^the health re-check of a server that passed \(the guard, every 300ms; a step's bake, every 200ms while it bakes\), for all 4 servers: s1, s2, s3, s4$/m);
  assert.match(shown.stdout, /^ {2}health re-check {2}~\/agent\/bin\/health {4}# its output must contain "[0-9a-f]{40}"/m);

  const run = spawnCli(['start', 'views', '--json'], { db, timeoutMs: 120_000 });
  await printed(run, 'stdout', /"type":"bake-started"/);
  // a round of the guard over s1 has been recorded
  await until('a guard round recorded', () => withStore(db, async (s) => (await s.getUpdate('views')).guard !== null));
  const status = await cli(['status', 'views'], { db });
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /^ {2}steps {4}step 1 of 3 \(up to 1 of 4 servers\), 1 done; the steps end at 1, 2, 4$/m);
  const left = /^ {11}baking step 1: (?:9m\d\ds|10m) left \(of 10m\)$/m.exec(status.stdout);
  assert.ok(left, status.stdout);
  assert.match(status.stdout, /^ {2}guard {4}last round \d\d:\d\d:\d\dZ \(\d+s ago\): 1 of 1 healthy; every 300ms, rollback off$/m);
  const during = JSON.parse((await cli(['status', 'views', '--json'], { db })).stdout) as StatusDoc;
  assert.equal(during.steps?.current, 1);
  assert.equal(during.steps?.done, 1);
  assert.equal(during.bake?.step, 1);
  assert.ok(during.bake!.leftMs > 0 && during.bake!.leftMs <= 600_000, String(during.bake?.leftMs));
  assert.match(during.guard?.summary ?? '', /^1 of 1 healthy$/);

  // a pause during the bake keeps its time; status says so
  assert.equal((await cli(['pause', 'views'], { db })).code, 0);
  const r = await run;
  assert.equal(r.exitCode, 3, String(r.stdout) + String(r.stderr));
  const paused = await cli(['status', 'views'], { db });
  assert.match(paused.stdout, /^ {11}step 1's bake paused with (?:9m\d\ds|10m) left \(of 10m\): resume bakes the rest$/m);
  assert.match(paused.stdout, /^ {2}steps {4}step 1 of 3 \(up to 1 of 4 servers\)/m);
});

test('a server of step 1 dies while it bakes: the plain lines say the step, the bake and the trip; the warning says it passed and then failed its re-check', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const db = join(fleet.root, 'trip.db');
  const config = fleet.writeConfig({ name: 'trip', agent: { health: { interval: '200ms' } }, execution: { steps: [1, '100%'], bake: '60s', guard: false } });
  assert.equal((await cli(['plan', '-c', config], { db })).code, 0);
  const run = spawnCli(['start', 'trip'], { db, timeoutMs: 120_000 });
  await printed(run, 'stdout', /step 1 of 2 done: baking 1m, re-checking s1 every 200ms/);
  // the agent of s1 stops answering its health check, as a crash would leave it
  rmSync(join(fleet.home('s1'), 'agent', 'run', 'web.state'), { force: true });
  const r = await run;
  assert.equal(r.exitCode, 5, `paused after s1 failed its bake: ${String(r.stdout)}${String(r.stderr)}`);
  const out = String(r.stdout);
  assert.match(out, /Z step 1 of 2 begins: up to 1 of 2 servers$/m);
  assert.match(out, /Z bake tripped: s1 turned unhealthy after it passed verify \(its step's bake re-checked it\): .*; counted as failed, left as it is \(guard\.rollback is off\)$/m);
  assert.match(out, /Z warning: s1 passed verify and later failed its health re-check \(its step's bake's\): .*; it is counted as failed and left as it is, at the new commit \(guard\.rollback is off\)$/m);
  assert.match(out, /Z check the agent's own log on s1 first .*: agent-update --db \S+ logs trip --server s1$/m);
  assert.match(out, /Z then: `agent-update --db \S+ resume trip` ends the update as failure at once, nothing more runs/m);
  assert.doesNotMatch(out, /did not come online|the last server before the pause/);
  const status = await cli(['status', 'trip'], { db });
  assert.match(status.stdout, /^ {2}steps {4}step 1 of 2 \(up to 1 of 2 servers\), 1 done; the steps end at 1, 2$/m);
  assert.doesNotMatch(status.stdout, /baking/, 'the trip ended the bake');
});
