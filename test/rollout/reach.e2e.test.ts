/**
 * How servers are reached, end to end: `plan` and `start` of the real CLI against a real sshd
 * fleet that is reached only through a bastion (a second real sshd of our own, forwarding), by
 * an ssh config with aliases and ProxyJump and by ssh.jump; a spoofed bastion; a per-server
 * identity file checked before any server is touched.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { EXIT } from '../../src/errors.js';
import { currentCommit, readDeployCount } from '../../src/sim/agent.js';
import type { Fleet } from '../fleet/fleet.js';
import { byName, cli, fleetFor, statusJson } from '../helpers/cli.js';
import { makeUserKey, startSshd, type Sshd } from '../ssh/helpers.js';

// The fleet's sshd logs every connection it accepts ("Connection from … on ADDRESS port P"), so
// a connection that bypassed the bastion would show. (Read by startFleet; this file is its own process.)
process.env.FLEET_SSHD_LOGLEVEL = 'VERBOSE';

const me = userInfo().username;

/** A bastion sshd accepting the fleet's client key, logging every forward it makes. */
async function bastionFor(t: TestContext, fleet: Fleet): Promise<Sshd> {
  const dir = join(fleet.root, 'bastion');
  mkdirSync(dir);
  const bastion = await startSshd(dir, [readFileSync(`${fleet.identityFile}.pub`, 'utf8').trim()], ['LogLevel DEBUG1', 'AllowTcpForwarding yes']);
  t.after(() => bastion.stop());
  return bastion;
}

/** `address:port` → how many connections the bastion forwarded there. */
function forwards(bastion: Sshd): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of bastion.log().matchAll(/server_request_direct_tcpip: originator \S+ port \d+, target (\S+) port (\d+)/g)) {
    const k = `${m[1]}:${m[2]}`;
    out.set(k, (out.get(k) ?? 0) + 1);
  }
  return out;
}

/** `address:port` → how many connections the fleet's sshd accepted there. */
function arrivals(fleet: Fleet): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of fleet.sshdLog().matchAll(/Connection from \S+ port \d+ on (\S+) port (\d+)/g)) {
    const k = `${m[1]}:${m[2]}`;
    out.set(k, (out.get(k) ?? 0) + 1);
  }
  return out;
}

function knownHosts(fleet: Fleet, bastionLine: string): string {
  const file = join(fleet.root, `known_hosts.with-bastion.${Date.now()}`);
  writeFileSync(file, `${readFileSync(fleet.knownHosts, 'utf8')}${bastionLine}\n`);
  return file;
}

test('plan and start through a bastion: ssh config aliases with ProxyJump, and ssh.jump; every connection goes through the bastion', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  const bastion = await bastionFor(t, fleet);
  const { commits } = fleet.upstream;
  const [s1, s2, s3] = [fleet.server('s1'), fleet.server('s2'), fleet.server('s3')];
  const kh = knownHosts(fleet, bastion.hostKeyLine);
  const sshConfig = join(fleet.root, 'ssh_config');
  writeFileSync(
    sshConfig,
    [
      '# the fleet, by alias, behind the bastion',
      'Host jumpbox',
      `  HostName ${bastion.host}`,
      `  Port ${bastion.port}`,
      `  User ${me}`,
      'Host fleet-s1',
      `  HostName ${s1.host}`,
      'Host fleet-s2',
      `  HostName ${s2.host}`,
      'Host fleet-*',
      `  Port ${fleet.port}`,
      '  ProxyJump jumpbox',
      `  IdentityFile ${fleet.identityFile}`,
      `  UserKnownHostsFile ${kh}`,
      '',
    ].join('\n'),
  );
  const config = fleet.writeConfig({
    name: 'via-bastion',
    servers: [
      { name: 's1', host: 'fleet-s1', type: 'app' },
      { name: 's2', host: 'fleet-s2', type: 'db' },
      // not in the ssh config: ssh.jump takes it through the bastion
      { name: 's3', host: s3.host, type: 'app' },
    ],
    ssh: { config: sshConfig, jump: `${me}@${bastion.host}:${bastion.port}`, known_hosts: kh },
  });
  const db = join(fleet.root, 'plan.db');

  const plan = await cli(['plan', '-c', config], { db });
  assert.equal(plan.code, 0, plan.stdout + plan.stderr);
  const planned = byName(await statusJson(db, 'via-bastion'));
  for (const s of [s1, s2, s3]) {
    assert.equal(planned[s.name]!.status, 'pending', `${s.name}: ${planned[s.name]!.error}`);
    assert.equal(planned[s.name]!.fromCommit, commits.base);
    // the alias is resolved to the address connected to
    assert.equal(planned[s.name]!.host, s.host);
  }

  const start = await cli(['start', 'via-bastion'], { db });
  assert.equal(start.code, 0, start.stdout + start.stderr);
  const done = await statusJson(db, 'via-bastion');
  assert.equal(done.status, 'success');
  for (const s of [s1, s2, s3]) {
    assert.equal(currentCommit(fleet.home(s.name)), commits.good);
    assert.equal(readDeployCount(fleet.home(s.name)), 1);
  }

  // Every connection each server saw is one the bastion forwarded to it: nothing went direct.
  const fwd = forwards(bastion);
  const seen = arrivals(fleet);
  for (const s of [s1, s2, s3]) {
    const k = `${s.host}:${s.port}`;
    assert.ok((fwd.get(k) ?? 0) >= 2, `${s.name}: forwarded for the plan's probe and for start (${fwd.get(k) ?? 0})`);
    assert.equal(seen.get(k), fwd.get(k), `${s.name}: every connection it accepted came through the bastion`);
  }
  assert.deepEqual([...seen.keys()].sort(), [s1, s2, s3].map((s) => `${s.host}:${s.port}`).sort(), 'no other address was reached');
});

test('a spoofed bastion (known_hosts has another key for it): every server unreachable with the reason, none of them reached', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const bastion = await bastionFor(t, fleet);
  const fake = await makeUserKey(fleet.root, 'fake_bastion_key');
  const [type, b64] = fake.publicLine.split(' ');
  const kh = knownHosts(fleet, `[${bastion.host}]:${bastion.port} ${type} ${b64}`);
  const config = fleet.writeConfig({ name: 'spoofed', ssh: { jump: `${me}@${bastion.host}:${bastion.port}`, known_hosts: kh } });
  const db = join(fleet.root, 'plan.db');
  const plan = await cli(['plan', '-c', config], { db });
  assert.equal(plan.code, EXIT.unreachable, `no server reached: exit 69, the plan recorded\n${plan.stdout}${plan.stderr}`);
  const doc = await statusJson(db, 'spoofed');
  for (const s of doc.servers) {
    assert.equal(s.status, 'unreachable');
    assert.match(s.error ?? '', new RegExp(`^jump host ${me}@127\\.0\\.0\\.1:${bastion.port}: HOST KEY MISMATCH`));
  }
  assert.match(fleet.sshdLog(), /Server listening on/, 'the fleet logs at VERBOSE: a connection would show');
  assert.equal(forwards(bastion).size, 0, 'the bastion was asked to forward nothing');
  assert.equal(arrivals(fleet).size, 0, 'no server was connected to');
});

test('a per-server identity file that is gone by start: refused before any server is touched (exit 2)', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const own = join(fleet.root, 'keys', 'id_s2_copy');
  copyFileSync(fleet.identityFile, own);
  // the ssh block's key is not accepted anywhere: s2 logs in with its own only
  const stranger = await makeUserKey(fleet.root, 'id_stranger');
  const config = fleet.writeConfig({
    name: 'own-key',
    ssh: { identity_file: stranger.privateFile },
    servers: [
      { name: 's1', host: fleet.server('s1').host, identity_file: fleet.identityFile },
      { name: 's2', host: fleet.server('s2').host, identity_file: own },
    ],
  });
  const db = join(fleet.root, 'plan.db');
  const plan = await cli(['plan', '-c', config], { db });
  assert.equal(plan.code, 0, plan.stdout + plan.stderr);
  assert.deepEqual((await statusJson(db, 'own-key')).counts, { total: 2, pending: 2 }, 'both probed with their own key');

  const connections = () => [...arrivals(fleet).values()].reduce((a, b) => a + b, 0);
  const before = connections();
  assert.ok(before >= 2, 'the probes were seen');
  rmSync(own);
  const start = await cli(['start', 'own-key'], { db });
  assert.equal(start.code, 2, start.stdout + start.stderr);
  assert.match(start.stderr, new RegExp(`cannot start own-key: cannot read identity file ${own}: it does not exist; nothing was run on any server`));
  assert.equal(connections(), before, 'no server was connected to');
  const doc = await statusJson(db, 'own-key');
  assert.equal(doc.status, 'pending');
  for (const s of ['s1', 's2']) assert.equal(readDeployCount(fleet.home(s)), 0);
});
