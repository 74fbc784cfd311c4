/**
 * Agent versions (issue 14, items 1–3) on the real sshd fleet, its agents at three versions and
 * one whose version is unreadable: the probe reads commit and version in one command, `plan`
 * classes and counts, `--only` leaves the other classes out, an unreadable version is
 * `excluded` and never touched by `start`, a target above max_compatible is refused before
 * anything is written, and an update of success + excluded servers ends `success`.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { currentCommit, readDeployCount, SEMVER_COMMAND } from '../../src/sim/agent.js';
import { atVersions, VERSIONED, type Fleet } from '../fleet/fleet.js';
import { byName, cli, cliStatusJson, sharedFleet, statusJson } from '../helpers/cli.js';
import { gateOpen, openGate } from '../helpers/gates.js';
import { openStore } from '../helpers/db.js';

const fleetFor = sharedFleet({ servers: 4, upstream: VERSIONED });

/** s1 1.0.0 (required), s2 1.2.0 (recommended), s3 1.3.0 (current, at the target), s4 at base (VERSION "base": unreadable). */
async function threeVersions(fleet: Fleet): Promise<void> {
  await atVersions(fleet, { s1: '1.0.0', s2: '1.2.0', s3: '1.3.0' });
}

function versioned(fleet: Fleet, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    source: { branch: 'v1.3.0', version: '1.3.0', min_compatible: '1.1.0', max_compatible: '2.0.0' },
    agent: { semver_command: SEMVER_COMMAND },
    ...over,
  };
}

test('plan reads each version in the one probe command, classes and counts them; an unreadable version is excluded with its output', async (t) => {
  const fleet = await fleetFor(t, { servers: 4, upstream: VERSIONED });
  if (!fleet) return;
  await threeVersions(fleet);
  const db = join(fleet.root, 'plan.db');
  const r = await cli(['plan', '-c', fleet.writeConfig({ name: 'v1', ...versioned(fleet) })], { db });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /versions target 1\.3\.0, min_compatible 1\.1\.0, max_compatible 2\.0\.0: 1 required, 1 recommended, 1 current/);
  assert.match(r.stdout, /VERSION/);
  assert.match(r.stdout, /s1 .* 1\.0\.0 required .* pending/);
  assert.match(r.stdout, /s2 .* 1\.2\.0 recommended .* pending/);
  assert.match(r.stdout, /s3 .* 1\.3\.0 current .* skipped/);
  assert.match(r.stdout, /s4 .* excluded .*version unreadable: semver_command printed "base", not a version/);

  const doc = await cliStatusJson(db, 'v1');
  const s = byName(doc);
  assert.deepEqual(
    Object.fromEntries(doc.servers.map((x) => [x.name, [x.status, x.agentVersion, x.versionClass]])),
    { s1: ['pending', '1.0.0', 'required'], s2: ['pending', '1.2.0', 'recommended'], s3: ['skipped', '1.3.0', 'current'], s4: ['excluded', null, null] },
  );
  assert.match(s.s4!.error!, /printed "base"/);
  assert.deepEqual(doc.versions, { target: '1.3.0', minCompatible: '1.1.0', maxCompatible: '2.0.0', only: null, leftOut: [], minVersion: null, steppingStones: [], classes: { required: 1, recommended: 1, current: 1 } });
  assert.equal(doc.counts.excluded, 1);

  // one round trip per server: one probe step, whose one output holds both the commit and the version
  const store = openStore(db);
  try {
    for (const [name, version] of [['s1', '1.0.0'], ['s2', '1.2.0'], ['s3', '1.3.0'], ['s4', 'base']] as const) {
      const steps = await store.getJournal('v1', name);
      assert.deepEqual(steps.map((x) => x.phase), ['probe'], name);
      assert.ok(steps[0]!.stdout!.includes(currentCommit(fleet.home(name))), name);
      assert.ok(steps[0]!.stdout!.split('\n').includes(version), `${name}: ${steps[0]!.stdout}`);
      assert.ok(steps[0]!.command.includes(SEMVER_COMMAND));
    }
  } finally {
    await store.close();
  }

  // the status table shows them too
  const st = await cli(['status', 'v1'], { db });
  assert.equal(st.code, 0, st.stderr);
  assert.match(st.stdout, /s1 .* 1\.0\.0 required/);
});

test('start updates the required and recommended servers, never touches the excluded one, and ends success', async (t) => {
  const fleet = await fleetFor(t, { servers: 4, upstream: VERSIONED });
  if (!fleet) return;
  await threeVersions(fleet);
  const db = join(fleet.root, 'plan.db');
  const p = await cli(['plan', '-c', fleet.writeConfig({ name: 'v2', ...versioned(fleet) })], { db });
  assert.equal(p.code, 0, p.stdout + p.stderr);
  const r = await cli(['start', 'v2'], { db });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const doc = await statusJson(db, 'v2');
  assert.equal(doc.status, 'success');
  assert.equal(doc.reason, 'all 3 servers at the target; 1 server excluded, never touched: s4');
  assert.deepEqual(doc.counts, { total: 4, success: 2, skipped: 1, excluded: 1 });
  const target = fleet.upstream.versions['1.3.0']!;
  for (const name of ['s1', 's2', 's3']) assert.equal(currentCommit(fleet.home(name)), target, name);
  assert.equal(readDeployCount(fleet.home('s3')), 0);
  // s4: still at base, no deploy, and nothing but the probe in its journal
  assert.equal(currentCommit(fleet.home('s4')), fleet.upstream.commits.base);
  assert.equal(readDeployCount(fleet.home('s4')), 0);
  const store = openStore(db);
  try {
    assert.deepEqual((await store.getJournal('v2', 's4')).map((x) => x.phase), ['probe']);
    assert.ok((await store.getJournal('v2', 's1')).some((x) => x.phase === 'update'));
  } finally {
    await store.close();
  }
});

test('plan --only required plans just the required servers (and the one whose class is unknown); the others are left out', async (t) => {
  const fleet = await fleetFor(t, { servers: 4, upstream: VERSIONED });
  if (!fleet) return;
  await threeVersions(fleet);
  const db = join(fleet.root, 'plan.db');
  const r = await cli(['plan', '--only', 'required', '-c', fleet.writeConfig({ name: 'req', ...versioned(fleet) })], { db });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /left out 2 servers not required \(plan --only required\): s2, s3/);
  const doc = await statusJson(db, 'req');
  assert.deepEqual(doc.servers.map((s) => [s.name, s.status]), [['s1', 'pending'], ['s4', 'excluded']]);
  assert.deepEqual(doc.versions?.leftOut, ['s2', 's3']);
  assert.equal(doc.versions?.only, 'required');
  assert.deepEqual(doc.counts, { total: 2, pending: 1, excluded: 1 });
  const s = await cli(['start', 'req'], { db });
  assert.equal(s.code, 0, s.stdout + s.stderr);
  assert.equal(currentCommit(fleet.home('s1')), fleet.upstream.versions['1.3.0']);
  assert.equal(currentCommit(fleet.home('s2')), fleet.upstream.versions['1.2.0']);
  assert.equal(readDeployCount(fleet.home('s2')), 0);

  const rec = await cli(['plan', '--only', 'recommended', '--json', '-c', fleet.writeConfig({ name: 'rec', ...versioned(fleet) })], { db });
  assert.equal(rec.code, 0, rec.stdout + rec.stderr);
  const plan = JSON.parse(rec.stdout) as { servers: Array<{ name: string; status: string; versionClass: string | null }>; versions: { leftOut: string[] } };
  // s1 is at 1.3.0 now (current), s3 too: only s2 is recommended
  assert.deepEqual(plan.servers.map((x) => [x.name, x.status, x.versionClass]), [['s2', 'pending', 'recommended'], ['s4', 'excluded', null]]);
  assert.deepEqual(plan.versions.leftOut, ['s1', 's3']);
});

test('plan refuses a target above max_compatible (exit 2, naming both versions; no database written), --only without classes, and an invalid version', async (t) => {
  const fleet = await fleetFor(t, { servers: 4, upstream: VERSIONED });
  if (!fleet) return;
  const db = join(fleet.root, 'plan.db');
  const above = fleet.writeConfig(versioned(fleet, { source: { branch: 'v2.0.0', version: '2.0.0', max_compatible: '1.3.0' } }));
  const ceiling = await cli(['plan', '-c', above], { db });
  assert.equal(ceiling.code, 2, ceiling.stdout + ceiling.stderr);
  assert.match(ceiling.stderr, /target's version 2\.0\.0 \(source\.version\) is above 1\.3\.0 \(source\.max_compatible\)/);
  assert.equal(existsSync(db), false);
  // the review of the same config before planning refuses it the same way: no commands shown for a plan that would be refused
  const shown = await cli(['plan', '-c', above, '--show-commands'], { db });
  assert.equal(shown.code, 2, shown.stdout + shown.stderr);
  assert.match(shown.stderr, /target's version 2\.0\.0 \(source\.version\) is above 1\.3\.0 \(source\.max_compatible\)/);
  assert.doesNotMatch(shown.stdout, /commands this config will send/);

  const noClasses = await cli(['plan', '--only', 'required', '-c', fleet.writeConfig({})], { db });
  assert.equal(noClasses.code, 2, noClasses.stderr);
  assert.match(noClasses.stderr, /needs source\.version and agent\.semver_command/);
  const badOnly = await cli(['plan', '--only', 'current', '-c', fleet.writeConfig(versioned(fleet))], { db });
  assert.equal(badOnly.code, 2, badOnly.stderr);
  assert.match(badOnly.stderr, /--only: "current" is not a class to plan/);

  const invalid = await cli(['plan', '-c', fleet.writeConfig(versioned(fleet, { source: { branch: 'v1.3.0', version: '1.3', min_compatible: 'one' } }))], { db });
  assert.equal(invalid.code, 2, invalid.stderr);
  assert.match(invalid.stderr, /source\.version.*"1\.3" is not a valid version/);
  assert.match(invalid.stderr, /source\.min_compatible.*"one" is not a valid version/);
  assert.equal(existsSync(db), false);
  // nothing ran on any server: no deploy, still at base
  for (const name of ['s1', 's2', 's3', 's4']) assert.equal(readDeployCount(fleet.home(name)), 0);
});

test('without source.version the versions are read and shown but not classed; without semver_command nothing changes', async (t) => {
  const fleet = await fleetFor(t, { servers: 4, upstream: VERSIONED });
  if (!fleet) return;
  await threeVersions(fleet);
  const db = join(fleet.root, 'plan.db');
  const r = await cli(['plan', '-c', fleet.writeConfig({ name: 'plain', source: { branch: 'v1.3.0' }, agent: { semver_command: SEMVER_COMMAND } })], { db });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const doc = await statusJson(db, 'plain');
  assert.deepEqual(doc.servers.map((s) => [s.name, s.agentVersion, s.versionClass]), [['s1', '1.0.0', null], ['s2', '1.2.0', null], ['s3', '1.3.0', null], ['s4', null, null]]);
  assert.equal(doc.versions, undefined);
  const none = await cli(['plan', '-c', fleet.writeConfig({ name: 'none', source: { branch: 'v1.3.0' } })], { db });
  assert.equal(none.code, 0, none.stderr);
  const d2 = await statusJson(db, 'none');
  assert.deepEqual(d2.servers.map((s) => [s.name, s.status, s.agentVersion]), [['s1', 'pending', null], ['s2', 'pending', null], ['s3', 'skipped', null], ['s4', 'pending', null]]);
  assert.doesNotMatch(none.stdout, /VERSION/);
});

test('plan --refresh of a server unreachable at plan time reads its version too: unreadable → excluded, a readable one is classed', async (t) => {
  const fleet = await fleetFor(t, { servers: 4, upstream: VERSIONED });
  if (!fleet) return;
  await threeVersions(fleet);
  // s2 and s4 cannot be read while their gate `probe` is closed: unreachable at plan time
  const versionCommand = `if [ "$(basename "$HOME")" = ${fleet.servers[1]!.host} ] || [ "$(basename "$HOME")" = ${fleet.servers[3]!.host} ]; then ${gateOpen('probe')}; fi; git -C ~/agent/repo rev-parse HEAD`;
  const db = join(fleet.root, 'refresh.db');
  const config = fleet.writeConfig({ name: 'rv', ...versioned(fleet, { agent: { semver_command: SEMVER_COMMAND, version_command: versionCommand } }) });
  const p = await cli(['plan', '-c', config], { db });
  assert.equal(p.code, 0, p.stdout + p.stderr);
  let s = byName(await statusJson(db, 'rv'));
  assert.deepEqual([s.s2!.status, s.s4!.status], ['unreachable', 'unreachable']);
  openGate(fleet, 'probe', ['s2', 's4']);
  const r = await cli(['plan', '--refresh', 'rv', '--json'], { db });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const refreshed = (JSON.parse(r.stdout) as { refreshed: Record<string, number> }).refreshed;
  assert.deepEqual(refreshed, { probed: 2, pending: 1, skipped: 0, unreachable: 0, excluded: 1 });
  s = byName(await statusJson(db, 'rv'));
  assert.deepEqual([s.s2!.status, s.s2!.agentVersion, s.s2!.versionClass], ['pending', '1.2.0', 'recommended']);
  assert.equal(s.s4!.status, 'excluded');
  assert.match(s.s4!.error ?? '', /version unreadable: semver_command printed "base"/);
});
