/**
 * `freeze` and `unfreeze` through the real CLI (issue 25 §4), on a plan made through the store (no
 * fleet: a refused start touches no server): --reason is required; a freeze is recorded with who
 * and why (a config whose key file is missing here still freezes: nothing connects); a second
 * freeze changes nothing; `start` is refused with exit 3 naming who froze it, when and why, with
 * nothing written, and `auto` too; `status` shows it (text and JSON); `unfreeze` lifts it, a second one is exit
 * 0 saying it was not frozen; `history -c` shows the freeze and its lifting.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { actor } from '../../src/util/actor.js';
import { cli } from '../helpers/cli.js';
import { contents, openStore, withStore } from '../helpers/db.js';
import { tempDirFor } from '../helpers/tmp.js';
import { newUpdate } from '../store/contract.js';

test('freeze, a refused start (exit 3, nothing written), status, unfreeze and history -c through the CLI', async (t) => {
  const dir = tempDirFor(t, 'agent-update-freeze-cli-');
  const db = join(dir, 'plan.db');
  const config = join(dir, 'rollout.yaml');
  writeFileSync(
    config,
    `source: { repo: https://github.com/example/agent.git, branch: master }
servers: [{ name: app1, host: 10.0.0.11 }]
ssh: { identity_file: keys/missing-here, known_hosts: known_hosts }
agent:
  version_command: git rev-parse HEAD
  update: [git fetch]
  health: { command: 'true' }
`,
  );
  const env = { HOME: dir };

  // no reason: exit 2, and no database made
  const bare = await cli(['freeze', '-c', config], { db, env });
  assert.equal(bare.code, 2, bare.stderr);
  assert.match(bare.stderr, /freeze needs --reason TEXT/);
  assert.equal(existsSync(db), false);

  // an update of the same repo, written another way, planned before the freeze
  const store = openStore(db);
  await store.createUpdate(newUpdate('u1', 1, { repo: 'git@github.com:example/agent', configFile: config }));
  await store.setUpdateStatus('u1', 'pending');
  await store.close();

  const f = await cli(['--json', 'freeze', '-c', config, '--reason', 'incident 42'], { db, env });
  assert.equal(f.code, 0, f.stderr);
  const doc = JSON.parse(f.stdout) as { frozen: boolean; created: boolean; repoKey: string; freeze: { reason: string; frozenBy: string; frozenAt: string }; updates: Array<{ name: string }> };
  assert.deepEqual([doc.frozen, doc.created, doc.repoKey, doc.freeze.reason, doc.freeze.frozenBy], [true, true, 'github.com/example/agent', 'incident 42', actor()]);
  assert.deepEqual(doc.updates.map((u) => u.name), ['u1']);
  const again = await cli(['freeze', '-c', config, '--reason', 'something else'], { db, env });
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /already frozen by .* at .*: incident 42; nothing changed/);

  const before = await withStore(db, (s) => contents(s));
  const start = await cli(['start', 'u1'], { db, env });
  assert.equal(start.code, 3, start.stdout + start.stderr);
  assert.ok(
    start.stderr.includes(`cannot start u1: deploys of https://github.com/example/agent.git are frozen by ${actor()} at ${doc.freeze.frozenAt}: incident 42; nothing was started or changed`),
    start.stderr,
  );
  assert.match(start.stderr, /Lift the freeze with `agent-update --db \S+ unfreeze -c \S+rollout\.yaml`/);
  assert.equal(await withStore(db, (s) => contents(s)), before, 'nothing written');

  // auto of the config (its files there now, as auto needs them): exit 3 before it plans, resolves or connects
  mkdirSync(join(dir, 'keys'));
  writeFileSync(join(dir, 'keys', 'missing-here'), '');
  writeFileSync(join(dir, 'known_hosts'), '');
  const auto = await cli(['--json', 'auto', '-c', config], { db, env });
  assert.equal(auto.code, 3, auto.stdout + auto.stderr);
  const line = JSON.parse(auto.stdout) as { type: string; outcome: string; message: string; exitCode: number };
  assert.deepEqual([line.type, line.outcome, line.exitCode], ['auto', 'frozen', 3]);
  assert.match(line.message, /^deploys of https:\/\/github\.com\/example\/agent\.git are frozen by \S+ at \S+: incident 42; nothing planned or started, no server touched/);
  assert.equal(await withStore(db, (s) => contents(s)), before, 'auto wrote nothing either');

  const status = await cli(['status'], { db, env });
  assert.match(status.stdout, /^FROZEN: deploys of https:\/\/github\.com\/example\/agent\.git by \S+ at \S+: incident 42/);
  const one = JSON.parse((await cli(['--json', 'status', 'u1'], { db, env })).stdout) as { frozen?: { reason: string } };
  assert.equal(one.frozen?.reason, 'incident 42');

  const un = await cli(['unfreeze', '-c', config], { db, env });
  assert.equal(un.code, 0, un.stderr);
  assert.match(un.stdout, /are no longer frozen \(frozen by .*: incident 42; lifted by /);
  const unAgain = await cli(['unfreeze', '-c', config], { db, env });
  assert.equal(unAgain.code, 0);
  assert.match(unAgain.stdout, /are not frozen; nothing changed/);
  assert.equal(JSON.parse((await cli(['--json', 'status', 'u1'], { db, env })).stdout).frozen, undefined);

  const h = await cli(['history', '-c', config], { db, env });
  assert.equal(h.code, 0, h.stderr);
  assert.deepEqual(h.stdout.split('\n').slice(2).map((l) => l.trim().split(/\s+/)[1]), ['u1', '(freeze)', '(unfreeze)']);
});
