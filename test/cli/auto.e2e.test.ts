/**
 * `agent-update auto -c FILE` end to end (issue 15, item 1): the real CLI in its own processes
 * against a real OpenSSH fleet. Where a test needs a rollout in flight, a gate holds it.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { currentCommit, readDeployCount } from '../../src/sim/agent.js';
import { byName, cli, sharedFleet, spawnCli, statusJson } from '../helpers/cli.js';
import { heldInVerify, openGate } from '../helpers/gates.js';
import { contents, openStore, updatesOf, waitForStore as waitFor, withStore } from '../helpers/db.js';

const fleetFor = sharedFleet({ servers: 3, unreachable: 1 });

/**
 * The database, for "nothing touched": every update, server, event and auto run row (not the
 * journal: a rollout held in verify adds a health check to it every 50 ms; not the heartbeat).
 */
async function snapshot(db: string): Promise<string> {
  return await withStore(db, async (store) => await contents(store, { heartbeats: false, journal: false }));
}


async function autoRuns(db: string) {
  const store = openStore(db);
  try {
    return await store.autoRuns();
  } finally {
    await store.close();
  }
}

test('auto twice in a row: the first plans and rolls out (the unreachable server left for the next run), the second is a no-op with one audit record', async (t) => {
  const fleet = await fleetFor(t, { servers: 2, unreachable: 1 });
  if (!fleet) return;
  const { commits } = fleet.upstream;
  const db = join(fleet.root, 'plan.db');
  const config = fleet.writeConfig({ name: 'nightly' });

  const first = await cli(['auto', '-c', config], { db });
  assert.equal(first.code, 0, first.stdout + first.stderr);
  assert.match(first.stdout, /planned nightly to [0-9a-f]{12}; 1 unreachable server left for the next run: u1; starting it/);
  const doc = await statusJson(db, 'nightly');
  assert.equal(doc.status, 'success', doc.reason ?? '');
  const s = byName(doc);
  assert.equal(s.s1!.status, 'success');
  assert.equal(s.s2!.status, 'success');
  assert.equal(s.u1!.status, 'excluded', 'unreachable is not a failure of an auto run');
  assert.match(s.u1!.error ?? '', /unreachable when auto planned .*left for the next auto run/);
  assert.match(doc.createdBy ?? '', /.+@.+/);
  assert.equal(doc.retryOf, null);
  assert.equal(currentCommit(fleet.home('s1')), commits.good);
  assert.equal(readDeployCount(fleet.home('s1')), 1);

  const second = await cli(['auto', '-c', config], { db });
  assert.equal(second.code, 0, second.stdout + second.stderr);
  assert.match(second.stdout, /nothing to do: 2 servers already run the target [0-9a-f]{12}; 1 unreachable, left for the next run: u1 \(.+\)/);
  // a cron log gets one timestamped line per no-op run, the unreachable server's reason in it
  assert.equal(second.stderr, '');
  assert.match(second.stdout.trimEnd(), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ nothing to do: [^\n]*$/);
  // -v: the database, and each server as probed
  const verbose = await cli(['-v', 'auto', '-c', config], { db });
  assert.equal(verbose.code, 0, verbose.stdout + verbose.stderr);
  assert.match(verbose.stderr, /^database: /);
  assert.match(verbose.stdout, /probe s1: skipped[^]*nothing to do/);
  assert.deepEqual(await updatesOf(db), ['nightly'], 'no second update is left in the database');
  assert.equal(readDeployCount(fleet.home('s1')), 1, 'nothing deployed');
  assert.equal(readDeployCount(fleet.home('s2')), 1);
  const runs = await autoRuns(db);
  assert.deepEqual(runs.map((r) => [r.outcome, r.updateName]), [['started', 'nightly'], ['nothing-to-do', null], ['nothing-to-do', null]]);
  assert.match(runs[0]!.message ?? '', /nightly success \(exit 0\)/);
  assert.match(runs[1]!.message ?? '', /nothing to do/);
  assert.ok(runs.every((r) => r.endedAt !== null));

  // --json: one object saying what auto found.
  const third = await cli(['--json', 'auto', '-c', config], { db });
  assert.equal(third.code, 0, third.stderr);
  const line = JSON.parse(third.stdout) as { type: string; outcome: string; exitCode: number };
  assert.equal(line.type, 'auto');
  assert.equal(line.outcome, 'nothing-to-do');
  assert.equal(line.exitCode, 0);
});

test('auto --limit --version: the tagged release on the limited servers alone, recorded and shown; the same line again is a no-op', async (t) => {
  const fleet = await fleetFor(t, { servers: 2, unreachable: 1 });
  if (!fleet) return;
  const { commits } = fleet.upstream;
  await execa('git', ['-C', fleet.upstream.repo, 'tag', '-f', 'v2.0.0', commits.good2]);
  const db = join(fleet.root, 'plan.db');
  const config = fleet.writeConfig({ name: 'pinned' });
  const line = ['auto', '-c', config, '--limit', 's1', '--version', '2.0.0'];

  const first = await cli(line, { db });
  assert.equal(first.code, 0, first.stdout + first.stderr);
  const doc = await statusJson(db, 'pinned');
  assert.equal(doc.status, 'success', doc.reason ?? '');
  assert.deepEqual(doc.servers.map((s) => [s.name, s.status, s.toCommit]), [['s1', 'success', commits.good2]], 'only s1, to the tag\'s commit');
  assert.equal(doc.source.commit, commits.good2);
  assert.deepEqual(doc.overrides, { limit: { patterns: ['s1'], selected: 3 }, source: { version: '2.0.0' } });
  assert.equal(doc.versions?.target, '2.0.0', 'the target version is the one given');
  assert.equal(currentCommit(fleet.home('s1')), commits.good2);
  assert.equal(readDeployCount(fleet.home('s2')), 0, 's2 untouched');
  const shown = await cli(['status', 'pinned'], { db });
  assert.match(shown.stdout, /limit {4}s1 \(--limit: of the 3 servers the config selects\)\n {2}override --version 2\.0\.0 \(instead of the config's source, for this update\)/);

  const again = await cli(line, { db });
  assert.equal(again.code, 0, again.stdout + again.stderr);
  assert.match(again.stdout, /nothing to do: 1 server already runs the target [0-9a-f]{12}/);
  assert.equal(readDeployCount(fleet.home('s1')), 1, 'deployed once');

  const typo = await cli(['auto', '-c', config, '--limit', 's9'], { db });
  assert.equal(typo.code, 2, typo.stdout + typo.stderr);
  assert.match(typo.stderr, /--limit: "s9" matches none of the 3 servers the config selects; did you mean "s1" or "s2"\?/);
  assert.deepEqual(await updatesOf(db), ['pinned'], 'nothing written');
});

test('two auto runs started at the same instant make exactly one rollout; the other exits 0', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  const db = join(fleet.root, 'plan.db');
  const config = fleet.writeConfig({ name: 'cron' });
  const [a, b] = await Promise.all([spawnCli(['auto', '-c', config], { db }), spawnCli(['auto', '-c', config], { db })]);
  assert.equal(a.exitCode, 0, `${String(a.stdout)}${String(a.stderr)}`);
  assert.equal(b.exitCode, 0, `${String(b.stdout)}${String(b.stderr)}`);
  assert.deepEqual(await updatesOf(db), ['cron'], 'one update');
  for (const s of ['s1', 's2', 's3']) assert.equal(readDeployCount(fleet.home(s)), 1, `${s} deployed once`);
  assert.equal((await statusJson(db, 'cron')).status, 'success');
  const outputs = `${String(a.stdout)}\n${String(b.stdout)}`;
  // The loser saw the winner at work (its claim or its running update), or, if it came after the
  // end, found nothing to do; either way it deployed nothing.
  assert.match(outputs, /another auto run of this config|already running|nothing to do/);
});

test('auto while this config\'s rollout runs: exit 0, nothing touched', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const db = join(fleet.root, 'plan.db');
  const config = fleet.writeConfig({ name: 'held', ...heldInVerify() });
  const run = spawnCli(['auto', '-c', config], { db });
  await waitFor(db, 's1 verifying', async (store) => await store.findUpdate('held') && (await store.getServers('held')).find((s) => s.name === 's1' && s.step === 'verify'));
  const before = await snapshot(db);
  const again = await cli(['auto', '-c', config], { db });
  assert.equal(again.code, 0, again.stdout + again.stderr);
  assert.match(again.stdout, /already running: held \(pid \d+ on .+\); nothing touched/);
  assert.equal(await snapshot(db), before, 'nothing written');
  const json = await cli(['--json', 'auto', '-c', config], { db });
  assert.equal((JSON.parse(json.stdout) as { outcome: string }).outcome, 'running');
  openGate(fleet, 'online');
  const r = await run;
  assert.equal(r.exitCode, 0, String(r.stderr));
  assert.equal(readDeployCount(fleet.home('s2')), 1);
});

test('auto on a paused update of the config: exit 3, it names it and how to resume, nothing touched', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const db = join(fleet.root, 'plan.db');
  // test mode: the rollout auto starts pauses after one server
  const config = fleet.writeConfig({ name: 'canary', test_mode: { stop_after: 1 } });
  const first = await cli(['auto', '-c', config], { db });
  assert.equal(first.code, 3, first.stdout + first.stderr);
  assert.equal((await statusJson(db, 'canary')).status, 'paused');
  const before = await snapshot(db);
  const again = await cli(['auto', '-c', config], { db });
  assert.equal(again.code, 3, again.stdout + again.stderr);
  assert.match(again.stderr, /canary is paused \(test mode: 1 server finished\): auto does not resume what was paused; nothing touched\. Continue with `agent-update --db \S+ resume canary`/);
  assert.equal(await snapshot(db), before);
  assert.equal(readDeployCount(fleet.home('s2')), 0, 'the second server was not touched');
  // A person resumes it; then auto finds nothing to do.
  assert.equal((await cli(['resume', 'canary'], { db })).code, 0);
  const after = await cli(['auto', '-c', config], { db });
  assert.equal(after.code, 0, after.stderr);
  assert.match(after.stdout, /nothing to do/);
});

test('auto on a pending plan a person made of the config: exit 3, it names it and how to start it, nothing touched', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const db = join(fleet.root, 'plan.db');
  const config = fleet.writeConfig({ name: 'reviewed' });
  assert.equal((await cli(['plan', '-c', config], { db })).code, 0);
  const before = await snapshot(db);
  const r = await cli(['auto', '-c', config], { db });
  assert.equal(r.code, 3, r.stdout + r.stderr);
  assert.match(r.stderr, /reviewed was planned by \S+ and not started: auto does not start a plan a person made; nothing touched\. Start it with `agent-update --db \S+ start reviewed`/);
  assert.equal(await snapshot(db), before);
  // with --json its outcome is its own: `planned` is the line of an auto that planned and is starting the rollout
  const json = await cli(['--json', 'auto', '-c', config], { db });
  assert.equal(json.code, 3, json.stdout + json.stderr);
  const line = JSON.parse(json.stdout) as { type: string; outcome: string; updates: string[]; exitCode: number };
  assert.deepEqual([line.type, line.outcome, line.updates, line.exitCode], ['auto', 'pending', ['reviewed'], 3]);
  assert.equal(await snapshot(db), before);
  assert.equal(readDeployCount(fleet.home('s1')), 0);
  assert.equal((await cli(['start', 'reviewed'], { db })).code, 0);
  const after = await cli(['auto', '-c', config], { db });
  assert.equal(after.code, 0, after.stderr);
  assert.match(after.stdout, /nothing to do/);
});

test('auto does not deploy again a commit that failed for this config (exit 1, nothing touched)', async (t) => {
  const fleet = await fleetFor(t, { servers: 1 });
  if (!fleet) return;
  const db = join(fleet.root, 'plan.db');
  const config = fleet.writeConfig({ name: 'bad', source: { branch: 'broken' }, agent: { health: { timeout: '500ms', interval: '100ms' } } });
  const first = await cli(['auto', '-c', config], { db });
  assert.equal(first.code, 1, first.stdout + first.stderr);
  assert.equal(byName(await statusJson(db, 'bad')).s1!.status, 'rolled-back');
  const before = await snapshot(db);
  const deploys = readDeployCount(fleet.home('s1'));
  const again = await cli(['auto', '-c', config], { db });
  assert.equal(again.code, 1);
  assert.match(again.stderr, /ended failure: auto does not deploy a commit that failed here again; nothing touched/);
  assert.equal(await snapshot(db), before);
  assert.equal(readDeployCount(fleet.home('s1')), deploys, 'nothing deployed again');
});

test('auto: bad input is exit 2 and nothing is written', async (t) => {
  const fleet = await fleetFor(t, { servers: 1 });
  if (!fleet) return;
  const db = join(fleet.root, 'plan.db');
  const noConfig = await cli(['auto'], { db });
  assert.equal(noConfig.code, 2);
  assert.match(noConfig.stderr, /auto needs -c FILE/);
  const badBranch = await cli(['auto', '-c', fleet.writeConfig({ source: { branch: 'no-such-branch' } })], { db });
  assert.equal(badBranch.code, 2, badBranch.stderr);
  assert.deepEqual(await updatesOf(db), []);
  assert.deepEqual(await autoRuns(db), []);
});

test('auto: an unknown branch is exit 2 before the database is even created (a first cron run with a typo leaves no file)', async (t) => {
  const fleet = await fleetFor(t, { servers: 1 });
  if (!fleet) return;
  const db = join(fleet.root, 'new.db');
  const r = await cli(['auto', '-c', fleet.writeConfig({ source: { branch: 'no-such-branch' } })], { db });
  assert.equal(r.code, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /no-such-branch/);
  assert.equal(existsSync(db), false, 'no database created');
});

test('auto when no server of the config can be reached: exit 0, nothing planned, and it says so instead of "0 servers already run the target"', async (t) => {
  const fleet = await fleetFor(t, { servers: 1, unreachable: 1 });
  if (!fleet) return;
  const db = join(fleet.root, 'plan.db');
  const r = await cli(['auto', '-c', fleet.writeConfig({ name: 'down', include: ['u1'] })], { db });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.doesNotMatch(r.stdout, /already runs? the target/);
  assert.match(r.stdout, /no server could be reached, so nothing was done: 1 unreachable, left for the next run: u1/);
  assert.deepEqual(await updatesOf(db), []);
  assert.deepEqual((await autoRuns(db)).map((x) => x.outcome), ['nothing-to-do']);
});
