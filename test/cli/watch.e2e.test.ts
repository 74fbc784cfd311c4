/**
 * `status NAME --watch` ends with the update's outcome as its exit code, as `kubectl rollout
 * status` does, so CI can gate on a rollout another process runs: 0 success, 1 failure or
 * partial-success, 3 a clean pause, 5 a pause after a server of that run failed or was rolled
 * back; and its view has the live view's `k/N done · f failed · ETA` line (issue 25). Without
 * --watch, `status` stays 0 (shown). Real CLI, real sshd.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { agentCommands } from '../../src/sim/agent.js';
import { cli, printed, sharedFleet, spawnCli } from '../helpers/cli.js';
import { heldInVerify, openGate } from '../helpers/gates.js';
import type { Fleet } from '../fleet/fleet.js';

const fleetFor = sharedFleet({ servers: 3 });

/** A config whose update step refuses the good commit on the servers with the `refuse` gate open. */
function refusingConfig(fleet: Fleet, name: string, extra: Record<string, unknown> = {}): string {
  const { commits } = fleet.upstream;
  const refuse = `if [ -e ~/gates/refuse ] && [ {commit} = ${commits.good} ]; then echo 'refused by the test' >&2; exit 9; fi`;
  return fleet.writeConfig({ name, agent: { update: [...agentCommands().update, refuse] }, ...extra });
}

test('a watch started while the rollout runs shows k/N done · ETA, and exits 0 when it ends success', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  const db = join(fleet.root, 'ok.db');
  assert.equal((await cli(['plan', '-c', fleet.writeConfig({ name: 'ok', ...heldInVerify() })], { db })).code, 0);
  const run = spawnCli(['start', 'ok'], { db });
  await printed(run, 'stdout', /s1: waiting for health/);
  const watch = spawnCli(['status', 'ok', '--watch', '--interval', '1'], { db });
  await printed(watch, 'stdout', /^ {2}0\/3 done · 0 failed$/m);
  // s1 passes, s2 is held in verify: one server's time gives an ETA for the two left
  openGate(fleet, 'online', ['s1']);
  await printed(watch, 'stdout', /^ {2}1\/3 done · 0 failed · ETA \d+(m\d+)?s$/m);
  openGate(fleet, 'online');
  assert.equal((await run).exitCode, 0);
  const w = await watch;
  assert.equal(w.exitCode, 0, String(w.stdout) + String(w.stderr));
  assert.match(String(w.stdout).trimEnd(), /^ {2}3\/3 done · 0 failed$/m, 'the last frame, without an ETA');
});

test('a watch exits 1 for a failed update (text and --json), while plain status stays 0', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  openGate(fleet, 'refuse', ['s1']);
  const db = join(fleet.root, 'bad.db');
  assert.equal((await cli(['plan', '-c', refusingConfig(fleet, 'bad')], { db })).code, 0);
  assert.equal((await cli(['start', 'bad'], { db })).code, 1);
  const w = await cli(['status', 'bad', '--watch'], { db });
  assert.equal(w.code, 1, w.stdout + w.stderr);
  assert.match(w.stdout, /^ {2}1\/3 done · 1 failed$/m);
  assert.equal((await cli(['--json', 'status', 'bad', '--watch'], { db })).code, 1);
  assert.equal((await cli(['status', 'bad'], { db })).code, 0, 'without --watch: shown');
});

test('a watch of a paused update exits 3 after a clean pause, 5 after a pause whose run rolled a server back', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  openGate(fleet, 'refuse', ['s1']);
  const db = join(fleet.root, 'paused.db');
  assert.equal((await cli(['plan', '-c', refusingConfig(fleet, 'p', { rollback: { continue_after_rollback: true } })], { db })).code, 0);
  assert.equal((await cli(['start', 'p', '--stop-after', '1'], { db })).code, 5);
  const bad = await cli(['status', 'p', '--watch'], { db });
  assert.equal(bad.code, 5, bad.stdout + bad.stderr);
  // the next run goes well: its pause is clean, whatever the run before did
  assert.equal((await cli(['resume', 'p', '--stop-after', '1'], { db })).code, 3);
  const clean = await cli(['status', 'p', '--watch'], { db });
  assert.equal(clean.code, 3, clean.stdout + clean.stderr);
  assert.equal((await cli(['--json', 'status', 'p', '--watch'], { db })).code, 3);
});
