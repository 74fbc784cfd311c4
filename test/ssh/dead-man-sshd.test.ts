/**
 * The dead-man timer on the real sshd test fleet: a silent network partition (a TCP proxy that
 * stops passing bytes, test/helpers/proxy.ts: no FIN, no RST, so the server never sees the
 * channel's stdin end) stops the executor's beats, and the command is killed on the server
 * within about ssh.dead_man_timeout, through the command loop and through the per-exec
 * supervisor alike. Without it the command ran on forever, and a reconnect ran it again beside it.
 */
import { strict as assert } from 'node:assert';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import type { SshConfig } from '../../src/config/types.js';
import type { Ssh2Session } from '../../src/ssh/session.js';
import { Ssh2Transport } from '../../src/ssh/ssh2-transport.js';
import { knownHostsAs, sshdAvailable, startFleet, type Fleet } from '../fleet/fleet.js';
import { waitGate } from '../helpers/gates.js';
import { startProxy, type Proxy } from '../helpers/proxy.js';

const skip = !sshdAvailable() && process.env.REQUIRE_SSHD !== '1' ? 'sshd not installed' : false;

describe('real sshd: a silent partition under a running command', { skip }, () => {
  let fleet: Fleet;
  let proxy: Proxy | null = null;
  const transport = new Ssh2Transport();

  before(async () => {
    fleet = await startFleet({ servers: 1, probeOnly: true });
  });
  after(async () => {
    transport.close();
    await proxy?.close();
    await fleet?.stop();
  });
  beforeEach(async () => {
    await proxy?.close();
    proxy = null;
    await fleet.reset();
  });

  const home = () => fleet.home('s1');

  /** a session to s1 through a fresh proxy; its known_hosts names the proxy's port with the fleet's host key */
  async function throughProxy(overrides: Partial<SshConfig>): Promise<{ session: Ssh2Session; proxy: Proxy }> {
    const s1 = fleet.server('s1');
    proxy = await startProxy({ host: s1.host, port: s1.port });
    const knownHosts = knownHostsAs(fleet, join(fleet.root, `known_hosts.proxy-${proxy.port}`), [{ host: '127.0.0.1', port: proxy.port }]);
    const session = (await transport.connect({ ...s1, host: '127.0.0.1', port: proxy.port }, fleet.sshConfig({ knownHosts, ...overrides }))) as Ssh2Session;
    return { session, proxy };
  }

  /** a command that says its pid and that it began, then waits on a gate nobody opens */
  const HELD = `echo $$ >~/cmd.pid.tmp && mv ~/cmd.pid.tmp ~/cmd.pid; : >~/begin; ${waitGate('never')}`;

  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };

  async function waitFor(what: string, ok: () => boolean, withinMs: number): Promise<void> {
    const deadline = Date.now() + withinMs;
    while (!ok()) {
      if (Date.now() > deadline) assert.fail(`not within ${withinMs} ms: ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** the running command's pid on the server, once it began */
  async function began(): Promise<number> {
    await waitFor('the command began', () => existsSync(join(home(), 'begin')) && existsSync(join(home(), 'cmd.pid')), 20_000);
    const pid = Number(readFileSync(join(home(), 'cmd.pid'), 'utf8'));
    assert.ok(alive(pid), 'the command runs');
    return pid;
  }

  test('the command loop: the command is killed on the server; once the partition heals, its result says why', async () => {
    // keepalives off: the client keeps the connection through the partition, so the loop's
    // report reaches it when the bytes flow again
    const { session, proxy } = await throughProxy({ keepaliveIntervalMs: 0, deadManTimeoutMs: 2000 });
    await session.warm();
    const running = session.exec(HELD, { timeoutMs: 600_000 });
    const pid = await began();
    proxy.freeze();
    // about 2 s on the server's clock (and its stop's second); generous here
    await waitFor('the command is killed on the server', () => !alive(pid), 30_000);
    proxy.thaw();
    const r = await running;
    assert.equal(r.code, null);
    assert.equal(r.timedOut, false);
    assert.match(r.error ?? '', /^killed on the server, with everything it started: no word from this executor for 2s \(ssh\.dead_man_timeout; /);
    // the loop ended with it; the next command starts a new one on the same connection
    assert.equal((await session.exec('echo after')).stdout, 'after\n');
    assert.equal(session.channelsOpened, 2);
    session.close();
  });

  test('one exec per command: the supervisor kills it; the client, keepalives unanswered, reports the connection lost', async () => {
    // an `sh` that will not run the command loop (see guards-sshd.test.ts): the per-exec path
    mkdirSync(join(home(), '.fleet-bin'));
    writeFileSync(
      join(home(), '.fleet-bin', 'sh'),
      '#!/bin/sh\ncase "$*" in *agent-update-loop*) exit 1;; esac\nexec /bin/sh "$@"\n',
      { mode: 0o755 },
    );
    // the default dead man: 3 × keepalive_interval, when the client gives the connection up too
    const { session, proxy } = await throughProxy({ keepaliveIntervalMs: 1000 });
    const running = session.exec(HELD, { timeoutMs: 600_000 });
    const pid = await began();
    assert.notEqual(session.fallback, null, 'on its own exec');
    proxy.freeze();
    await waitFor('the command is killed on the server', () => !alive(pid), 30_000);
    const r = await running;
    assert.equal(r.code, null);
    assert.match(r.error ?? '', /connection lost/);
  });
});
