/**
 * The database found from anywhere (issue 12, item 3): without --db, the plan database is
 * $AGENT_UPDATE_DB, else one per user in the XDG state directory, so `status` and `pause` in
 * another directory find what `plan` wrote; every command that writes says on stderr which
 * database it used.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import type { Fleet } from '../fleet/fleet.js';
import { cli, sharedFleet, statusJson } from '../helpers/cli.js';
import { tempDirFor } from '../helpers/tmp.js';

const fleetFor = sharedFleet({ servers: 2 });

/** Two working directories, a state directory and a home, all new and empty. */
function places(t: TestContext): { a: string; b: string; state: string; home: string } {
  const root = tempDirFor(t, 'agent-update-default-db-');
  const p = { a: join(root, 'a'), b: join(root, 'b'), state: join(root, 'state'), home: join(root, 'home') };
  for (const d of Object.values(p)) mkdirSync(d);
  return p;
}

const NOTICE = /^database: (.+)$/m;

test('without --db: plan in one directory, start, status, pause and resume in others use the same per-user database', async (t) => {
  const fleet: Fleet | null = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const { a, b, state, home } = places(t);
  const env = { XDG_STATE_HOME: state, HOME: home };
  const db = join(state, 'agent-update', 'agent-update.db');
  const config = fleet.writeConfig({ name: 'u1', test_mode: { stop_after: 0 } });

  const planned = await cli(['plan', '-c', config], { cwd: a, env });
  assert.equal(planned.code, 0, planned.stderr);
  assert.ok(existsSync(db), 'the database is in $XDG_STATE_HOME/agent-update');
  assert.equal(statSync(join(state, 'agent-update')).mode & 0o777, 0o700, 'its folder is private to the user');
  assert.equal(NOTICE.exec(planned.stderr)?.[1], `${db} (the per-user default, in $XDG_STATE_HOME)`);
  assert.doesNotMatch(planned.stdout, /^database:/m, 'the notice is on stderr only');
  // The suggested command needs no --db: it finds the same database.
  assert.match(planned.stdout, /run it with: agent-update start u1$/m);

  const started = await cli(['start', 'u1', '--stop-after', '1'], { cwd: b, env });
  assert.equal(started.code, 3, started.stdout + started.stderr);
  assert.match(started.stderr, NOTICE);

  const status = await cli(['status', 'u1', '--json'], { cwd: b, env });
  assert.equal(status.code, 0, status.stderr);
  assert.equal((JSON.parse(status.stdout) as { status: string }).status, 'paused');
  assert.doesNotMatch(status.stderr, NOTICE, 'a read-only command does not announce the database');

  const paused = await cli(['pause', 'u1'], { cwd: a, env });
  assert.equal(paused.code, 0, paused.stderr);
  assert.match(paused.stdout, /u1 is already paused/);
  assert.equal(NOTICE.exec(paused.stderr)?.[1], `${db} (the per-user default, in $XDG_STATE_HOME)`);

  const resumed = await cli(['resume', 'u1'], { cwd: a, env });
  assert.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
  assert.equal((await statusJson(db, 'u1')).status, 'success');
  for (const dir of [a, b]) assert.deepEqual(readdirSync(dir), [], `nothing written in the working directory ${dir}`);
  assert.deepEqual(readdirSync(home), [], 'nothing in ~/.local/state while $XDG_STATE_HOME is set');
});

test('$AGENT_UPDATE_DB comes before the XDG state directory, and --db before both', async (t) => {
  const fleet = await fleetFor(t, { servers: 1 });
  if (!fleet) return;
  const { a, b, state, home } = places(t);
  const chosen = join(b, 'chosen.db');
  const env = { XDG_STATE_HOME: state, HOME: home, AGENT_UPDATE_DB: chosen };
  const config = fleet.writeConfig({ name: 'u1' });

  const planned = await cli(['plan', '-c', config, '--json'], { cwd: a, env });
  assert.equal(planned.code, 0, planned.stderr);
  assert.equal((JSON.parse(planned.stdout) as { name: string }).name, 'u1', 'stdout is JSON alone');
  assert.equal(NOTICE.exec(planned.stderr)?.[1], `${chosen} (from $AGENT_UPDATE_DB)`);
  assert.ok(existsSync(chosen));
  assert.ok(!existsSync(join(state, 'agent-update')), 'the XDG state directory is not used, not even made');

  // Without $AGENT_UPDATE_DB the per-user database is looked for, and it does not exist.
  const elsewhere = await cli(['status', 'u1'], { cwd: a, env: { XDG_STATE_HOME: state, HOME: home } });
  assert.equal(elsewhere.code, 2);
  assert.match(elsewhere.stderr, new RegExp(`no plan database at ${join(state, 'agent-update', 'agent-update.db')} \\(the per-user default, in \\$XDG_STATE_HOME\\)`));
  assert.match(elsewhere.stderr, /--db PATH \(or set \$AGENT_UPDATE_DB\)/);
  assert.ok(!existsSync(join(state, 'agent-update')), 'a read-only command creates nothing');

  // --db wins over $AGENT_UPDATE_DB.
  const other = join(a, 'other.db');
  const viaFlag = await cli(['--db', other, 'status'], { cwd: b, env });
  assert.equal(viaFlag.code, 2);
  assert.match(viaFlag.stderr, new RegExp(`no plan database at ${other} \\(from --db\\)`));
  const viaEnv = await cli(['cancel', 'u1'], { cwd: a, env });
  assert.equal(viaEnv.code, 0, viaEnv.stderr);
  assert.equal(NOTICE.exec(viaEnv.stderr)?.[1], `${chosen} (from $AGENT_UPDATE_DB)`);
  assert.equal((await statusJson(chosen, 'u1')).status, 'cancelled');
});

test('a relative $XDG_STATE_HOME is ignored: the database is in ~/.local/state', async (t) => {
  const fleet = await fleetFor(t, { servers: 1 });
  if (!fleet) return;
  const { a, home } = places(t);
  const env = { XDG_STATE_HOME: 'relative/state', HOME: home };
  const db = join(home, '.local', 'state', 'agent-update', 'agent-update.db');
  const planned = await cli(['plan', '-c', fleet.writeConfig({ name: 'u1' })], { cwd: a, env });
  assert.equal(planned.code, 0, planned.stderr);
  assert.ok(existsSync(db));
  assert.equal(NOTICE.exec(planned.stderr)?.[1], `${db} (the per-user default, in ~/.local/state)`);
  assert.deepEqual(readdirSync(a), [], 'no relative/state made in the working directory');
  const unset = await cli(['status', 'u1', '--json'], { cwd: a, env: { XDG_STATE_HOME: '', HOME: home } });
  assert.equal(unset.code, 0, 'an empty $XDG_STATE_HOME is unset: the same database');
});

test('the notice names the --db given, goes to stderr, and -q leaves it out', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const db = join(fleet.root, 'plan.db');
  const config = fleet.writeConfig({ name: 'u1' });
  const quiet = await cli(['-q', 'plan', '-c', config], { db });
  assert.equal(quiet.code, 0, quiet.stderr);
  assert.doesNotMatch(quiet.stderr, NOTICE);
  const split = await cli(['split', 'u1', '--batches', '2', '--json'], { db });
  assert.equal(split.code, 0, split.stderr);
  assert.equal(NOTICE.exec(split.stderr)?.[1], db, 'an explicit --db is named as given, nothing more');
  assert.deepEqual(JSON.parse(split.stdout), { updates: ['u1', 'u1.2'] });
  const logs = await cli(['logs', 'u1'], { db });
  assert.equal(logs.code, 0, logs.stderr);
  assert.doesNotMatch(logs.stderr + logs.stdout, NOTICE);
});
