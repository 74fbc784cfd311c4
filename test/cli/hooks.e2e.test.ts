/**
 * Hooks end to end (docs/guide/unattended.md#hooks): the real CLI against a real sshd fleet, the
 * hooks real commands on this machine. A hook that appends every event to a file holds exactly
 * the events of the `--json` stream of the same run; a required hook that fails on
 * update-started pauses the update before any server is touched.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { agentCommands, currentCommit, readDeployCount } from '../../src/sim/agent.js';
import { LOCK_FILE } from '../../src/rollout/remote-lock.js';
import { cli, sharedFleet, statusJson } from '../helpers/cli.js';
import { openGate } from '../helpers/gates.js';

const fleetFor = sharedFleet({ servers: 3 });

type Line = Record<string, unknown> & { type: string };

const parse = (text: string): Line[] =>
  text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Line);

test('a hook that appends every event to a file holds exactly the events of a rollout with a rollback, in order', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  const { commits } = fleet.upstream;
  const file = join(fleet.root, 'events.ndjson');
  const defaults = join(fleet.root, 'hook-events');
  // s2 refuses the target in its update step, so it is rolled back; the rollout goes on to s3
  const refuse = `if [ -e ~/gates/refuse ] && [ {commit} = ${commits.good} ]; then echo 'refused by the test' >&2; exit 9; fi`;
  const config = fleet.writeConfig({
    name: 'hooked',
    agent: { update: [...agentCommands().update, refuse] },
    rollback: { continue_after_rollback: true },
    hooks: [
      { run: `cat >> '${file}'`, events: 'all' },
      { run: `printf '%s %s\\n' "$AGENT_UPDATE_HOOK_EVENT" "$AGENT_UPDATE_SERVER" >> '${defaults}'` },
    ],
  });
  openGate(fleet, 'refuse', ['s2']);
  const db = join(fleet.root, 'plan.db');
  const p = await cli(['plan', '-c', config], { db });
  assert.equal(p.code, 0, p.stderr);

  const r = await cli(['start', 'hooked', '--json'], { db });
  assert.equal(r.code, 1, r.stderr);
  assert.doesNotMatch(r.stderr, /hook failed/);
  const stream = r.stdout.split('\n');
  assert.equal(JSON.parse(stream.at(-1)!).type, 'result');
  // every line of the stream but the result, byte for byte, in the same order
  assert.equal(readFileSync(file, 'utf8'), stream.slice(0, -1).map((l) => `${l}\n`).join(''));
  const events = parse(readFileSync(file, 'utf8'));
  assert.ok(events.length > 20, `${events.length} events`);
  assert.deepEqual(
    events.filter((e) => e.type === 'server-finished').map((e) => `${String(e.server)} ${String(e.status)}`),
    ['s1 success', 's2 rolled-back', 's3 success'],
  );
  assert.ok(events.some((e) => e.type === 'server-step' && e.step === 'rollback'), 'the rollback is in it');

  // the hook with the default events: only the hook events, the server named where there is one
  assert.equal(readFileSync(defaults, 'utf8'), 'update-started \nserver-rolled-back s2\nfinished \n');
  assert.equal((await statusJson(db, 'hooked')).status, 'partial-success');
});

test('a required before-hook that fails stops the update before any server is touched', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  const { commits } = fleet.upstream;
  const seen = join(fleet.root, 'seen.ndjson');
  const config = fleet.writeConfig({
    name: 'frozen',
    hooks: [
      { run: 'echo "change freeze until Monday" >&2; exit 1', required: true, events: ['update-started'] },
      { run: `cat >> '${seen}'`, events: ['update-started', 'paused', 'finished'] },
    ],
  });
  const db = join(fleet.root, 'plan.db');
  const p = await cli(['plan', '-c', config], { db });
  assert.equal(p.code, 0, p.stderr);

  const r = await cli(['start', 'frozen', '--json'], { db });
  assert.equal(r.code, 3, r.stderr);
  const lines = parse(r.stdout);
  assert.deepEqual(
    lines.map((l) => l.type),
    ['update-started', 'hook-failed', 'update-finished', 'result'],
  );
  const failed = lines[1]!;
  assert.deepEqual(
    { hook: failed.hook, target: failed.target, event: failed.event, hookEvent: failed.hookEvent, required: failed.required, error: failed.error },
    { hook: 0, target: 'run: echo "change freeze until Monday" >&2; exit 1', event: 'update-started', hookEvent: 'update-started', required: true, error: 'exit 1: change freeze until Monday' },
  );
  assert.equal(lines[2]!.status, 'paused');
  assert.match(r.stderr, /hook failed: hooks\[0\] \(run: echo "change freeze until Monday" >&2; exit 1\) on update-started: exit 1: change freeze until Monday \(required: the update pauses\)/);

  const doc = await statusJson(db, 'frozen');
  assert.equal(doc.status, 'paused');
  assert.match(doc.reason ?? '', /^pause requested by required hook hooks\[0\] .* which failed on update-started: exit 1: change freeze until Monday/);
  assert.deepEqual(
    doc.servers.map((s) => [s.name, s.status, s.startedAt]),
    [['s1', 'pending', null], ['s2', 'pending', null], ['s3', 'pending', null]],
  );
  for (const s of ['s1', 's2', 's3']) {
    assert.equal(currentCommit(fleet.home(s)), commits.base, `${s} untouched`);
    assert.equal(readDeployCount(fleet.home(s)), 0);
    assert.equal(existsSync(join(fleet.home(s), LOCK_FILE)), false, `no lock was ever taken on ${s}`);
  }
  // the other hook heard the start and the pause; `logs` has the failure
  assert.deepEqual(parse(readFileSync(seen, 'utf8')).map((l) => `${l.type} ${String(l.status ?? '')}`.trim()), ['update-started', 'update-finished paused']);
  const logs = await cli(['logs', 'frozen'], { db });
  assert.match(logs.stdout, /hooks\[0\] \(run: echo .*\) failed on update-started: exit 1: change freeze until Monday \(required: the update pauses\)/);
});
