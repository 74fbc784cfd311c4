/**
 * `agent-update retry NAME` end to end (issue 15, item 3): the real CLI against a real OpenSSH
 * fleet, a server whose agent does not come back at the target until the test "fixes" it (a
 * gate file on that server only).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { currentCommit, readDeployCount } from '../../src/sim/agent.js';
import type { Fleet } from '../fleet/fleet.js';
import { byName, cli, cliStatusJson, sharedFleet, statusJson } from '../helpers/cli.js';
import { openGate } from '../helpers/gates.js';
import { updatesOf } from '../helpers/db.js';

const fleetFor = sharedFleet({ servers: 3, unreachable: 1 });

/**
 * Health fails at `target` on every server whose `fixed` gate is closed (its config is "broken"),
 * and is the agent's own check otherwise: the rollback to the previous commit verifies fine.
 */
function brokenAt(target: string): Record<string, unknown> {
  return {
    agent: {
      health: {
        command: `( [ -e ~/gates/fixed ] || [ "$(git -C ~/agent/repo rev-parse HEAD)" != ${target} ] || { echo 'health: bad local config' >&2; exit 7; } ) && ~/agent/bin/health`,
        timeout: '500ms',
        interval: '100ms',
      },
    },
    rollback: { continue_after_rollback: true },
  };
}


async function planAndStart(fleet: Fleet, overrides: Record<string, unknown>, name: string) {
  const db = join(fleet.root, 'plan.db');
  const p = await cli(['plan', '-c', fleet.writeConfig({ name, ...overrides })], { db });
  assert.equal(p.code, 0, p.stdout + p.stderr);
  const r = await cli(['start', name], { db });
  return { db, r };
}

test('retry after a partial rollout: exactly the rolled-back server, twice in a row, then fixed it succeeds there and nowhere else', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  const { commits } = fleet.upstream;
  openGate(fleet, 'fixed', ['s1', 's3']);
  const { db, r } = await planAndStart(fleet, brokenAt(commits.good), 'a');
  assert.equal(r.code, 1, r.stdout + r.stderr);
  const before = await statusJson(db, 'a');
  assert.equal(before.status, 'partial-success');
  assert.deepEqual(Object.fromEntries(before.servers.map((s) => [s.name, s.status])), { s1: 'success', s2: 'rolled-back', s3: 'success' });

  const retry = await cli(['retry', 'a'], { db });
  assert.equal(retry.code, 0, retry.stdout + retry.stderr);
  assert.match(retry.stdout, /planned update a-retry, a retry of a \(1 server\); run it with: agent-update --db \S+ start a-retry/);
  const doc = await cliStatusJson(db, 'a-retry');
  assert.equal(doc.status, 'pending');
  assert.equal(doc.retryOf, 'a');
  assert.equal(doc.undoOf, null);
  assert.match(doc.createdBy ?? '', /.+@.+/);
  assert.equal(doc.source.commit, before.source.commit, 'the same target');
  assert.deepEqual(doc.servers.map((s) => [s.name, s.status, s.fromCommit]), [['s2', 'pending', commits.base]], 're-probed: back at its previous commit');
  assert.deepEqual(await statusJson(db, 'a'), before, 'the original is not changed');

  // A second retry of a while a-retry is not finished is refused, naming it.
  const twice = await cli(['retry', 'a'], { db });
  assert.equal(twice.code, 2);
  assert.match(twice.stderr, /a already has a retry that is not finished: a-retry \(pending\); start it .* or cancel it first/);
  assert.deepEqual(await updatesOf(db), ['a', 'a-retry']);

  // Not fixed yet: the retry rolls back again; its retry is a-retry-2 (named from the root).
  const run1 = await cli(['start', 'a-retry'], { db });
  assert.equal(run1.code, 1, run1.stdout + run1.stderr);
  assert.equal(byName(await statusJson(db, 'a-retry')).s2!.status, 'rolled-back');
  const again = await cli(['--json', 'retry', 'a-retry'], { db });
  assert.equal(again.code, 0, again.stderr);
  const doc2 = JSON.parse(again.stdout) as { name: string; retryOf: string; servers: Array<{ name: string }> };
  assert.equal(doc2.name, 'a-retry-2');
  assert.equal(doc2.retryOf, 'a-retry');
  assert.deepEqual(doc2.servers.map((s) => s.name), ['s2']);

  // Fixed: the retry succeeds on exactly that server.
  openGate(fleet, 'fixed', ['s2']);
  const deploys = { s1: readDeployCount(fleet.home('s1')), s3: readDeployCount(fleet.home('s3')) };
  const run2 = await cli(['start', 'a-retry-2'], { db });
  assert.equal(run2.code, 0, run2.stdout + run2.stderr);
  const done = await statusJson(db, 'a-retry-2');
  assert.equal(done.status, 'success');
  assert.deepEqual(done.servers.map((s) => [s.name, s.status]), [['s2', 'success']]);
  assert.equal(currentCommit(fleet.home('s2')), commits.good);
  assert.deepEqual({ s1: readDeployCount(fleet.home('s1')), s3: readDeployCount(fleet.home('s3')) }, deploys, 'the others were not touched');

  // Nothing left to retry: exit 0, nothing written.
  const none = await cli(['retry', 'a-retry-2'], { db });
  assert.equal(none.code, 0, none.stderr);
  assert.match(none.stdout, /nothing to retry in a-retry-2: no server of it ended rolled-back, failed or unreachable; nothing was written/);
  assert.deepEqual(await updatesOf(db), ['a', 'a-retry', 'a-retry-2']);
});

test('retry takes unreachable servers, leaves fatal ones out unless --include-fatal (and says why), and refuses a pending update', async (t) => {
  const fleet = await fleetFor(t, { servers: 2, unreachable: 1 });
  if (!fleet) return;
  const { commits } = fleet.upstream;
  // The rollback goes to a commit that never comes online either: s1 ends fatal and stops the rollout.
  const { db, r } = await planAndStart(
    fleet,
    { source: { branch: 'broken' }, agent: { health: { timeout: '500ms', interval: '100ms' } }, rollback: { commit: commits.broken, continue_after_rollback: true } },
    'f',
  );
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.deepEqual(Object.fromEntries((await statusJson(db, 'f')).servers.map((s) => [s.name, s.status])), { s1: 'fatal', s2: 'pending', u1: 'unreachable' });

  const plain = await cli(['retry', 'f'], { db });
  assert.equal(plain.code, 0, plain.stderr);
  assert.match(plain.stderr, /note: 1 fatal server left out: s1\. Its rollback failed too, so a person must look at it .*then retry with --include-fatal/);
  assert.match(plain.stderr, /note: 1 server of f never ran \(still pending, not retried\): s2/);
  const doc = await statusJson(db, 'f-retry');
  assert.deepEqual(doc.servers.map((s) => [s.name, s.status]), [['u1', 'unreachable']], 'only the unreachable one, probed again');
  assert.equal((await cli(['cancel', 'f-retry'], { db })).code, 0);

  const withFatal = await cli(['retry', 'f', '--include-fatal', '--name', 'f-fatal'], { db });
  assert.equal(withFatal.code, 0, withFatal.stderr);
  const fatal = await statusJson(db, 'f-fatal');
  assert.equal(fatal.retryOf, 'f');
  // s1 is at the broken commit (its rollback target), which is the target: re-probed, it is skipped.
  assert.deepEqual(fatal.servers.map((s) => [s.name, s.status]), [['s1', 'skipped'], ['u1', 'unreachable']]);

  // A pending update has nothing to retry yet: refused, naming what to do.
  const p = await cli(['plan', '-c', fleet.writeConfig({ name: 'p' })], { db });
  assert.equal(p.code, 0, p.stderr);
  const pending = await cli(['retry', 'p'], { db });
  assert.equal(pending.code, 2);
  assert.match(pending.stderr, /cannot retry p: it is pending, nothing ran yet/);
  const unknown = await cli(['retry', 'nope'], { db });
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /no update named "nope"/);
  const badName = await cli(['retry', 'f', '--include-fatal', '--name', 'bad name'], { db });
  assert.equal(badName.code, 2);
  assert.deepEqual(await updatesOf(db), ['f', 'f-retry', 'f-fatal', 'p']);
});

test('retry of a batch while a retry of its split is unfinished is refused: both would take the same servers', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  const { commits } = fleet.upstream;
  const db = join(fleet.root, 'plan.db');
  const p = await cli(['plan', '-c', fleet.writeConfig({ name: 'sp', include: ['s1', 's2'], ...brokenAt(commits.good) })], { db });
  assert.equal(p.code, 0, p.stdout + p.stderr);
  assert.equal((await cli(['split', 'sp', '--batches', '2'], { db })).code, 0);
  const r = await cli(['start', 'sp', 'sp.2'], { db });
  assert.equal(r.code, 1, r.stdout + r.stderr);
  // another pending plan of s1: the retry warns that they overlap, as plan does
  assert.equal((await cli(['plan', '-c', fleet.writeConfig({ name: 'hold', include: ['s1'] })], { db })).code, 0);
  const whole = await cli(['retry', 'sp'], { db });
  assert.equal(whole.code, 0, whole.stdout + whole.stderr);
  assert.match(whole.stderr, /warning: 1 of this plan's servers is also in update hold \(pending\), not finished: s1/);
  assert.deepEqual((await statusJson(db, 'sp-retry')).servers.map((s) => s.name), ['s1', 's2'], 'the retry of the split takes the batch’s server too');
  const batch = await cli(['retry', 'sp.2'], { db });
  assert.equal(batch.code, 2, batch.stdout + batch.stderr);
  assert.match(batch.stderr, /sp \(of the same split as sp\.2\) already has a retry that is not finished: sp-retry \(pending\)/);
});
