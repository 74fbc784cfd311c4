/**
 * Where one remote command's time goes, on a one-server real-sshd fleet on loopback (the
 * test fleet), each figure the median of ROUNDS tries:
 *
 *   npm run build && node dist/bench/where.bench.js        (WHERE_ROUNDS=30 by default)
 *
 * - TCP connect; a whole connection (TCP, handshake, host key check, authentication, the
 *   round trip after it: Ssh2Transport.connect);
 * - on an open connection, a bare exec of `true` (session open + exec request + the login
 *   shell + exit status + close), with TCP_NODELAY as we run and with Nagle's algorithm on;
 * - the login shell alone (`$SHELL -c true`, run here: the fleet is this machine), and the
 *   per-command supervisor alone (remote-run.ts, run here the same way);
 * - one command through the supervisor (one exec each, the fallback path), and through the
 *   command loop on one channel (channel.ts), the loop's start (a session and its handshake);
 * - the journal: one beginCommand + endCommand pair (two synchronous=FULL transactions).
 */
import { spawn, spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import type { Client } from 'ssh2';
import { loadConfig } from '../src/config/load.js';
import { supervised } from '../src/ssh/remote-run.js';
import type { Ssh2Session } from '../src/ssh/session.js';
import { Ssh2Transport } from '../src/ssh/ssh2-transport.js';
import { systemClock } from '../src/clock.js';
import { SqliteStore } from '../src/store/sqlite/store.js';
import { sshdAvailable, startFleet } from '../test/fleet/fleet.js';

const ROUNDS = Number(process.env.WHERE_ROUNDS ?? 30);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function timed(n: number, fn: () => Promise<unknown> | unknown): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    const began = performance.now();
    await fn();
    xs.push(performance.now() - began);
  }
  return median(xs);
}

/** A bare exec on the connection, as ssh2 does it: session open, exec request, wait for close. */
function rawExec(client: Client, command: string): Promise<void> {
  return new Promise((resolve, reject) => {
    client.exec(command, (err, ch) => {
      if (err) return reject(err);
      ch.on('data', () => {});
      ch.stderr.on('data', () => {});
      ch.on('close', () => resolve());
    });
  });
}

async function main(): Promise<void> {
  if (!sshdAvailable()) {
    console.error('bench: needs OpenSSH sshd, ssh and git (apt-get install openssh-server)');
    process.exit(2);
  }
  const fleet = await startFleet({ servers: 1 });
  const transport = new Ssh2Transport();
  try {
    const config = loadConfig(fleet.writeConfig({ name: 'where' }));
    const s = fleet.servers[0]!;
    const spec = { name: s.name, host: s.host, port: s.port, user: s.user, type: 'app', types: ['app'] };
    const rows: [string, number][] = [];

    rows.push([
      'TCP connect',
      await timed(ROUNDS, () => new Promise<void>((resolve, reject) => {
        const sock = tcpConnect(s.port, s.host, () => {
          sock.destroy();
          resolve();
        });
        sock.on('error', reject);
      })),
    ]);
    rows.push(['connection: TCP + handshake + host key + auth', await timed(ROUNDS, async () => (await transport.connect(spec, config.ssh)).close())]);

    const session = (await transport.connect(spec, config.ssh)) as Ssh2Session;
    const client = (session as unknown as { client: Client }).client;
    const sock = (client as unknown as { _sock?: { setNoDelay?: (on: boolean) => void } })._sock;
    rows.push(['bare exec `true` (session open + exec + login shell), TCP_NODELAY', await timed(ROUNDS, () => rawExec(client, 'true'))]);
    sock?.setNoDelay?.(false);
    rows.push(['bare exec `true`, Nagle on', await timed(ROUNDS, () => rawExec(client, 'true'))]);
    sock?.setNoDelay?.(true);
    const shell = process.env.SHELL || '/bin/sh';
    rows.push([`login shell alone (${shell} -c true, here)`, await timed(ROUNDS, () => spawnSync(shell, ['-c', 'true']))]);
    // its stdin kept open, as the channel's is (at its end the supervisor kills the command)
    rows.push([
      'supervisor alone (sh -c SUPERVISOR true, here)',
      await timed(ROUNDS, () => new Promise<void>((resolve) => {
        const child = spawn('/bin/sh', ['-c', supervised('true', 20_000)], { stdio: ['pipe', 'ignore', 'ignore'] });
        child.on('exit', () => {
          child.stdin.destroy();
          resolve();
        });
      })),
    ]);
    rows.push(['one command, supervised, one exec each (the fallback)', await timed(ROUNDS, () => rawExec(client, supervised('true', 20_000)))]);

    const opened = session.channelsOpened;
    const loopStart = await timed(1, () => session.warm());
    rows.push(['command loop start (a session + its handshake), once per server', loopStart]);
    rows.push(['one command through the command loop', await timed(ROUNDS, () => session.exec('true'))]);
    sock?.setNoDelay?.(false);
    rows.push(['one command through the command loop, Nagle on', await timed(ROUNDS, () => session.exec('true'))]);
    sock?.setNoDelay?.(true);
    const loopChannels = session.channelsOpened - opened;
    session.close();

    // WHERE_DB_DIR: where the journal is (the fleet's temp folder by default, often a tmpfs)
    const dbDir = process.env.WHERE_DB_DIR ?? fleet.root;
    const store = new SqliteStore(join(dbDir, `where-${process.pid}.db`), { clock: systemClock });
    try {
      await store.createUpdate({
        name: 'w',
        repo: '/r',
        branch: 'master',
        commit: 'c'.repeat(40),
        configFile: null,
        settings: {} as never,
        testStopAfter: 0,
        servers: [{ name: 's1', host: 'h', port: 22, user: 'u', type: 'app' }],
      });
      const server = (await store.getServers('w'))[0]!;
      const r = { code: 0, stdout: 'out\n', stderr: '', error: null };
      rows.push([`journal: beginCommand + endCommand (synchronous=FULL, in ${dbDir})`, await timed(ROUNDS, async () => await store.endCommand(await store.beginCommand(server, 'update', 'true'), r))]);
    } finally {
      await store.close();
      for (const ext of ['', '-wal', '-shm']) rmSync(join(dbDir, `where-${process.pid}.db${ext}`), { force: true });
    }

    console.log(`where one command's time goes (medians of ${ROUNDS}; real sshd on loopback, ${process.platform} ${process.arch})`);
    for (const [what, ms] of rows) console.log(`  ${ms.toFixed(1).padStart(7)} ms  ${what}`);
    console.log(`  the command loop opened ${loopChannels} SSH session(s) for ${2 * ROUNDS} commands`);
  } finally {
    transport.close();
    await fleet.stop();
  }
}

await main();
