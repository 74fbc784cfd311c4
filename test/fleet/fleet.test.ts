import * as assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { parse } from 'yaml';
import { agentCommands, currentCommit, readDeployCount, readDeploys, restartCount, webState } from '../../src/sim/agent.js';
import { requireSshd, sshdAvailable, startFleet, type Fleet } from './fleet.js';

const SLOW_MS = 1500;

function shQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** Expands SPEC placeholders the way the tool does (each value shell-quoted). */
function expand(command: string, vars: Record<string, string>): string {
  return command.replace(/\{(repo|branch|commit|previous_commit)\}/g, (whole, key: string) =>
    vars[key] === undefined ? whole : shQuote(vars[key]),
  );
}

/** The agent's update commands for `branch`, then `restart web`, as one remote script. */
function updateScript(fleet: Fleet, branch: string): string {
  const commands = agentCommands();
  const vars = { repo: fleet.upstream.repo, branch, commit: fleet.upstream.branch(branch) };
  return [...commands.update, commands.restart.web ?? ''].map((c) => expand(c, vars)).join(' && ');
}

function refused(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

describe('test fleet', { skip: !sshdAvailable() && process.env.REQUIRE_SSHD !== '1' ? 'sshd not installed' : false }, () => {
  let fleet: Fleet;
  let startMs = 0;

  before(async () => {
    const t0 = Date.now();
    fleet = await startFleet({ servers: 4, unreachable: 1, hanging: 1, upstream: { slowDelayMs: SLOW_MS } });
    startMs = Date.now() - t0;
  });
  after(async () => {
    await fleet?.stop();
  });

  test('starts quickly with the documented servers', (t) => {
    t.diagnostic(`startFleet took ${startMs}ms`);
    assert.deepEqual(
      fleet.servers.map((s) => `${s.name}:${s.type}`),
      ['s1:app', 's2:db', 's3:app', 's4:db', 'u1:app', 'h1:app'],
    );
    assert.ok(fleet.servers.every((s) => s.port === fleet.port));
    assert.equal(new Set(fleet.servers.map((s) => s.host)).size, fleet.servers.length);
    assert.throws(() => fleet.home('u1'), /no live server/);
  });

  test('each server has its own home and starts at base, online', async () => {
    const homes = new Set<string>();
    for (const name of ['s1', 's2', 's3', 's4']) {
      const result = await fleet.ssh(name, 'git -C ~/agent/repo rev-parse HEAD; echo $HOME; pwd');
      assert.equal(result.code, 0, result.stderr);
      const [commit, home, cwd] = result.stdout.split('\n');
      assert.equal(commit, fleet.upstream.commits.base);
      assert.equal(home, fleet.home(name));
      assert.equal(cwd, fleet.home(name));
      homes.add(home ?? '');
      assert.equal(currentCommit(fleet.home(name)), fleet.upstream.commits.base);
      assert.equal(webState(fleet.home(name))?.commit, fleet.upstream.commits.base);
      assert.equal(restartCount(fleet.home(name), 'web'), 1);
      assert.equal(readDeployCount(fleet.home(name)), 0);
    }
    assert.equal(homes.size, 4);
  });

  test('health prints the running commit', async () => {
    const result = await fleet.ssh('s1', '~/agent/bin/health');
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout), { status: 'online', commit: fleet.upstream.commits.base });
  });

  test('the hashed known_hosts works with ssh', async () => {
    const hashed = readFileSync(fleet.knownHostsHashed, 'utf8');
    assert.match(hashed, /^\|1\|/);
    assert.doesNotMatch(hashed, /127\.0\./);
    const result = await fleet.ssh('s2', 'echo ok', { knownHosts: fleet.knownHostsHashed });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'ok');
  });

  test('a wrong or missing host key is refused by ssh', async () => {
    const wrong = await fleet.ssh('s1', 'echo should-not-run', { knownHosts: fleet.knownHostsWrong });
    assert.equal(wrong.code, 255);
    assert.match(wrong.stderr, /REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
    assert.equal(wrong.stdout, '');
    const missing = await fleet.ssh('s1', 'echo should-not-run', { knownHosts: fleet.knownHostsMissing });
    assert.equal(missing.code, 255);
    assert.match(missing.stderr, /Host key verification failed|No .* host key is known/);
  });

  test('updating to broken and restarting web makes health fail', async () => {
    const home = fleet.home('s2');
    const update = await fleet.ssh('s2', updateScript(fleet, 'broken'));
    assert.equal(update.code, 0, update.stderr);
    assert.equal(currentCommit(home), fleet.upstream.commits.broken);
    assert.deepEqual(readDeploys(home), [fleet.upstream.commits.broken]);
    assert.equal(restartCount(home, 'web'), 2);
    const health = await fleet.ssh('s2', '~/agent/bin/health');
    assert.equal(health.code, 7);
    assert.equal(health.stdout, '');
    assert.match(health.stderr, /crashed/);
    // and rolling back to base brings it online again
    const rollback = await fleet.ssh('s2', updateScript(fleet, 'base'));
    assert.equal(rollback.code, 0, rollback.stderr);
    const again = await fleet.ssh('s2', '~/agent/bin/health');
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, new RegExp(fleet.upstream.commits.base));
    assert.equal(readDeployCount(home), 2);
  });

  test('slow comes online only after its startup delay', async () => {
    const update = await fleet.ssh('s3', updateScript(fleet, 'slow'));
    assert.equal(update.code, 0, update.stderr);
    const restartedAt = webState(fleet.home('s3'))?.startedMs ?? 0;
    const early = await fleet.sh('s3', '~/agent/bin/health');
    assert.equal(early.code, 7);
    assert.match(early.stderr, /starting/);
    let onlineAt = 0;
    while (Date.now() < restartedAt + SLOW_MS + 5000) {
      const health = await fleet.ssh('s3', '~/agent/bin/health');
      if (health.code === 0) {
        assert.match(health.stdout, new RegExp(`"commit":"${fleet.upstream.commits.slow}"`));
        onlineAt = Date.now();
        break;
      }
      assert.equal(health.code, 7);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.ok(onlineAt > 0, 'slow never came online');
    assert.ok(onlineAt - restartedAt >= SLOW_MS, `online after ${onlineAt - restartedAt}ms`);
  });

  test('other restarts are logged and do not touch the running agent', async () => {
    const home = fleet.home('s4');
    const before = webState(home);
    const result = await fleet.ssh('s4', '~/agent/bin/restart workers && ~/agent/bin/restart rq');
    assert.equal(result.code, 0, result.stderr);
    assert.equal(restartCount(home, 'workers'), 1);
    assert.equal(restartCount(home, 'rq'), 1);
    assert.equal(restartCount(home), 3);
    assert.deepEqual(webState(home), before);
    const usage = await fleet.ssh('s4', '~/agent/bin/restart');
    assert.equal(usage.code, 2);
  });

  test('setCommit puts a server at a commit outside any rollout', async () => {
    await fleet.setCommit('s4', fleet.upstream.commits.good2);
    assert.equal(currentCommit(fleet.home('s4')), fleet.upstream.commits.good2);
    assert.equal(readDeployCount(fleet.home('s4')), 0);
    const health = await fleet.sh('s4', '~/agent/bin/health');
    assert.equal(health.code, 0);
    assert.match(health.stdout, new RegExp(fleet.upstream.commits.good2));
  });

  test('the unreachable server refuses connections, the hanging one never answers', async () => {
    const u1 = fleet.server('u1');
    assert.equal(await refused(u1.host, u1.port), 'ECONNREFUSED');
    const result = await fleet.ssh('u1', 'true');
    assert.equal(result.code, 255);
    assert.match(result.stderr, /Connection refused/);

    const h1 = fleet.server('h1');
    const banner = await new Promise<string>((resolve) => {
      const socket = net.connect({ host: h1.host, port: h1.port });
      let data = '';
      socket.on('data', (chunk: Buffer) => (data += chunk.toString()));
      socket.once('error', (error) => resolve(`error ${error.message}`));
      setTimeout(() => {
        socket.destroy();
        resolve(data);
      }, 300);
    });
    assert.equal(banner, '');
  });

  test('writeConfig writes a full config with deep-merged overrides', () => {
    const file = fleet.writeConfig({ source: { branch: 'good2' }, rollback: { enabled: false }, restart: ['web', 'rq'] });
    const config = parse(readFileSync(file, 'utf8')) as Record<string, Record<string, unknown>>;
    assert.deepEqual(config.source, { repo: fleet.upstream.repo, branch: 'good2' });
    assert.deepEqual(config.rollback, { enabled: false, continue_after_rollback: false });
    assert.deepEqual(config.restart, ['web', 'rq']);
    assert.equal(config.ssh?.port, fleet.port);
    assert.equal(config.ssh?.identity_file, fleet.identityFile);
    assert.equal((config.agent?.health as Record<string, unknown>).expect, '{commit}');
    assert.equal((config.servers as unknown as unknown[]).length, 6);
    const without = fleet.configObject({ rollback: undefined });
    assert.equal('rollback' in without, false);
  });

  test('reset puts used servers back as startFleet left them, and ends what still runs on them', async () => {
    const home = fleet.home('s1');
    assert.equal((await fleet.ssh('s1', updateScript(fleet, 'broken'))).code, 0);
    await fleet.sh('s1', 'mkdir -p ~/gates && touch ~/gates/online && mv ~/agent/repo ~/agent/repo.away');
    const marker = join(fleet.root, 'sleeping');
    const stuck = fleet.ssh('s1', `touch ${marker}; sleep 60; echo finished`, { timeoutMs: 90_000 });
    while (!existsSync(marker)) await new Promise((resolve) => setTimeout(resolve, 20));

    await fleet.reset(['s1']);
    const ended = await stuck;
    assert.notEqual(ended.code, 0, 'the command left running was killed');
    assert.doesNotMatch(ended.stdout, /finished/);
    assert.equal(currentCommit(home), fleet.upstream.commits.base);
    assert.equal(webState(home)?.commit, fleet.upstream.commits.base);
    assert.equal(restartCount(home, 'web'), 1);
    assert.equal(readDeployCount(home), 0);
    assert.equal(existsSync(join(home, 'gates')), false);
    const health = await fleet.ssh('s1', '~/agent/bin/health');
    assert.equal(health.code, 0, health.stderr);
  });

  test('a view is the fleet seen as a smaller one, with its own root; its stop() leaves the fleet running', async () => {
    const dir = mkdtempSync(join(fleet.root, 'view-'));
    const view = fleet.view({ servers: 2, unreachable: 1 }, dir);
    assert.deepEqual(view.servers.map((s) => s.name), ['s1', 's2', 'u1']);
    assert.equal(view.root, dir);
    assert.equal(view.port, fleet.port);
    assert.equal(view.home('s2'), fleet.home('s2'));
    assert.throws(() => view.home('s3'), /no live server/);
    assert.throws(() => view.server('h1'), /no server/);
    const file = view.writeConfig();
    assert.ok(file.startsWith(join(dir, 'configs')), file);
    const config = parse(readFileSync(file, 'utf8')) as { servers: Array<{ name: string }> };
    assert.deepEqual(config.servers.map((s) => s.name), ['s1', 's2', 'u1']);
    assert.throws(() => fleet.view({ servers: 5 }, dir), /fewer than 5 s\.\. servers/);
    await view.stop();
    assert.equal((await fleet.ssh('s1', 'echo ok')).stdout, 'ok');
  });

  test('holdNewConnections: no new connection is greeted until release()', async () => {
    const hold = fleet.holdNewConnections();
    try {
      const held = await fleet.ssh('s2', 'echo should-wait', { timeoutMs: 1000 });
      assert.notEqual(held.code, 0, 'a new connection got through while held');
      assert.equal(held.stdout, '');
    } finally {
      hold.release();
    }
    hold.release(); // idempotent
    assert.equal((await fleet.ssh('s2', 'echo ok')).stdout, 'ok');
  });
});

test('two fleets started concurrently do not interfere', async (t) => {
  if (!requireSshd(t)) return;
  const [a, b] = await Promise.all([startFleet({ servers: 2 }), startFleet({ servers: 2 })]);
  try {
    assert.notEqual(a.root, b.root);
    const hostsA = new Set(a.servers.map((s) => `${s.host}:${s.port}`));
    assert.ok(b.servers.every((s) => !hostsA.has(`${s.host}:${s.port}`)));
    assert.notEqual(a.upstream.commits.base, undefined);

    const update = await a.ssh('s1', updateScript(a, 'good2'));
    assert.equal(update.code, 0, update.stderr);
    assert.equal(currentCommit(a.home('s1')), a.upstream.commits.good2);
    assert.equal(currentCommit(b.home('s1')), b.upstream.commits.base);
    assert.equal(readDeployCount(b.home('s1')), 0);

    const seenB = await b.ssh('s1', 'echo $HOME');
    assert.equal(seenB.stdout, b.home('s1'));
    // a's key is not b's: the fleets are separate servers
    const cross = await a.ssh('s1', 'true', { knownHosts: b.knownHosts });
    assert.equal(cross.code, 255);
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
});

test('a fleet of more than 16 servers (several sshd) works', async (t) => {
  if (!requireSshd(t)) return;
  const fleet = await startFleet({ servers: 18 });
  try {
    for (const name of ['s1', 's16', 's17', 's18']) {
      const result = await fleet.ssh(name, 'echo $HOME; ~/agent/bin/health');
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout.split('\n')[0], fleet.home(name));
      assert.match(result.stdout, new RegExp(fleet.upstream.commits.base));
    }
  } finally {
    await fleet.stop();
  }
});
