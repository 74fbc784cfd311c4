/**
 * What a person reads after a run (issue 12, items 6 and 7): a rolled-back canary before a pause
 * is said plainly, with what to check and the logs command, instead of a bare "continue with";
 * rollbacks in a row are called out; `-q` prints the one line a script needs. Real CLI, real sshd.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { agentCommands } from '../../src/sim/agent.js';
import { cli, sharedFleet, statusJson } from '../helpers/cli.js';
import { openGate } from '../helpers/gates.js';

const fleetFor = sharedFleet({ servers: 4 });

/** A config whose update step refuses the good commit on the servers with the `refuse` gate open. */
function refusingConfig(fleet: NonNullable<Awaited<ReturnType<typeof fleetFor>>>, name: string, extra: Record<string, unknown> = {}): string {
  const { commits } = fleet.upstream;
  const refuse = `if [ -e ~/gates/refuse ] && [ {commit} = ${commits.good} ]; then echo 'refused by the test' >&2; exit 9; fi`;
  return fleet.writeConfig({ name, agent: { update: [...agentCommands().update, refuse] }, rollback: { continue_after_rollback: true }, ...extra });
}

test('a canary rolled back before a test-mode pause: a warning, what to check, the logs command; not a bare "continue with"', async (t) => {
  const fleet = await fleetFor(t, { servers: 4 });
  if (!fleet) return;
  openGate(fleet, 'refuse', ['s1']);
  const db = join(fleet.root, 'canary.db');
  assert.equal((await cli(['plan', '-c', refusingConfig(fleet, 'c', { test_mode: { stop_after: 1 } })], { db })).code, 0);
  const r = await cli(['start', 'c'], { db });
  assert.equal(r.code, 5, `a pause after a rollback in the run: ${r.stdout}${r.stderr}`);
  assert.match(r.stdout, /warning: the last server before the pause, s1, was rolled back to [0-9a-f]{12}: update command exited 9: refused by the test/);
  assert.match(r.stdout, /check the update command's output on s1 first: agent-update --db \S+ logs c --server s1; resume only once you know why/);
  assert.doesNotMatch(r.stdout, /continue with: agent-update --db \S+ resume c/, 'no bare continue hint');

  // The same in the NDJSON result, for CI.
  const again = await cli(['plan', '-c', refusingConfig(fleet, 'cj', { test_mode: { stop_after: 1 } })], { db });
  assert.equal(again.code, 0, again.stderr);
  const j = await cli(['--json', 'start', 'cj'], { db });
  assert.equal(j.code, 5);
  const result = JSON.parse(j.stdout.trim().split('\n').at(-1)!) as { type: string; warnings?: string[] };
  assert.equal(result.type, 'result');
  assert.match((result.warnings ?? []).join('\n'), /the last server before the pause, s1, was rolled back/);

  // A canary that succeeded: the plain hint, no warning.
  const ok = await cli(['plan', '-c', refusingConfig(fleet, 'fine', { test_mode: { stop_after: 1 }, include: ['s2', 's3'] })], { db });
  assert.equal(ok.code, 0, ok.stderr);
  const fine = await cli(['start', 'fine'], { db });
  assert.equal(fine.code, 3);
  assert.match(fine.stdout, /fine paused \(test mode: 1 server finished\); continue with: agent-update --db \S+ resume fine/);
  assert.doesNotMatch(fine.stdout, /warning/);
});

test('servers rolled back one after another are called out at the end; separated ones are not', async (t) => {
  const fleet = await fleetFor(t, { servers: 4 });
  if (!fleet) return;
  openGate(fleet, 'refuse', ['s2', 's3']);
  const db = join(fleet.root, 'row.db');
  assert.equal((await cli(['plan', '-c', refusingConfig(fleet, 'row')], { db })).code, 0);
  const r = await cli(['start', 'row'], { db });
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /warning: 2 servers in a row were rolled back \(s2, s3\); rollback\.continue_after_rollback went on past each/);
  assert.deepEqual((await statusJson(db, 'row')).counts, { total: 4, success: 2, 'rolled-back': 2 });
});

test('-q: plan prints the name, split the batches, start each outcome, pause and cancel the state; nothing else on stdout', async (t) => {
  const fleet = await fleetFor(t, { servers: 4 });
  if (!fleet) return;
  const db = join(fleet.root, 'q.db');
  const p = await cli(['-q', 'plan', '-c', fleet.writeConfig({ name: 'quiet', test_mode: { stop_after: 1 } })], { db });
  assert.equal(p.code, 0, p.stderr);
  assert.equal(p.stdout, 'quiet');
  const s = await cli(['-q', 'start', 'quiet'], { db });
  assert.equal(s.code, 3);
  assert.match(s.stdout, /^quiet paused \(test mode: 1 server finished\); continue with: agent-update --db \S+ resume quiet$/);
  const split = await cli(['-q', 'split', 'quiet', '--batches', '2'], { db });
  assert.equal(split.code, 0, split.stderr);
  assert.equal(split.stdout, 'quiet quiet.2');
  const pause = await cli(['-q', 'pause', 'quiet.2'], { db });
  assert.equal(pause.code, 0, pause.stderr);
  assert.equal(pause.stdout, 'quiet.2 paused');
  const cancel = await cli(['-q', 'cancel', 'quiet.2'], { db });
  assert.equal(cancel.code, 0, cancel.stderr);
  assert.equal(cancel.stdout, 'quiet.2 cancelled');
  const r = await cli(['-q', 'resume', 'quiet'], { db });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^quiet success: [^\n]+$/);
});
