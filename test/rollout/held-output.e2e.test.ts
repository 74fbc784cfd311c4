/**
 * The background-agent mistake (issue 20), through the CLI on the real sshd fleet: a restart
 * command that starts something in the background with its output still on the session
 * (`nohup agent &` without a redirect) fails its step with the fix in the message, instead of
 * passing verify with an agent that dies of SIGPIPE when the session closes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { byName, cli, planned, sharedFleet, statusJson } from '../helpers/cli.js';

const fleetFor = sharedFleet({ servers: 1 });

test('a restart that leaves a process holding its output fails, saying to redirect it; with a redirect the same restart succeeds', async (t) => {
  const fleet = await fleetFor(t, { servers: 1 });
  if (!fleet) return;
  const held = await planned(fleet, { agent: { restart: { web: '~/agent/bin/restart web; nohup sleep 30 &' } } }, 'held');
  const r = await cli(['start', 'held'], { db: held.db });
  assert.equal(r.code, 1, r.stdout + r.stderr);
  const s1 = byName(await statusJson(held.db, 'held')).s1!;
  assert.match(s1.error ?? '', /^restart web failed: the command ended but left a process holding its output \(pid \d+: \S+\); it would die of SIGPIPE .*redirect its output \(e\.g\. `nohup agent >agent\.log 2>&1 &`\)/);
  // the rollback restarts with the same command, and fails the same way: a person must look
  assert.equal(s1.status, 'fatal');

  await fleet.reset();
  const redirected = await planned(fleet, { agent: { restart: { web: '~/agent/bin/restart web; nohup sleep 30 >/dev/null 2>&1 &' } } }, 'redirected', `${fleet.root}/other.db`);
  const ok = await cli(['start', 'redirected'], { db: redirected.db });
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  assert.equal(byName(await statusJson(redirected.db, 'redirected')).s1!.status, 'success');
});
