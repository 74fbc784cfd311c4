/**
 * The core rollout end to end: the real CLI in its own process, a real OpenSSH sshd, real git
 * checkouts with real restart and health commands (test/fleet).
 */
import assert from 'node:assert/strict';
import { copyFileSync, cpSync, existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { EXIT } from '../../src/errors.js';
import { currentCommit, readDeployCount, restartCount } from '../../src/sim/agent.js';
import type { Fleet } from '../fleet/fleet.js';
import type { Store } from '../../src/store/port.js';
import { byName, cli, cliStatusJson, sharedFleet, spawnCli, statusJson } from '../helpers/cli.js';
import { heldInVerify, openGate } from '../helpers/gates.js';
import { openStore } from '../helpers/db.js';

/** One sshd fleet for the file; each test sees its first servers, reset (test/helpers/cli.ts). */
const fleetFor = sharedFleet({ servers: 3, unreachable: 1 });

async function plan(fleet: Fleet, overrides: Record<string, unknown> = {}, name = 'u1') {
  const db = join(fleet.root, 'plan.db');
  const config = fleet.writeConfig({ name, ...overrides });
  const r = await cli(['plan', '-c', config], { db });
  return { db, config, r, name };
}

/** Size of the database's write-ahead log (0 when there is none): what the main file does not hold yet. */
function walBytes(db: string): number {
  return existsSync(`${db}-wal`) ? statSync(`${db}-wal`).size : 0;
}

/** The commit whose agent never comes online, with a health timeout short enough to see it fast. */
const BROKEN = { source: { branch: 'broken' }, agent: { health: { timeout: '500ms', interval: '100ms' } } };

test('plan probes every server: pending, skipped at the target, unreachable with the reason', async (t) => {
  const fleet = await fleetFor(t, { servers: 3, unreachable: 1 });
  if (!fleet) return;
  const { commits } = fleet.upstream;
  await fleet.setCommit('s2', commits.good);
  const { db, r, name } = await plan(fleet);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /agent-update --db \S+ start u1/);
  const doc = await statusJson(db, name);
  assert.equal(doc.status, 'pending');
  assert.equal(doc.source.commit, commits.good, 'the branch tip is resolved to the full commit');
  const s = byName(doc);
  assert.equal(s.s1!.status, 'pending');
  assert.equal(s.s1!.fromCommit, commits.base);
  assert.equal(s.s2!.status, 'skipped');
  assert.equal(s.u1!.status, 'unreachable');
  assert.match(s.u1!.error ?? '', /refused/);
  assert.deepEqual(doc.counts, { total: 4, pending: 2, skipped: 1, unreachable: 1 });
  // Planning never deploys.
  assert.equal(readDeployCount(fleet.home('s1')), 0);
});

test('a clean rollout updates every server one at a time and ends success (exit 0)', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  const { commits } = fleet.upstream;
  const { db, name } = await plan(fleet, { restart: ['web', 'workers'] });
  const r = await cli(['start', name], { db });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const doc = await statusJson(db, name);
  assert.equal(doc.status, 'success');
  assert.deepEqual(doc.counts, { total: 3, success: 3 });
  for (const s of doc.servers) {
    assert.equal(currentCommit(fleet.home(s.name)), commits.good);
    assert.equal(readDeployCount(fleet.home(s.name)), 1);
    assert.equal(restartCount(fleet.home(s.name), 'workers'), 1);
    assert.equal(s.fromCommit, commits.base);
    assert.equal(s.toCommit, commits.good);
    assert.ok(s.startedAt && s.endedAt);
  }
  // Strictly one at a time: each server started after the previous one ended.
  for (let i = 1; i < doc.servers.length; i++) {
    assert.ok(doc.servers[i]!.startedAt! >= doc.servers[i - 1]!.endedAt!, 'servers overlapped');
  }
  // A finished update cannot be started again: exit 2, and nothing is touched.
  const again = await cli(['start', name], { db });
  assert.equal(again.code, 2);
  assert.match(again.stderr, /success/);
  assert.equal(readDeployCount(fleet.home('s1')), 1);
});

test('the status JSON has exactly the SPEC fields', async (t) => {
  const fleet = await fleetFor(t, { servers: 1 });
  if (!fleet) return;
  const { db, name } = await plan(fleet);
  const doc = await cliStatusJson(db, name);
  assert.deepEqual(doc, await statusJson(db, name), 'what the other tests read in-process is what the CLI prints');
  for (const key of ['name', 'status', 'createdAt', 'startedAt', 'endedAt', 'source', 'batchOf', 'counts', 'servers']) {
    assert.ok(key in doc, `missing ${key}`);
  }
  assert.deepEqual(Object.keys(doc.source).sort(), ['branch', 'commit', 'repo']);
  assert.match(doc.source.commit, /^[0-9a-f]{40}$/);
  // SPEC's fields, plus `types` (extension: every type of the server, `type` first) and
  // `agentVersion`, `versionClass` (extension: null without agent.semver_command), `path` and
  // `hop` (extension: null without stepping stones or an undo)
  assert.deepEqual(Object.keys(doc.servers[0]!).sort(), [
    'agentVersion', 'endedAt', 'error', 'fromCommit', 'hop', 'host', 'name', 'path', 'startedAt', 'status', 'step', 'toCommit', 'type', 'types', 'versionClass',
  ]);
  assert.equal(doc.servers[0]!.path, null);
  assert.equal(doc.servers[0]!.hop, null);
  assert.equal(doc.servers[0]!.agentVersion, null);
  assert.equal(doc.servers[0]!.versionClass, null);
  assert.equal(typeof doc.servers[0]!.type, 'string');
  assert.deepEqual(doc.servers[0]!.types, [doc.servers[0]!.type]);
  assert.match(doc.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  const all = await cli(['status', '--json'], { db });
  assert.equal(all.code, 0);
  assert.equal((JSON.parse(all.stdout) as { updates: Array<{ name: string }> }).updates[0]!.name, name);
});

test('a slow-starting agent is waited for until it is online', async (t) => {
  const fleet = await fleetFor(t, { servers: 1 });
  if (!fleet) return;
  // Health says "starting" until the test opens s1's gate, once it has seen ten such answers.
  const { db, name } = await plan(fleet, heldInVerify());
  const run = spawnCli(['start', name], { db });
  let ended = false;
  void run.then(() => (ended = true));
  const verifies = async (store: Store) => (await store.getJournal(name, 's1')).filter((s) => s.phase === 'verify' && s.endedAt !== null);
  const store = openStore(db);
  try {
    for (const end = Date.now() + 60_000; (await verifies(store)).length < 10; ) {
      if (ended) assert.fail(`start ended after ${(await verifies(store)).length} health polls, before the agent was online`);
      if (Date.now() > end) assert.fail('health was not polled ten times');
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  } finally {
    await store.close();
  }
  openGate(fleet, 'online', ['s1']);
  const r = await run;
  assert.equal(r.exitCode, 0, String(r.stdout) + String(r.stderr));
  assert.equal(currentCommit(fleet.home('s1')), fleet.upstream.commits.good);
  assert.equal(byName(await statusJson(db, name)).s1!.status, 'success');
  const after = openStore(db);
  try {
    const polls = (await verifies(after)).map((s) => s.exitCode);
    assert.ok(polls.length >= 11, `polled ${polls.length} times`);
    assert.deepEqual(polls.slice(0, 10), Array(10).fill(7), 'the agent said it was starting');
    assert.equal(polls.at(-1), 0, 'and was waited for until it was online');
  } finally {
    await after.close();
  }
});

test('a broken commit is rolled back on the first server and the rollout stops (exit 1)', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  const { commits } = fleet.upstream;
  const { db, name } = await plan(fleet, BROKEN);
  const r = await cli(['start', name], { db });
  assert.equal(r.code, 1, r.stdout + r.stderr);
  const doc = await statusJson(db, name);
  assert.equal(doc.status, 'failure');
  const s = byName(doc);
  assert.equal(s.s1!.status, 'rolled-back');
  assert.match(s.s1!.error ?? '', /not online/);
  assert.equal(s.s2!.status, 'pending', 'nothing after the rolled-back server was touched');
  assert.equal(s.s3!.status, 'pending');
  assert.equal(currentCommit(fleet.home('s1')), commits.base, 'the previous commit is back');
  const health = await fleet.sh('s1', '~/agent/bin/health');
  assert.equal(health.code, 0, 'and online');
  assert.equal(readDeployCount(fleet.home('s2')), 0);
  const logs = await cli(['logs', name, '--server', 's1'], { db });
  assert.equal(logs.code, 0);
  assert.match(logs.stdout, /\[rollback\]/);
  assert.match(logs.stdout, /\[verify-rollback\]/);
});

test('continue_after_rollback goes on after each rolled-back server', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const { db, name } = await plan(fleet, {
    ...BROKEN,
    rollback: { continue_after_rollback: true },
  });
  const r = await cli(['start', name], { db });
  assert.equal(r.code, 1);
  const doc = await statusJson(db, name);
  assert.deepEqual(doc.counts, { total: 2, 'rolled-back': 2 });
  assert.equal(doc.status, 'failure');
});

test('with rollback disabled a failed server stays failed and the rollout stops', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const { commits } = fleet.upstream;
  const { db, name } = await plan(fleet, {
    ...BROKEN,
    rollback: { enabled: false },
  });
  const r = await cli(['start', name], { db });
  assert.equal(r.code, 1);
  const s = byName(await statusJson(db, name));
  assert.equal(s.s1!.status, 'failed');
  assert.equal(s.s2!.status, 'pending');
  assert.equal(currentCommit(fleet.home('s1')), commits.broken, 'nothing was put back');
});

test('a rollback that fails too leaves the server fatal and stops everything', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const { commits } = fleet.upstream;
  const { db, name } = await plan(fleet, {
    ...BROKEN,
    // Roll back to a commit that never comes online either.
    rollback: { commit: commits.broken, continue_after_rollback: true },
  });
  const r = await cli(['start', name], { db });
  assert.equal(r.code, 1);
  const doc = await statusJson(db, name);
  const s = byName(doc);
  assert.equal(s.s1!.status, 'fatal');
  assert.match(s.s1!.error ?? '', /rollback to [0-9a-f]{12} failed/);
  assert.equal(s.s2!.status, 'pending', 'fatal stops even with continue_after_rollback');
  assert.equal(doc.status, 'failure');
});

test('rollback.commit is used instead of the previous commit', async (t) => {
  const fleet = await fleetFor(t, { servers: 1 });
  if (!fleet) return;
  const { commits } = fleet.upstream;
  const { db, name } = await plan(fleet, {
    ...BROKEN,
    rollback: { commit: commits.good },
  });
  await cli(['start', name], { db });
  assert.equal(byName(await statusJson(db, name)).s1!.status, 'rolled-back');
  assert.equal(currentCommit(fleet.home('s1')), commits.good);
});

test('an abbreviated rollback.commit is resolved at plan time: the broken server ends rolled-back, not fatal', async (t) => {
  const fleet = await fleetFor(t, { servers: 1 });
  if (!fleet) return;
  const { commits } = fleet.upstream;
  const { db, name, r: planned } = await plan(fleet, {
    ...BROKEN,
    rollback: { commit: commits.good.slice(0, 7) },
  });
  assert.equal(planned.code, 0, planned.stderr);
  // What the executor runs with: the full commit, as source.commit is.
  const store = openStore(db);
  try {
    assert.equal((await store.getUpdate(name)).settings.rollback.commit, commits.good);
  } finally {
    await store.close();
  }
  const r = await cli(['start', name], { db });
  assert.equal(r.code, 1, r.stdout + r.stderr);
  const s1 = byName(await statusJson(db, name)).s1!;
  assert.equal(s1.status, 'rolled-back', s1.error ?? '');
  assert.equal(currentCommit(fleet.home('s1')), commits.good);
  // An abbreviation that names no commit of the repo is refused like a bad config: exit 2, nothing written.
  const missingDb = join(fleet.root, 'missing-rollback.db');
  const missing = await cli(['plan', '-c', fleet.writeConfig({ name: 'm', rollback: { commit: 'deadbee' } })], { db: missingDb });
  assert.equal(missing.code, 2, missing.stderr);
  assert.match(missing.stderr, /rollback\.commit: deadbee is not a commit of /);
  assert.ok(!existsSync(missingDb), 'no database was written');
});

test('an unknown host key is refused and nothing runs on the server', async (t) => {
  const fleet = await fleetFor(t, { servers: 1 });
  if (!fleet) return;
  const { db, r, name } = await plan(fleet, { ssh: { known_hosts: fleet.knownHostsMissing } });
  assert.equal(r.code, EXIT.unreachable, `its one server unreached: exit 69, the plan recorded\n${r.stderr}`);
  const s = byName(await statusJson(db, name));
  assert.equal(s.s1!.status, 'unreachable');
  assert.match(s.s1!.error ?? '', /is not known/);
  const logs = await cli(['logs', name], { db });
  assert.doesNotMatch(logs.stdout, /\[probe\]/, 'no command was run');
});

test('a host key that changed after planning is refused at start: nothing runs', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const knownHosts = join(fleet.root, 'kh-copy');
  copyFileSync(fleet.knownHosts, knownHosts);
  const { db, name } = await plan(fleet, { ssh: { known_hosts: knownHosts } });
  // The host key "changes": the file now holds a different key for every server.
  copyFileSync(fleet.knownHostsWrong, knownHosts);
  const r = await cli(['start', name], { db });
  assert.equal(r.code, 1);
  const s = byName(await statusJson(db, name));
  assert.equal(s.s1!.status, 'unreachable');
  assert.match(s.s1!.error ?? '', /mismatch|changed|does not match/i);
  assert.equal(readDeployCount(fleet.home('s1')), 0);
  assert.equal(restartCount(fleet.home('s1')), 1, 'only the restart from installing the agent');
});

test('an injection attempt through branch or commit is refused before anything is written or run', async (t) => {
  const fleet = await fleetFor(t, { servers: 1 });
  if (!fleet) return;
  const marker = join(fleet.root, 'pwned');
  for (const source of [
    { branch: `master;touch ${marker}` },
    { branch: `$(touch ${marker})` },
    { commit: `abc1234;touch ${marker}` },
  ]) {
    const db = join(fleet.root, 'inject.db');
    const config = fleet.writeConfig({ source });
    const r = await cli(['plan', '-c', config], { db });
    assert.equal(r.code, 2, JSON.stringify(source));
    assert.match(r.stderr, /source\.(branch|commit)/);
    assert.ok(!existsSync(db), 'no database was written');
    assert.ok(!existsSync(marker));
  }
});

test('a repo path that needs quoting reaches git as one word, bare or inside quotes; one with shell metacharacters is refused', async (t) => {
  const fleet = await fleetFor(t, { servers: 1 });
  if (!fleet) return;
  // A space, a quote or a $() is refused in source.repo before anything is written.
  const marker = join(fleet.root, 'pwned2');
  const hostile = join(fleet.root, `up stream's $(touch ${marker})`);
  cpSync(fleet.upstream.repo, hostile, { recursive: true });
  const refusedDb = join(fleet.root, 'refused.db');
  const refused = await cli(['plan', '-c', fleet.writeConfig({ name: 'h', source: { repo: hostile } })], { db: refusedDb });
  assert.equal(refused.code, 2, refused.stderr);
  assert.match(refused.stderr, /:\d+: source\.repo: .* must not contain whitespace/);
  assert.ok(!existsSync(refusedDb), 'no database was written');
  // Still odd for a shell (a glob, '#', '=', '~'), but a valid path: one word wherever {repo} stands.
  const odd = join(fleet.root, 'up#stream=[1],x~y@z');
  cpSync(fleet.upstream.repo, odd, { recursive: true });
  const db = join(fleet.root, 'q.db');
  const config = fleet.writeConfig({
    name: 'q',
    source: { repo: odd },
    agent: {
      update: [
        'git -C ~/agent/repo fetch --quiet "{repo}" {branch}',
        "git -C ~/agent/repo fetch --quiet '{repo}' {branch}",
        'git -C ~/agent/repo fetch --quiet {repo} {branch}',
        'git -C ~/agent/repo reset --hard --quiet {commit}',
      ],
    },
  });
  const p = await cli(['plan', '-c', config], { db });
  assert.equal(p.code, 0, p.stderr);
  const r = await cli(['start', 'q'], { db });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.ok(!existsSync(marker));
  assert.equal(currentCommit(fleet.home('s1')), fleet.upstream.commits.good);
});

test('bad input exits 2 and changes nothing', async (t) => {
  const fleet = await fleetFor(t, { servers: 1 });
  if (!fleet) return;
  const { db, name } = await plan(fleet);
  // The plan process has exited: SQLite checkpointed its WAL into the main file and removed it
  // as its last connection closed, so the main file alone is the whole database and its bytes
  // are stable. A refused command must leave them exactly so (each run opens the database and
  // closes it again, which checkpoints anything it wrote).
  assert.equal(walBytes(db), 0, 'no WAL left pending after plan');
  const before = readFileSync(db);
  const cases: Array<[string[], RegExp]> = [
    [['start', 'nope'], /no update named "nope"/],
    [['resume', name], /pending, not paused/],
    [['start', name, '--stop-after', 'x'], /--stop-after/],
    [['split', name, '--batches', '0'], /--batches/],
    [['split', name, '--batches', '5'], /empty/],
    [['frobnicate'], /unknown command/],
    [['logs', name, '--server', 'zz'], /no server named/],
    [['logs', name, '--server', 'S1'], /no server named "S1"; did you mean "s1"\?/],
    [['start', `${name}x`], new RegExp(`no update named "${name}x" .*; did you mean "${name}"\\?`)],
    [['plan', '-c', join(fleet.root, 'missing.yaml')], /missing\.yaml/],
  ];
  for (const [args, message] of cases) {
    const r = await cli(args, { db });
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message, args.join(' '));
    assert.equal(walBytes(db), 0, `${args.join(' ')} left a WAL behind`);
    assert.ok(readFileSync(db).equals(before), `${args.join(' ')} changed the database file`);
  }
  assert.equal((await statusJson(db, name)).status, 'pending');
  assert.equal(readDeployCount(fleet.home('s1')), 0);
  const noDb = await cli(['status'], { db: join(fleet.root, 'nothing-here.db') });
  assert.equal(noDb.code, 2);
  assert.ok(!existsSync(join(fleet.root, 'nothing-here.db')), 'a read command never creates a database');
});

test('a config error names the file, the line and the key path, and exits 2', async (t) => {
  const fleet = await fleetFor(t, { servers: 1 });
  if (!fleet) return;
  const config = fleet.writeConfig({ agent: { health: { timeout: 'soon' } } });
  writeFileSync(config, readFileSync(config, 'utf8') + 'rollbak: {}\n');
  const db = join(fleet.root, 'bad.db');
  const r = await cli(['plan', '-c', config], { db });
  assert.equal(r.code, 2);
  assert.ok(r.stderr.includes(config), r.stderr);
  assert.match(r.stderr, /:\d+: agent\.health\.timeout/);
  assert.match(r.stderr, /rollbak.*rollback/);
  assert.ok(!existsSync(db));
});

test('--json: plan and start print only JSON on stdout (progress goes to stderr); status --watch ends with the update', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const db = join(fleet.root, 'json.db');
  const config = fleet.writeConfig({ name: 'j' });
  const p = await cli(['--json', 'plan', '-c', config], { db });
  assert.equal(p.code, 0, p.stderr);
  const planned = JSON.parse(p.stdout) as { name: string; status: string; counts: Record<string, number> };
  assert.equal(planned.status, 'pending');
  assert.deepEqual(planned.counts, { total: 2, pending: 2 });
  assert.match(p.stderr, /probe s1/);
  const r = await cli(['start', 'j', '--json'], { db });
  assert.equal(r.code, 0, r.stderr);
  // NDJSON (test/cli/ndjson.e2e.test.ts): every line a JSON object, the last one the result.
  const events = r.stdout.split('\n').map((l) => JSON.parse(l) as { type: string; status?: string; counts?: Record<string, number> });
  const done = events.at(-1)!;
  assert.equal(done.type, 'result');
  assert.equal(done.status, 'success');
  assert.deepEqual(done.counts, { total: 2, success: 2 });
  assert.match(r.stderr, /s2 success/);
  const w = await cli(['status', 'j', '--watch', '--interval', '1'], { db, timeoutMs: 20_000 });
  assert.equal(w.code, 0, 'watch returns once the update has ended');
  assert.match(w.stdout, /j\s+success/);
});

test('plan: an abbreviated commit is stored in full, an unknown one or branch is refused (exit 2); server_types selects', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  const { commits } = fleet.upstream;
  const db = join(fleet.root, 'abbrev.db');
  const short = await cli(['plan', '-c', fleet.writeConfig({ name: 'a', source: { branch: 'good2', commit: commits.good.slice(0, 8) } })], { db });
  assert.equal(short.code, 0, short.stderr);
  assert.equal((await statusJson(db, 'a')).source.commit, commits.good, 'an ancestor of the branch tip, expanded');
  const unknown = await cli(['plan', '-c', fleet.writeConfig({ name: 'b', source: { commit: 'deadbee' } })], { db });
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /\.yaml:\d+: source\.commit: deadbee is not a commit on branch master/, 'the file and line it was written at');
  const nobranch = await cli(['plan', '-c', fleet.writeConfig({ name: 'c', source: { branch: 'no-such' } })], { db });
  assert.equal(nobranch.code, 2);
  assert.match(nobranch.stderr, /^agent-update: \/\S+\.yaml:\d+: source\.branch: .* has no branch "no-such"/m, 'the file and line it was written at');
  assert.doesNotMatch(nobranch.stderr, /did you mean/, 'nothing near "no-such"');
  const typo = await cli(['plan', '-c', fleet.writeConfig({ name: 'c', source: { branch: 'mastr' } })], { db });
  assert.equal(typo.code, 2);
  assert.match(typo.stderr, /has no branch "mastr"; did you mean "master"\?/);
  const typed = await cli(['plan', '-c', fleet.writeConfig({ name: 'd', server_types: ['db'] })], { db });
  assert.equal(typed.code, 0, typed.stderr);
  assert.deepEqual((await statusJson(db, 'd')).servers.map((s) => s.name), ['s2']);
  const list = await cli(['status', '--json'], { db });
  assert.deepEqual((JSON.parse(list.stdout) as { updates: Array<{ name: string }> }).updates.map((u) => u.name), ['a', 'd']);
});

test('plan refused for a bad --name or a branch the repo does not have writes no database', async (t) => {
  const fleet = await fleetFor(t, { servers: 1 });
  if (!fleet) return;
  const cases: Array<[string[], Record<string, unknown>, RegExp]> = [
    [['--name', 'bad name;x'], {}, /not a valid update name/],
    [[], { source: { branch: 'no-such' } }, /has no branch "no-such"/],
    [[], { source: { commit: 'deadbee' } }, /source\.commit: deadbee is not a commit/],
  ];
  for (const [extra, overrides, message] of cases) {
    const db = join(fleet.root, 'refused.db');
    const r = await cli(['plan', '-c', fleet.writeConfig(overrides), ...extra], { db });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, message);
    assert.ok(!existsSync(db), `${extra.join(' ')} ${JSON.stringify(overrides)}: no database was written`);
  }
});

test('an encrypted key works through its passphrase variable, and no secret reaches the database or the terminal', async (t) => {
  const fleet = await fleetFor(t, { servers: 1 });
  if (!fleet) return;
  const passphrase = 'pass-Phrase-7731-unique';
  const key = join(fleet.root, 'id_encrypted');
  copyFileSync(fleet.identityFile, key);
  const { execa } = await import('execa');
  await execa('ssh-keygen', ['-q', '-p', '-N', passphrase, '-f', key]);
  const body = readFileSync(key, 'utf8').split('\n').filter((l) => l && !l.startsWith('-----'))[1]!;
  const db = join(fleet.root, 'secret.db');
  const config = fleet.writeConfig({ name: 'sec', ssh: { identity_file: key } });
  const env = { AGENT_UPDATE_SSH_PASSPHRASE: passphrase };
  // Without the passphrase no server could be reached: refused up front, not a plan of unreachables.
  const without = await cli(['plan', '-c', config], { db: join(fleet.root, 'nopass.db') });
  assert.equal(without.code, 2, without.stdout + without.stderr);
  assert.match(without.stderr, /cannot plan: identity file .* is encrypted and no passphrase was given: .*AGENT_UPDATE_SSH_PASSPHRASE.*; nothing was run on any server/);
  assert.equal(existsSync(join(fleet.root, 'nopass.db')), false, 'no database written');
  const p = await cli(['plan', '-c', config], { db, env });
  assert.equal(p.code, 0, p.stdout + p.stderr);
  // A start from a shell without it is refused the same way, and the update stays pending.
  const bare = await cli(['start', 'sec'], { db });
  assert.equal(bare.code, 2, bare.stdout + bare.stderr);
  assert.match(bare.stderr, /cannot start sec: identity file .* is encrypted/);
  const untouched = await statusJson(db, 'sec');
  assert.equal(untouched.status, 'pending');
  assert.equal(untouched.servers[0]!.status, 'pending');
  assert.equal(untouched.executor, null, 'no lease left behind');
  const r = await cli(['start', 'sec', '-v'], { db, env });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const logs = await cli(['logs', 'sec'], { db });
  const everything = [p.stdout, p.stderr, r.stdout, r.stderr, logs.stdout, ...['', '-wal', '-shm'].map((x) => {
    try {
      return readFileSync(db + x).toString('latin1');
    } catch {
      return '';
    }
  })].join('\n');
  assert.ok(!everything.includes(passphrase), 'the passphrase appears nowhere');
  assert.ok(!everything.includes(body.slice(0, 40)), 'no private key material appears anywhere');
});

test('an identity file gone after planning: start is refused before any server is touched, and works once it is back', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const key = join(fleet.root, 'id_moved');
  copyFileSync(fleet.identityFile, key);
  const { db, name, r: planned } = await plan(fleet, { ssh: { identity_file: key } });
  assert.equal(planned.code, 0, planned.stderr);
  renameSync(key, `${key}.away`);
  const r = await cli(['start', name], { db });
  assert.equal(r.code, 2, r.stdout + r.stderr);
  assert.match(r.stderr, new RegExp(`cannot start ${name}: cannot read identity file ${key}: it does not exist; nothing was run on any server`));
  const doc = await statusJson(db, name);
  assert.equal(doc.status, 'pending');
  for (const s of doc.servers) assert.equal(s.status, 'pending', `${s.name} was not marked unreachable for our missing key`);
  for (const s of ['s1', 's2']) assert.equal(readDeployCount(fleet.home(s)), 0);
  // Started together with an update whose key is fine, neither starts: the command is refused whole.
  const other = await cli(['plan', '-c', fleet.writeConfig({ name: 'fine' })], { db });
  assert.equal(other.code, 0, other.stderr);
  const both = await cli(['start', 'fine', name], { db });
  assert.equal(both.code, 2, both.stdout + both.stderr);
  assert.match(both.stderr, new RegExp(`cannot start ${name}: cannot read identity file`));
  assert.equal((await statusJson(db, 'fine')).status, 'pending');
  for (const s of ['s1', 's2']) assert.equal(readDeployCount(fleet.home(s)), 0);

  renameSync(`${key}.away`, key);
  const again = await cli(['start', name], { db });
  assert.equal(again.code, 0, again.stdout + again.stderr);
  for (const s of ['s1', 's2']) assert.equal(readDeployCount(fleet.home(s)), 1);
});
