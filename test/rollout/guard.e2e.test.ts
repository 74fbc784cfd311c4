/**
 * Guarding a long rollout (issue 11, items 3 and 4), end to end against the real OpenSSH fleet:
 * a failure budget shared by the batches of a split, as a count and as a percentage, and a
 * health window that catches an agent which answers once and then crash-loops.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { currentCommit } from '../../src/sim/agent.js';
import { byName, cli, fleetFor, statusJson } from '../helpers/cli.js';

/** A broken target that is given up on quickly, rolled back, and the rollout goes on. */
const brokenWithBudget = (maxFailures: number | string) => ({
  source: { branch: 'broken' },
  agent: { health: { timeout: '1500ms', interval: '100ms' } },
  rollback: { continue_after_rollback: true },
  execution: { max_failures: maxFailures },
});

test('a failure budget as a count, shared by the two batches of a split: once spent, neither starts another server', async (t) => {
  const fleet = await fleetFor(t, { servers: 8 });
  if (!fleet) return;
  const db = join(fleet.root, 'plan.db');
  const planned = await cli(['plan', '-c', fleet.writeConfig({ name: 'u', ...brokenWithBudget(2) })], { db });
  assert.equal(planned.code, 0, planned.stderr);
  assert.match(planned.stdout, /budget {3}0 of 2 failures allowed \(execution\.max_failures 2 of 8 servers\)/);
  assert.equal((await cli(['split', 'u', '--batches', '2'], { db })).code, 0);

  const first = await cli(['start', 'u'], { db });
  assert.equal(first.code, 1, first.stdout + first.stderr);
  const u = await statusJson(db, 'u');
  assert.equal(u.status, 'failure');
  assert.match(u.reason!, /the failure budget is spent: 3 servers rolled back or failed, more than the 2 allowed \(execution\.max_failures: 2 of the 8 servers of u and its batches\)/);
  assert.deepEqual(u.servers.map((s) => s.status), ['rolled-back', 'rolled-back', 'rolled-back', 'pending']);
  assert.deepEqual(u.budget, { maxFailures: 2, allowed: 2, used: 3, total: 8, updates: ['u', 'u.2'], exceeded: true });

  const second = await cli(['start', 'u.2'], { db });
  assert.equal(second.code, 1, second.stdout + second.stderr);
  const u2 = await statusJson(db, 'u.2');
  assert.equal(u2.status, 'failure', 'the other batch shares the spent budget');
  assert.deepEqual(u2.servers.map((s) => s.status), ['pending', 'pending', 'pending', 'pending']);
  for (const s of u2.servers) assert.equal(currentCommit(fleet.home(s.name)), fleet.upstream.commits.base, `${s.name} untouched`);
  const text = await cli(['status', 'u.2'], { db });
  assert.match(text.stdout, /budget {3}3 of 2 failures allowed \(execution\.max_failures 2 of 8 servers, shared by u, u\.2\): spent/);
});

test('a failure budget as a percentage, batches in parallel: they stop once the group is past it', async (t) => {
  const fleet = await fleetFor(t, { servers: 8 });
  if (!fleet) return;
  const db = join(fleet.root, 'plan.db');
  // 25% of 8 = 2 failures allowed.
  assert.equal((await cli(['plan', '-c', fleet.writeConfig({ name: 'p', ...brokenWithBudget('25%') })], { db })).code, 0);
  assert.equal((await cli(['split', 'p', '--batches', '2'], { db })).code, 0);
  const r = await cli(['start', 'p', 'p.2'], { db });
  assert.equal(r.code, 1, r.stdout + r.stderr);
  const docs = [await statusJson(db, 'p'), await statusJson(db, 'p.2')];
  for (const d of docs) assert.equal(d.status, 'failure', d.name);
  const rolledBack = docs.flatMap((d) => d.servers).filter((s) => s.status === 'rolled-back').length;
  // The third failure spends it; each batch may finish the one server it had in flight.
  assert.ok(rolledBack >= 3 && rolledBack <= 4, `${rolledBack} rolled back`);
  assert.ok(docs.flatMap((d) => d.servers).some((s) => s.status === 'pending'), 'servers left pending');
  assert.equal(docs[0]!.budget!.maxFailures, '25%');
  assert.equal(docs[0]!.budget!.allowed, 2);
});

test('agent.health.stable_for catches an agent that answers once and then crash-loops: rolled back', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  // online for exactly one health check after each restart, then down: a crash loop
  const flaky = await fleet.upstream.addCommit('flaky', { crashAfterChecks: 1 });
  const db = join(fleet.root, 'plan.db');
  const config = fleet.writeConfig({
    name: 'f',
    source: { branch: 'flaky' },
    agent: { health: { timeout: '20s', interval: '100ms', stable_for: '2s' } },
  });
  assert.equal((await cli(['plan', '-c', config], { db })).code, 0);
  const r = await cli(['start', 'f'], { db });
  assert.equal(r.code, 1, r.stdout + r.stderr);
  const doc = await statusJson(db, 'f');
  const s1 = byName(doc).s1!;
  assert.equal(s1.status, 'rolled-back', s1.error ?? '');
  assert.match(s1.error!, new RegExp(`came online at ${flaky.slice(0, 12)} but did not stay healthy: health exited 7: health: connection refused: agent at ${flaky} crashed after 1 good checks after .*\\(agent\\.health\\.stable_for\\)`));
  assert.equal(currentCommit(fleet.home('s1')), fleet.upstream.commits.base, 'back at its previous commit');
  assert.equal(byName(doc).s2!.status, 'pending', 'the rollout stopped there');
});

test('plan --refresh re-probes only the unreachable servers of a pending or paused update', async (t) => {
  const { renameSync } = await import('node:fs');
  const { openStore } = await import('../helpers/db.js');
  const fleet = await fleetFor(t, { servers: 3, unreachable: 1 });
  if (!fleet) return;
  const db = join(fleet.root, 'plan.db');
  // s2's agent is broken while planning (its version command fails); u1 has nobody listening.
  const repo = join(fleet.home('s2'), 'agent', 'repo');
  renameSync(repo, `${repo}.away`);
  assert.equal((await cli(['plan', '-c', fleet.writeConfig({ name: 'r', ssh: { ...fleet.sshConfigYaml(), connect_timeout: '2s' } })], { db })).code, 0);
  let doc = await statusJson(db, 'r');
  assert.deepEqual(doc.servers.map((s) => [s.name, s.status]), [['s1', 'pending'], ['s2', 'unreachable'], ['s3', 'pending'], ['u1', 'unreachable']]);
  const probesOf = async (name: string) => {
    const store = openStore(db);
    try {
      return (await store.getJournal('r', name)).filter((st) => st.phase === 'probe').length;
    } finally {
      await store.close();
    }
  };
  renameSync(`${repo}.away`, repo);

  const refreshed = await cli(['plan', '--refresh', 'r'], { db });
  assert.equal(refreshed.code, 0, refreshed.stdout + refreshed.stderr);
  assert.match(refreshed.stdout, /re-probed 2 unreachable servers: 1 now pending, 0 already at the target, 1 still unreachable\ncontinue with: agent-update --db \S+ start r/);
  doc = await statusJson(db, 'r');
  assert.deepEqual(doc.servers.map((s) => [s.name, s.status]), [['s1', 'pending'], ['s2', 'pending'], ['s3', 'pending'], ['u1', 'unreachable']]);
  assert.equal(byName(doc).s2!.fromCommit, fleet.upstream.commits.base);
  assert.equal(byName(doc).s2!.error, null);
  assert.equal(await probesOf('s1'), 1, 'a server that was reachable is not probed again');
  assert.equal(await probesOf('s2'), 2);

  // paused: allowed too; as JSON
  assert.equal((await cli(['start', 'r', '--stop-after', '1'], { db })).code, 3);
  const again = await cli(['plan', '--refresh', 'r', '--json'], { db });
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual((JSON.parse(again.stdout) as { refreshed: unknown }).refreshed, { probed: 1, pending: 0, skipped: 0, unreachable: 1, excluded: 0 });
  const r = await cli(['resume', 'r'], { db });
  assert.equal(r.code, 1, 'partial: u1 is still unreachable');
  doc = await statusJson(db, 'r');
  assert.deepEqual(doc.servers.map((s) => s.status), ['success', 'success', 'success', 'unreachable']);

  // an update that ended, and bad usage: exit 2, nothing changed
  const ended = await cli(['plan', '--refresh', 'r'], { db });
  assert.equal(ended.code, 2);
  assert.match(ended.stderr, /cannot refresh update r: it is partial-success; only a pending or paused update/);
  assert.equal((await cli(['plan', '--refresh', 'r', '-c', 'x.yaml'], { db })).code, 2);
  assert.equal((await cli(['plan'], { db })).code, 2);
});

test('every sshd connection cut for a second, twice, in the middle of a rollout: it ends as if nothing had happened', async (t) => {
  const { blip } = await import('../fleet/blip.js');
  const { openStore } = await import('../helpers/db.js');
  const { readDeploys } = await import('../../src/sim/agent.js');
  const fleet = await fleetFor(t, { servers: 5, upstream: { slowDelayMs: 1500 } });
  if (!fleet) return;
  const db = join(fleet.root, 'plan.db');
  // A gate as the last update command, so a cut lands inside the update step: it says it is at
  // the gate, then waits for the test to open it (open from the start on every server but s4).
  const gate = 'touch ~/at-gate; while [ ! -e ~/gate-open ]; do sleep 0.05; done';
  const update = [...(fleet.configObject().agent as { update: string[] }).update, gate];
  const { writeFileSync, existsSync } = await import('node:fs');
  for (const s of ['s1', 's2', 's3', 's5']) writeFileSync(join(fleet.home(s), 'gate-open'), '');
  // and a gate in front of the health check, so the first cut lands while s2 is verifying
  const health = '[ -e ~/health-open ] && ~/agent/bin/health';
  for (const s of ['s1', 's3', 's4', 's5']) writeFileSync(join(fleet.home(s), 'health-open'), '');
  const config = fleet.writeConfig({ name: 'b', source: { branch: 'slow' }, agent: { update, health: { command: health, timeout: '60s', interval: '100ms' } } });
  assert.equal((await cli(['plan', '-c', config], { db })).code, 0);
  assert.deepEqual((await statusJson(db, 'b')).servers.map((s) => s.error), [null, null, null, null, null]);
  const { spawnCli } = await import('../helpers/cli.js');
  const run = spawnCli(['start', 'b'], { db });
  const at = async (server: string, step: string) => {
    for (let i = 0; i < 2400; i++) {
      const store = openStore(db);
      try {
        const s = (await store.getServers('b')).find((x) => x.name === server)!;
        if (s.status === 'running' && s.step === step) return;
      } finally {
        await store.close();
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    run.kill();
    const out = await run;
    throw new Error(`${server} never reached ${step}: ${String(out.stdout)} ${String(out.stderr)}`);
  };
  await at('s2', 'verify');
  const first = await blip(fleet.root, 1000);
  writeFileSync(join(fleet.home('s2'), 'health-open'), '');
  await at('s4', 'update');
  for (let i = 0; i < 2400 && !existsSync(join(fleet.home('s4'), 'at-gate')); i++) await new Promise((r) => setTimeout(r, 25));
  const second = await blip(fleet.root, 1000);
  writeFileSync(join(fleet.home('s4'), 'gate-open'), '');
  assert.ok(first >= 1 && second >= 1, `connections cut: ${first}, ${second}`);
  assert.match(String((await run).stdout), /connection lost to s4 \(connection lost: .*\); reconnecting for up to 30s/);
  const r = await run;
  assert.equal(r.exitCode, 0, String(r.stdout) + String(r.stderr));
  const doc = await statusJson(db, 'b');
  assert.equal(doc.status, 'success');
  assert.deepEqual(doc.servers.map((s) => s.status), ['success', 'success', 'success', 'success', 'success']);
  for (const s of doc.servers) {
    assert.equal(currentCommit(fleet.home(s.name)), fleet.upstream.commits.slow, s.name);
    assert.ok(readDeploys(fleet.home(s.name)).length <= 2, `${s.name} deployed at most twice (a cut update command runs again)`);
  }
  // the cuts happened where they were aimed, and were lived through: a lost health check each
  const store = openStore(db);
  try {
    const cutChecks = (await store.getJournal('b', 's2')).filter((st) => st.phase === 'verify' && /connection lost/.test(st.error ?? ''));
    assert.ok(cutChecks.length >= 1, 's2: a health check was cut');
    const cutUpdates = (await store.getJournal('b', 's4')).filter((st) => st.phase === 'update' && /connection lost/.test(st.error ?? ''));
    assert.deepEqual(cutUpdates.map((st) => st.command), [gate], 's4: the update command that was cut, then run again');
    assert.equal((await store.getJournal('b', 's4')).filter((st) => st.command === gate && st.exitCode === 0).length, 1);
  } finally {
    await store.close();
  }
});
