/**
 * `agent-update restart -c FILE` end to end (issue 25 §4.3) on the real OpenSSH fleet: a rolling
 * restart planned and started in one step, each server restarted once and verified at the commit
 * it runs, no code change; `--no-start` plans it for review (`plan --show-commands`) and `start`.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { currentCommit, readDeployCount, restartCount } from '../../src/sim/agent.js';
import { byName, cli, sharedFleet, statusJson } from '../helpers/cli.js';

const fleetFor = sharedFleet({ servers: 3 });

test('restart -c FILE: every server restarted exactly once, one at a time, verified at the commit it runs; nothing deployed', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  const { base, good } = fleet.upstream.commits;
  await fleet.setCommit('s2', good);
  const db = join(fleet.root, 'plan.db');
  const config = fleet.writeConfig({ restart: ['web', 'workers'] });
  const before = Object.fromEntries(['s1', 's2', 's3'].map((s) => [s, { web: restartCount(fleet.home(s), 'web'), workers: restartCount(fleet.home(s), 'workers') }]));

  const r = await cli(['restart', '-c', config, '--name', 'bounce'], { db });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /planned restart bounce: 3 servers, one at a time, each restarted and verified at the commit it runs; starting it/);
  const doc = await statusJson(db, 'bounce');
  assert.equal(doc.status, 'success', doc.reason ?? '');
  assert.equal(doc.restartOnly, true);
  const s = byName(doc);
  const at = { s1: base, s2: good, s3: base } as const;
  for (const name of ['s1', 's2', 's3'] as const) {
    assert.equal(s[name]!.status, 'success', `${name}: ${s[name]!.error ?? ''}`);
    assert.equal(s[name]!.fromCommit, at[name]);
    assert.equal(s[name]!.toCommit, at[name], `${name} stays at its own commit`);
    assert.equal(currentCommit(fleet.home(name)), at[name], `${name}'s commit unchanged`);
    assert.equal(restartCount(fleet.home(name), 'web'), before[name]!.web + 1, `${name}: exactly one web restart`);
    assert.equal(restartCount(fleet.home(name), 'workers'), before[name]!.workers + 1, `${name}: exactly one workers restart`);
    assert.equal(readDeployCount(fleet.home(name)), 0, `${name}: nothing deployed`);
  }
  assert.equal(doc.source.commit, base, 'the commit most of its servers run');
  const shown = await cli(['status', 'bounce'], { db });
  assert.match(shown.stdout, /restart {2}a rolling restart, no code change/);

  // --no-start: planned (pending) for a look at its commands, then started as any update
  const p = await cli(['restart', '-c', config, '--limit', 's1', '--no-start', '--name', 'one'], { db });
  assert.equal(p.code, 0, p.stdout + p.stderr);
  assert.match(p.stdout, /run it with: .*start one/);
  const cmds = await cli(['plan', '--show-commands', 'one'], { db });
  assert.equal(cmds.code, 0, cmds.stderr);
  assert.match(cmds.stdout, /a rolling restart, each server restarted and verified at the commit it runs/);
  assert.match(cmds.stdout, /restart +~\/agent\/bin\/restart web\n +~\/agent\/bin\/restart workers/);
  assert.doesNotMatch(cmds.stdout, /reset --hard|repo fetch|deploys\.log/, 'no update command');
  assert.equal((await cli(['start', 'one'], { db })).code, 0);
  assert.equal(restartCount(fleet.home('s1'), 'web'), before.s1!.web + 2);
  assert.equal(restartCount(fleet.home('s2'), 'web'), before.s2!.web + 1, 's2 was not in --limit s1');
});
