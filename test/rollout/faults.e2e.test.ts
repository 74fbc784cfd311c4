/**
 * Faults during a rollout: a server that never answers, a command that hangs, a connection that
 * dies mid-command, and kill -9 while rolling back. Whatever happens, the tool ends, records an
 * outcome, and never touches what it should not.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { stringify } from 'yaml';
import { generateKeyPair } from '../../src/sim/keys.js';
import { agentCommands, currentCommit, installAgent, readDeployCount } from '../../src/sim/agent.js';
import { startSimServer } from '../../src/sim/ssh-server.js';
import { createUpstream } from '../../src/sim/upstream.js';
import { byName, cli, printed, sharedFleet, spawnCli, statusJson } from '../helpers/cli.js';
import { openGate, waitGate } from '../helpers/gates.js';
import { tempDirFor } from '../helpers/tmp.js';
import { openStore } from '../helpers/db.js';

/** One sshd fleet for the file; each test sees its first servers, reset (test/helpers/cli.ts). */
const fleetFor = sharedFleet({ servers: 2, hanging: 2 });

test('a server that accepts TCP but never answers is unreachable within the connect timeout', async (t) => {
  const fleet = await fleetFor(t, { servers: 1, hanging: 1 });
  if (!fleet) return;
  const db = join(fleet.root, 'h.db');
  const config = fleet.writeConfig({ name: 'h', ssh: { connect_timeout: '1500ms' } });
  const began = Date.now();
  const r = await cli(['plan', '-c', config], { db });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(Date.now() - began < 30_000, 'the plan did not hang');
  const s = byName(await statusJson(db, 'h'));
  assert.equal(s.h1!.status, 'unreachable');
  assert.match(s.h1!.error ?? '', /tim/i);
  assert.equal(s.s1!.status, 'pending');
});

test('a health command that hangs is cut by command_timeout: the server is rolled back or fatal, never stuck', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const db = join(fleet.root, 'hang.db');
  const config = fleet.writeConfig({
    name: 'hang',
    ssh: { command_timeout: '1s' },
    agent: { health: { command: 'sleep 60; ~/agent/bin/health', timeout: '3s', interval: '200ms' } },
  });
  assert.equal((await cli(['plan', '-c', config], { db })).code, 0);
  const began = Date.now();
  const r = await cli(['start', 'hang'], { db, timeoutMs: 90_000 });
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.ok(Date.now() - began < 60_000);
  const s = byName(await statusJson(db, 'hang'));
  assert.equal(s.s1!.status, 'fatal', 'the rollback verifies with the same hanging command');
  assert.match(s.s1!.error ?? '', /timed out after 1s/);
  assert.equal(s.s2!.status, 'pending');
});

test('a connection that dies mid-command: reconnected and the command run again, the server ends as if nothing happened', async (t) => {
  const root = tempDirFor(t, 'agent-update-fault-');
  const upstream = await createUpstream(join(root, 'upstream'));
  const home = join(root, 'home');
  mkdirSync(home);
  await installAgent(home, upstream.repo, upstream.commits.base);
  const keys = generateKeyPair('ed25519');
  const keyFile = join(root, 'id');
  writeFileSync(keyFile, keys.private);
  chmodSync(keyFile, 0o600);
  // The first `restart web` hangs and the connection is cut under it; later ones work.
  let restarts = 0;
  const server = await startSimServer({
    authorizedKey: keys.public,
    home,
    behaviour: {
      hangCommands: { test: (c: string) => /restart web/.test(c) && restarts++ === 0 } as unknown as RegExp,
      dieAfterMs: 1500,
    },
  });
  t.after(() => server.close());
  writeFileSync(join(root, 'known_hosts'), server.hostKeyLine + '\n');
  const config = join(root, 'c.yaml');
  writeFileSync(
    config,
    stringify({
      name: 'die',
      source: { repo: upstream.repo, branch: 'master' },
      servers: [{ name: 'sim', host: server.host, port: server.port }],
      ssh: { identity_file: keyFile, known_hosts: join(root, 'known_hosts'), agent: false, connect_timeout: '3s', command_timeout: '20s' },
      agent: { ...agentCommands(), health: { ...agentCommands().health, timeout: '5s', interval: '100ms' } },
      restart: ['web'],
    }),
  );
  const db = join(root, 'die.db');
  assert.equal((await cli(['plan', '-c', config], { db })).code, 0);
  const r = await cli(['start', 'die'], { db, timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /connection lost to sim \(connection lost: .*\); reconnecting for up to 30s/);
  const s = byName(await statusJson(db, 'die'));
  assert.equal(s.sim!.status, 'success', s.sim!.error ?? '');
  assert.equal(currentCommit(home), upstream.commits.good);
  assert.ok(server.connections() >= 3, 'probe, the rollout, and a new connection after the loss');
  // the journal shows the cut command and the run that followed it
  const store = openStore(db);
  try {
    const restarts = (await store.getJournal('die', 'sim')).filter((st) => st.phase === 'restart');
    assert.deepEqual(restarts.map((st) => [st.exitCode, /connection lost/.test(st.error ?? '')]), [[null, true], [0, false]]);
    assert.ok((await store.getEvents('die')).some((e) => e.kind === 'connection' && /connected again after/.test(e.message)));
  } finally {
    await store.close();
  }
});

test('kill -9 while rolling back: start runs the rollback again and verifies it; nothing else is touched', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const db = join(fleet.root, 'rb.db');
  // The rollback (update commands with {commit} = base) waits at the `rollback` gate: s1 is held
  // in its rollback until the test opens it.
  const { base } = fleet.upstream.commits;
  const update = [...agentCommands().update, `[ {commit} != '${base}' ] || ${waitGate('rollback')}`];
  const config = fleet.writeConfig({
    name: 'rb',
    source: { branch: 'broken' },
    agent: { update, health: { timeout: '500ms', interval: '100ms' } },
  });
  assert.equal((await cli(['plan', '-c', config], { db })).code, 0);
  const run = spawnCli(['start', 'rb'], { db });
  const store = openStore(db);
  try {
    for (const end = Date.now() + 60_000; ; ) {
      const s1 = (await store.getServers('rb')).find((s) => s.name === 's1')!;
      if (s1.step === 'rollback') break;
      if (Date.now() > end) throw new Error('never reached the rollback');
      await new Promise((r) => setTimeout(r, 25));
    }
  } finally {
    await store.close();
  }
  run.kill('SIGKILL');
  await run;
  assert.equal(byName(await statusJson(db, 'rb')).s1!.status, 'running');
  openGate(fleet, 'rollback', ['s1']);
  const r = await cli(['start', 'rb'], { db });
  assert.equal(r.code, 1, r.stdout + r.stderr);
  const s = byName(await statusJson(db, 'rb'));
  assert.equal(s.s1!.status, 'rolled-back');
  assert.equal(currentCommit(fleet.home('s1')), fleet.upstream.commits.base);
  const health = await fleet.sh('s1', '~/agent/bin/health');
  assert.equal(health.code, 0);
  assert.equal(s.s2!.status, 'pending');
  assert.equal(readDeployCount(fleet.home('s2')), 0);
});

test('a server whose version_command fails at the re-check is left untouched (unreachable) and the rollout goes on', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const db = join(fleet.root, 'rc.db');
  assert.equal((await cli(['plan', '-c', fleet.writeConfig({ name: 'rc' })], { db })).code, 0);
  // Between plan and start, s1's checkout disappears.
  await fleet.sh('s1', 'mv ~/agent/repo ~/agent/repo.away');
  const r = await cli(['start', 'rc'], { db });
  assert.equal(r.code, 1, r.stdout + r.stderr);
  const doc = await statusJson(db, 'rc');
  assert.equal(doc.status, 'partial-success');
  const s = byName(doc);
  assert.equal(s.s1!.status, 'unreachable');
  assert.match(s.s1!.error ?? '', /re-check failed, nothing was changed: version_command exited/);
  assert.equal(readDeployCount(fleet.home('s1')), 0);
  assert.equal(s.s2!.status, 'success');
});

test('Ctrl-C during plan cuts the probes still waiting on silent servers, records nothing (exit 130), and the same plan can be run again', async (t) => {
  const fleet = await fleetFor(t, { servers: 2, hanging: 2 });
  if (!fleet) return;
  const db = join(fleet.root, 'i.db');
  const config = fleet.writeConfig({ name: 'i', ssh: { connect_timeout: '120s' } });
  const child = spawnCli(['plan', '-c', config], { db, timeoutMs: 60_000 });
  await printed(child, 'stdout', /probe s1: pending[^]*probe s2: pending|probe s2: pending[^]*probe s1: pending/);
  const began = Date.now();
  child.kill('SIGINT');
  const r = await child;
  assert.equal(r.exitCode, 130, `${String(r.stdout)}\n${String(r.stderr)}`);
  assert.ok(Date.now() - began < 20_000, 'it did not wait for the 120 s connect timeout');
  assert.match(String(r.stderr), /plan interrupted after probing 2 of 4 servers: nothing was recorded \(no update i\) and nothing was changed on any server/);

  // Nothing recorded: the name is free, and the same command (the config names it `i`) plans it.
  const store = openStore(db);
  try {
    assert.equal(await store.hasUpdate('i'), false, 'the interrupted plan left no update');
  } finally {
    await store.close();
  }
  const again = await cli(['plan', '-c', fleet.writeConfig({ name: 'i', ssh: { connect_timeout: '120s' }, exclude: ['h*'] }, join(fleet.root, 'again.yaml'))], { db });
  assert.equal(again.code, 0, again.stdout + again.stderr);
  assert.equal((await statusJson(db, 'i')).status, 'pending');
});
