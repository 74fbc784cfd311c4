/**
 * Stepping stones (issue 14, items 4–5) on the real sshd fleet, its agents at three versions:
 * a server below source.min_version walks the stepping stones, each hop a full update verified
 * at its own commit (the order checked in the deploy log on the server); a server at or above
 * min_version goes straight to the target; one at the target is skipped; one below min_version
 * with no path is excluded at plan time and never touched; test mode counts servers, not hops;
 * a failing second hop rolls back to the stepping stone; kill -9 between two hops is finished by
 * the takeover.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { agentCommands, currentCommit, readDeployCount, readDeploys, SEMVER_COMMAND } from '../../src/sim/agent.js';
import { atVersions, VERSIONED, type Fleet } from '../fleet/fleet.js';
import { byName, cli, sharedFleet, spawnCli, statusJson } from '../helpers/cli.js';
import { openGate, waitGate } from '../helpers/gates.js';
import { openStore, waitForStore, withStore } from '../helpers/db.js';
import type { ShownCommands } from '../../src/plan/commands.js';
import type { HistoryJson } from '../../src/rollout/history.js';

const fleetFor = sharedFleet({ servers: 4, upstream: VERSIONED });

/** Target 1.3.0; 1.1.0 and newer upgrade directly; older ones go through the stepping stone 1.1.0 first. */
function stones(fleet: Fleet, over: { source?: Record<string, unknown>; [k: string]: unknown } = {}): Record<string, unknown> {
  const { source, ...rest } = over;
  return {
    source: {
      branch: 'v1.3.0',
      version: '1.3.0',
      min_version: '1.1.0',
      stepping_stones: [{ version: '1.1.0', commit: fleet.upstream.versions['1.1.0']!.slice(0, 10) }],
      ...source,
    },
    agent: { semver_command: SEMVER_COMMAND },
    ...rest,
  };
}

/** s1 1.0.0 (below min_version: through 1.1.0), s2 1.2.0 (direct), s3 1.3.0 (at the target), s4 base (unreadable). */
async function threeVersions(fleet: Fleet): Promise<void> {
  await atVersions(fleet, { s1: '1.0.0', s2: '1.2.0', s3: '1.3.0' });
}

test('a server below min_version walks the stepping stone then the target, each hop verified; direct, current and excluded servers as before; test mode counts servers, not hops', async (t) => {
  const fleet = await fleetFor(t, { servers: 4, upstream: VERSIONED });
  if (!fleet) return;
  await threeVersions(fleet);
  const v = fleet.upstream.versions;
  const db = join(fleet.root, 'plan.db');
  const p = await cli(['plan', '-c', fleet.writeConfig({ name: 'st', ...stones(fleet), test_mode: { stop_after: 1 } })], { db });
  assert.equal(p.code, 0, p.stdout + p.stderr);
  assert.match(p.stdout, /min_version 1\.1\.0 \(stepping stones 1\.1\.0\)/);
  assert.match(p.stdout, /paths +1 server through stepping stones: s1/);
  assert.match(p.stdout, /s1 .* pending .* → [0-9a-f]+ via 1\.1\.0/);
  const planned = await statusJson(db, 'st');
  const s = byName(planned);
  assert.deepEqual(s.s1!.path, [{ commit: v['1.1.0'], version: '1.1.0' }, { commit: v['1.3.0'], version: '1.3.0' }], 'the stone expanded to its 40 hex');
  assert.equal(s.s2!.path, null, 'at or above min_version: straight to the target');
  assert.equal(s.s3!.status, 'skipped');
  assert.equal(s.s4!.status, 'excluded');
  assert.deepEqual(planned.versions?.steppingStones, [{ version: '1.1.0', commit: v['1.1.0'], minVersion: null }]);

  // show-commands of the plan: s1's two hops, each with its own commit, the second rolling back to the stone
  const shown = await cli(['plan', '--show-commands', 'st'], { db });
  assert.equal(shown.code, 0, shown.stderr);
  assert.match(shown.stdout, /hop 1 of 2 → 1\.1\.0:[^]*reset --hard --quiet [']?[0-9a-f]{0,0}/);
  assert.ok(shown.stdout.includes(`reset --hard --quiet ${v['1.1.0']}`), shown.stdout);
  assert.match(shown.stdout, /hop 2 of 2 → 1\.3\.0:[^]*rollback to the stepping stone before this hop/);

  // test mode 1: s1 finishes BOTH hops before the pause (servers are counted, not hops)
  const first = await cli(['start', 'st'], { db });
  assert.equal(first.code, 3, first.stdout + first.stderr);
  const mid = byName(await statusJson(db, 'st'));
  assert.equal(mid.s1!.status, 'success');
  assert.deepEqual(mid.s1!.hop, { index: 2, count: 2, version: '1.3.0', commit: v['1.3.0'] });
  assert.equal(mid.s2!.status, 'pending');
  assert.deepEqual(readDeploys(fleet.home('s1')), [v['1.1.0'], v['1.3.0']], 'the stone first, then the target, in that order');

  const rest = await cli(['resume', 'st'], { db });
  assert.equal(rest.code, 0, rest.stdout + rest.stderr);
  const doc = await statusJson(db, 'st');
  assert.equal(doc.status, 'success');
  assert.deepEqual(readDeploys(fleet.home('s2')), [v['1.3.0']], 'direct: one hop');
  assert.equal(readDeployCount(fleet.home('s3')), 0, 'current: untouched');
  assert.equal(readDeployCount(fleet.home('s4')), 0, 'excluded: untouched');
  for (const n of ['s1', 's2', 's3']) assert.equal(currentCommit(fleet.home(n)), v['1.3.0'], n);

  // the journal shows every hop: two update/verify rounds for s1, each verified at its own commit
  const store = openStore(db);
  try {
    const steps = await store.getJournal('st', 's1');
    const resets = steps.filter((x) => x.phase === 'update' && x.command.includes('reset --hard'));
    assert.deepEqual(resets.map((x) => x.command.split(' ').pop()), [v['1.1.0'], v['1.3.0']]);
    assert.equal(steps.filter((x) => x.phase === 'verify').length >= 2, true);
    const events = (await store.getEvents('st')).filter((e) => e.serverName === 's1' && e.kind === 'hop');
    assert.equal(events.length, 1);
    assert.match(events[0]!.message, /hop 1 of 2 \(1\.0\.0 → 1\.1\.0\) verified/);
  } finally {
    await store.close();
  }
  const st = await cli(['status', 'st'], { db });
  assert.match(st.stdout, /s1 .*1\.0\.0 → 1\.1\.0 → 1\.3\.0/);
});

test('below min_version with no stepping stone: excluded at plan time, naming its version and the bound, never touched; --only required walks only the required server', async (t) => {
  const fleet = await fleetFor(t, { servers: 4, upstream: VERSIONED });
  if (!fleet) return;
  await threeVersions(fleet);
  const v = fleet.upstream.versions;
  const db = join(fleet.root, 'plan.db');
  const none = await cli(['plan', '-c', fleet.writeConfig({ name: 'nopath', ...stones(fleet, { source: { stepping_stones: null } }) })], { db });
  assert.equal(none.code, 0, none.stdout + none.stderr);
  const s1 = byName(await statusJson(db, 'nopath')).s1!;
  assert.equal(s1.status, 'excluded');
  assert.match(s1.error!, /agent 1\.0\.0 is below source\.min_version 1\.1\.0.*no stepping stone leads there/);
  const run = await cli(['start', 'nopath'], { db });
  assert.equal(run.code, 0, run.stdout + run.stderr);
  assert.equal(readDeployCount(fleet.home('s1')), 0, 'never touched');
  assert.equal(currentCommit(fleet.home('s1')), v['1.0.0']);
  const store = openStore(db);
  try {
    assert.deepEqual((await store.getJournal('nopath', 's1')).map((x) => x.phase), ['probe']);
  } finally {
    await store.close();
  }
  // s2 was updated by that run: put it back, then plan only the required class (below min_compatible 1.1.0)
  await atVersions(fleet, { s2: '1.2.0' });
  const req = await cli(['plan', '--only', 'required', '-c', fleet.writeConfig({ name: 'req', ...stones(fleet, { source: { min_compatible: '1.1.0' } }) })], { db });
  assert.equal(req.code, 0, req.stdout + req.stderr);
  const planned = await statusJson(db, 'req');
  assert.deepEqual(planned.servers.map((x) => [x.name, x.status]), [['s1', 'pending'], ['s4', 'excluded']]);
  const go = await cli(['start', 'req'], { db });
  assert.equal(go.code, 0, go.stdout + go.stderr);
  assert.deepEqual(readDeploys(fleet.home('s1')), [v['1.1.0'], v['1.3.0']]);
  assert.equal(currentCommit(fleet.home('s2')), v['1.2.0'], 'recommended: left out');
});

test('a failing second hop rolls back to the stepping stone (verified) and the server ends rolled-back saying where it stands', async (t) => {
  const fleet = await fleetFor(t, { servers: 4, upstream: VERSIONED });
  if (!fleet) return;
  await atVersions(fleet, { s1: '1.0.0' });
  const v = fleet.upstream.versions;
  // a 1.3.0 that never comes online
  const broken = await fleet.upstream.addCommit('broken-1.3.0', { parent: v['1.2.0'], version: '1.3.0', broken: true });
  const db = join(fleet.root, 'plan.db');
  const cfg = fleet.writeConfig({
    name: 'bad',
    ...stones(fleet, { source: { branch: 'broken-1.3.0' } }),
    include: ['s1'],
    agent: { semver_command: SEMVER_COMMAND, health: { timeout: '3s', interval: '100ms' } },
  });
  const p = await cli(['plan', '-c', cfg], { db });
  assert.equal(p.code, 0, p.stdout + p.stderr);
  const r = await cli(['start', 'bad'], { db });
  assert.equal(r.code, 1, r.stdout + r.stderr);
  const s1 = byName(await statusJson(db, 'bad')).s1!;
  assert.equal(s1.status, 'rolled-back');
  assert.match(s1.error!, /^hop 2 of 2 \(1\.1\.0 → 1\.3\.0\): not online at/);
  assert.match(s1.error!, /rolled back to the stepping stone 1\.1\.0 \([0-9a-f]{12}\), verified: it runs 1\.1\.0 now, not the target/);
  assert.equal(currentCommit(fleet.home('s1')), v['1.1.0'], 'back at the stone, not at 1.0.0');
  assert.deepEqual(readDeploys(fleet.home('s1')), [v['1.1.0'], broken, v['1.1.0']]);
  // history says what it runs now: the stone, not the commit it had before the update
  const h = await cli(['--json', 'history', '--server', 's1'], { db });
  assert.equal(h.code, 0, h.stderr);
  const entry = (JSON.parse(h.stdout) as HistoryJson).servers[0]!.entries.find((e) => e.update === 'bad')!;
  assert.equal(entry.outcome, 'rolled-back');
  assert.equal(entry.to, v['1.1.0'], 'history: s1 runs the stepping stone after bad');
  const store = openStore(db);
  try {
    const phases = (await store.getJournal('bad', 's1')).map((x) => x.phase);
    assert.ok(phases.includes('verify-rollback'), phases.join(' '));
    const back = (await store.getJournal('bad', 's1')).filter((x) => x.phase === 'rollback' && x.command.includes('reset --hard'));
    assert.deepEqual(back.map((x) => x.command.split(' ').pop()), [v['1.1.0']]);
  } finally {
    await store.close();
  }
});

test('kill -9 between two hops: start takes over at the hop it was on and finishes the path; nothing is redone', async (t) => {
  const fleet = await fleetFor(t, { servers: 4, upstream: VERSIONED });
  if (!fleet) return;
  await atVersions(fleet, { s1: '1.0.0' });
  const v = fleet.upstream.versions;
  const { update } = agentCommands();
  // the second hop's first command waits on a gate: the executor is killed with the stone verified and hop 2 begun
  const held = `if [ {commit} = ${v['1.3.0']} ]; then ${waitGate('hop2')}; fi`;
  const db = join(fleet.root, 'plan.db');
  const cfg = fleet.writeConfig({ name: 'k9', ...stones(fleet), include: ['s1'], agent: { semver_command: SEMVER_COMMAND, update: [held, ...update] } });
  const p = await cli(['plan', '-c', cfg], { db });
  assert.equal(p.code, 0, p.stdout + p.stderr);
  const run = spawnCli(['start', 'k9'], { db });
  await waitForStore(db, 's1 on its second hop', async (store) => {
    const s = (await store.getServers('k9'))[0]!;
    return s.hop === 1 && (await store.getJournal('k9', 's1')).some((x) => x.phase === 'update' && x.endedAt === null && x.command.includes(v['1.3.0']!));
  });
  run.kill('SIGKILL');
  await run;
  const mid = byName(await statusJson(db, 'k9')).s1!;
  assert.equal(mid.status, 'running');
  assert.deepEqual(mid.hop, { index: 2, count: 2, version: '1.3.0', commit: v['1.3.0'] });
  assert.deepEqual(readDeploys(fleet.home('s1')), [v['1.1.0']], 'the stone was deployed, the target not yet');
  openGate(fleet, 'hop2', ['s1']);
  const taken = await cli(['start', 'k9'], { db });
  assert.equal(taken.code, 0, taken.stdout + taken.stderr);
  const s1 = byName(await statusJson(db, 'k9')).s1!;
  assert.equal(s1.status, 'success');
  assert.equal(currentCommit(fleet.home('s1')), v['1.3.0']);
  assert.deepEqual(readDeploys(fleet.home('s1')), [v['1.1.0'], v['1.3.0']], 'the stone is not deployed again');
  const store = openStore(db);
  try {
    const events = (await store.getEvents('k9')).filter((e) => e.serverName === 's1').map((e) => `${e.kind}: ${e.message}`);
    assert.ok(events.some((e) => /^takeover: re-checking; it was in step update of hop 2 of 2 \(1\.1\.0 → 1\.3\.0\)/.test(e)), events.join('\n'));
  } finally {
    await store.close();
  }
});

/** s1 at 1.0.0 walks the stone 1.1.0, then a 1.3.0 that never comes online: rolled back to the stone. */
async function failingSecondHop(fleet: Fleet, name: string, agent: Record<string, unknown> = {}): Promise<{ db: string; broken: string }> {
  await atVersions(fleet, { s1: '1.0.0' });
  const broken = await fleet.upstream.addCommit('broken-1.3.0', { parent: fleet.upstream.versions['1.2.0'], version: '1.3.0', broken: true });
  const db = join(fleet.root, 'plan.db');
  const cfg = fleet.writeConfig({
    name,
    ...stones(fleet, { source: { branch: 'broken-1.3.0' } }),
    include: ['s1'],
    agent: { semver_command: SEMVER_COMMAND, health: { timeout: '3s', interval: '100ms' }, ...agent },
  });
  const p = await cli(['plan', '-c', cfg], { db });
  assert.equal(p.code, 0, p.stdout + p.stderr);
  const r = await cli(['start', name], { db });
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.equal(byName(await statusJson(db, name)).s1!.status, 'rolled-back');
  assert.equal(currentCommit(fleet.home('s1')), fleet.upstream.versions['1.1.0'], 'back at the stone');
  return { db, broken };
}

test('agent.diagnose of a failed second hop gets that hop\'s values: {commit} the hop that failed, {previous_commit} the stone it came from', async (t) => {
  const fleet = await fleetFor(t, { servers: 4, upstream: VERSIONED });
  if (!fleet) return;
  const v = fleet.upstream.versions;
  const { db, broken } = await failingSecondHop(fleet, 'diag', { diagnose: ['echo diag {commit} {previous_commit}'] });
  const store = openStore(db);
  try {
    const diag = (await store.getJournal('diag', 's1')).filter((x) => x.phase === 'diagnose');
    assert.deepEqual(diag.map((x) => x.command), [`echo diag ${broken} ${v['1.1.0']}`]);
    assert.equal((diag[0]!.stdout ?? '').trim(), `diag ${broken} ${v['1.1.0']}`);
  } finally {
    await store.close();
  }
});

test('history of a server rolled back on its second hop: it runs the stepping stone after it, not its commit before the update', async (t) => {
  const fleet = await fleetFor(t, { servers: 4, upstream: VERSIONED });
  if (!fleet) return;
  const v = fleet.upstream.versions;
  const { db, broken } = await failingSecondHop(fleet, 'hist');
  const h = await cli(['--json', 'history', '--server', 's1'], { db });
  assert.equal(h.code, 0, h.stderr);
  const entries = (JSON.parse(h.stdout) as { servers: Array<{ entries: Array<{ from: string; target: string; to: string; outcome: string }> }> }).servers[0]!.entries;
  assert.deepEqual(entries.map((e) => [e.outcome, e.from, e.target, e.to]), [['rolled-back', v['1.0.0'], broken, v['1.1.0']]]);
});

test('agent.diagnose of a failing hop gets that hop’s {commit} and {previous_commit}, as plan --show-commands shows them', async (t) => {
  const fleet = await fleetFor(t, { servers: 4, upstream: VERSIONED });
  if (!fleet) return;
  await atVersions(fleet, { s1: '1.0.0', s2: '1.0.0' });
  const v = fleet.upstream.versions;
  // hop 1 fails: a 1.1.0 that never comes online, under a good 1.3.0 (one branch holds both)
  const badStone = await fleet.upstream.addCommit('bad-stone', { parent: v['1.0.0'], version: '1.1.0', broken: true });
  const goodTop = await fleet.upstream.addCommit('top-of-bad-stone', { parent: badStone, version: '1.3.0' });
  // hop 2 fails: the good stone 1.1.0, then a 1.3.0 that never comes online
  const badTop = await fleet.upstream.addCommit('bad-top', { parent: v['1.2.0'], version: '1.3.0', broken: true });
  const db = join(fleet.root, 'plan.db');
  const agent = { semver_command: SEMVER_COMMAND, diagnose: ['echo diag {commit} {previous_commit}'], health: { timeout: '3s', interval: '100ms' } };
  const cases = [
    { name: 'd1', server: 's1', branch: 'top-of-bad-stone', stone: badStone, hop: 1, expected: `echo diag ${badStone} ${v['1.0.0']}` },
    { name: 'd2', server: 's2', branch: 'bad-top', stone: v['1.1.0']!, hop: 2, expected: `echo diag ${badTop} ${v['1.1.0']}` },
  ];
  for (const c of cases) {
    const cfg = fleet.writeConfig({
      name: c.name,
      ...stones(fleet, { source: { branch: c.branch, stepping_stones: [{ version: '1.1.0', commit: c.stone }] } }),
      include: [c.server],
      agent,
    });
    assert.equal((await cli(['plan', '-c', cfg], { db })).code, 0);
    const shown = await cli(['--json', 'plan', '--show-commands', c.name], { db });
    assert.equal(shown.code, 0, shown.stderr);
    const doc = JSON.parse(shown.stdout) as ShownCommands;
    const diagnose = doc.groups[0]!.commands.filter((x) => x.step === 'diagnose' && x.hop === c.hop).map((x) => x.command);
    assert.deepEqual(diagnose, [c.expected], `${c.name}: show-commands' diagnose of hop ${c.hop}`);
    const r = await cli(['start', c.name], { db });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.equal(byName(await statusJson(db, c.name))[c.server]!.status, 'rolled-back');
    const ran = await withStore(db, async (store) => (await store.getJournal(c.name, c.server)).filter((x) => x.phase === 'diagnose').map((x) => x.command));
    assert.deepEqual(ran, [c.expected], `${c.name}: the diagnose command the failing hop ran is the one shown`);
  }
  assert.equal(currentCommit(fleet.home('s1')), v['1.0.0'], 'hop 1 rolled back to the server’s own commit');
  assert.notEqual(goodTop, badTop);
});

test('plan warns when a stepping stone a server walks is not an ancestor of the target (fetching {branch} would not bring it)', async (t) => {
  const fleet = await fleetFor(t, { servers: 4, upstream: VERSIONED });
  if (!fleet) return;
  await atVersions(fleet, { s1: '1.0.0' });
  const v = fleet.upstream.versions;
  const side = await fleet.upstream.addCommit('side-1.1.0', { parent: v['1.0.0'], version: '1.1.0' });
  const db = join(fleet.root, 'plan.db');
  const off = await cli(['plan', '-c', fleet.writeConfig({ name: 'side', ...stones(fleet, { source: { stepping_stones: [{ version: '1.1.0', commit: side }] } }), include: ['s1'] })], { db });
  assert.equal(off.code, 0, off.stdout + off.stderr);
  assert.match(off.stderr, new RegExp(`warning: the stepping stone 1\\.1\\.0 \\(${side.slice(0, 12)}\\) is not an ancestor of the target \\(diverged\\)`));
  const on = await cli(['plan', '-c', fleet.writeConfig({ name: 'on', ...stones(fleet), include: ['s1'] })], { db });
  assert.equal(on.code, 0, on.stdout + on.stderr);
  assert.doesNotMatch(on.stderr, /stepping stone .* is not an ancestor/);
});

test('plan -c FILE --show-commands of a config with stepping stones says which servers walk them first and where to see those hops (it reads no version)', async (t) => {
  const fleet = await fleetFor(t, { servers: 4, upstream: VERSIONED });
  if (!fleet) return;
  const v = fleet.upstream.versions;
  const db = join(fleet.root, 'plan.db');
  const config = fleet.writeConfig({ name: 'review', ...stones(fleet) });
  const shown = await cli(['plan', '-c', config, '--show-commands'], { db });
  assert.equal(shown.code, 0, shown.stdout + shown.stderr);
  assert.ok(shown.stdout.includes(`reset --hard --quiet ${v['1.3.0']}`), 'the direct hop to the target, as before');
  assert.match(shown.stdout, new RegExp(`servers below source\\.min_version 1\\.1\\.0 first walk the stepping stones 1\\.1\\.0 \\(${v['1.1.0']!.slice(0, 12)}\\)`));
  assert.match(shown.stdout, /plan --show-commands NAME/);
  const json = await cli(['--json', 'plan', '-c', config, '--show-commands'], { db });
  assert.equal(json.code, 0, json.stderr);
  assert.deepEqual((JSON.parse(json.stdout) as ShownCommands).steppingStones, { minVersion: '1.1.0', stones: [{ version: '1.1.0', commit: v['1.1.0'] }] });
  // a config without stones says nothing of them
  const plain = await cli(['plan', '-c', fleet.writeConfig({ name: 'plain', source: { branch: 'v1.3.0' } }), '--show-commands'], { db });
  assert.equal(plain.code, 0, plain.stdout + plain.stderr);
  assert.doesNotMatch(plain.stdout, /stepping stone/);
  const plainJson = await cli(['--json', 'plan', '-c', fleet.writeConfig({ name: 'plain', source: { branch: 'v1.3.0' } }), '--show-commands'], { db });
  assert.equal((JSON.parse(plainJson.stdout) as ShownCommands).steppingStones, undefined);
});
