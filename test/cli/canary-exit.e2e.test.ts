/**
 * A failed canary does not exit like a good one (issue 25): with rollback.continue_after_rollback,
 * a test-mode pause after a server of the same run was rolled back exits 5, not the 3 of a clean
 * pause that a CI step (`[ $? = 3 ] && resume`) may go on from; the NDJSON result line says which
 * servers (`failedInRun`). A later run that goes well pauses with 3 again. Real CLI, real sshd.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { agentCommands } from '../../src/sim/agent.js';
import { cli, sharedFleet } from '../helpers/cli.js';
import { openGate } from '../helpers/gates.js';
import type { Fleet } from '../fleet/fleet.js';

const fleetFor = sharedFleet({ servers: 4 });

/** A config whose update step refuses the good commit on the servers with the `refuse` gate open; rollbacks do not stop it. */
function refusingConfig(fleet: Fleet, name: string, extra: Record<string, unknown> = {}): string {
  const { commits } = fleet.upstream;
  const refuse = `if [ -e ~/gates/refuse ] && [ {commit} = ${commits.good} ]; then echo 'refused by the test' >&2; exit 9; fi`;
  return fleet.writeConfig({ name, agent: { update: [...agentCommands().update, refuse] }, rollback: { continue_after_rollback: true }, ...extra });
}

interface Result {
  type: string;
  exitCode: number;
  status: string;
  failedInRun?: Array<{ update: string; server: string; status: string }>;
}

function resultLine(stdout: string): Result {
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as Result;
}

test('start --stop-after 1 whose canary was rolled back exits 5 and says why; a healthy canary exits 3; the same in the NDJSON result', async (t) => {
  const fleet = await fleetFor(t, { servers: 4 });
  if (!fleet) return;
  openGate(fleet, 'refuse', ['s1']);
  const db = join(fleet.root, 'canary.db');
  assert.equal((await cli(['plan', '-c', refusingConfig(fleet, 'bad')], { db })).code, 0);
  const bad = await cli(['start', 'bad', '--stop-after', '1'], { db });
  assert.equal(bad.code, 5, bad.stdout + bad.stderr);
  assert.match(bad.stdout, /bad paused \(test mode: 1 server finished\)/);
  assert.match(bad.stdout, /^bad paused after a failure in this run \(s1 rolled-back\): exit 5, not the 3 of a clean pause$/m);

  assert.equal((await cli(['plan', '-c', refusingConfig(fleet, 'badj')], { db })).code, 0);
  const j = await cli(['--json', 'start', 'badj', '--stop-after', '1'], { db });
  assert.equal(j.code, 5, j.stderr);
  const r = resultLine(j.stdout);
  assert.equal(r.type, 'result');
  assert.equal(r.exitCode, 5);
  assert.equal(r.status, 'paused');
  assert.deepEqual(r.failedInRun, [{ update: 'badj', server: 's1', status: 'rolled-back' }]);

  // a canary that went well: the clean pause, 3, and no failedInRun
  assert.equal((await cli(['plan', '-c', refusingConfig(fleet, 'good', { include: ['s2', 's3'] })], { db })).code, 0);
  const good = await cli(['--json', 'start', 'good', '--stop-after', '1'], { db });
  assert.equal(good.code, 3, good.stderr);
  assert.equal(resultLine(good.stdout).exitCode, 3);
  assert.equal(resultLine(good.stdout).failedInRun, undefined);
});

test('a failure earlier in the run than the pause is exit 5 too; the next run that goes well pauses with 3', async (t) => {
  const fleet = await fleetFor(t, { servers: 4 });
  if (!fleet) return;
  openGate(fleet, 'refuse', ['s1']);
  const db = join(fleet.root, 'earlier.db');
  assert.equal((await cli(['plan', '-c', refusingConfig(fleet, 'e')], { db })).code, 0);
  // s1 rolled back, s2 success: the pause follows a good server, but this run had a failure
  const first = await cli(['start', 'e', '--stop-after', '2'], { db });
  assert.equal(first.code, 5, first.stdout + first.stderr);
  assert.match(first.stdout, /e paused after a failure in this run \(s1 rolled-back\)/);
  // s3 success: s1 was the earlier run's (its exit said so); this pause is clean
  const second = await cli(['resume', 'e', '--stop-after', '1'], { db });
  assert.equal(second.code, 3, second.stdout + second.stderr);
  assert.doesNotMatch(second.stdout, /failure in this run/);
});
