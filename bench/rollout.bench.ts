/**
 * npm run bench: agent-update's rollout against a hand-written `ssh` loop over the same fleet
 * (a real OpenSSH sshd on loopback), in the same process, one server at a time both.
 *
 *   BENCH_SERVERS=10 BENCH_ROUNDS=2 npm run bench
 *
 * The baseline is what an operator would script: per server one `ssh` for the update and the
 * restart joined with &&, then `ssh` health polls until it reports the new commit. It has no
 * journal, no re-check, no rollback. The ratio is agent-update's time over the loop's.
 *
 * It then says where agent-update's time goes: remote commands per server, and the median cost
 * of one command on an open connection and of a new connection, on the same fleet.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { execa } from 'execa';
import { systemClock } from '../src/clock.js';
import { loadConfig } from '../src/config/load.js';
import { createPlan } from '../src/plan/plan.js';
import { runUpdate } from '../src/rollout/run.js';
import { Ssh2Transport } from '../src/ssh/ssh2-transport.js';
import { shellQuote } from '../src/util/shell.js';
import { Store } from '../src/store/store.js';
import { sshdAvailable, startFleet, type Fleet } from '../test/fleet/fleet.js';

const SERVERS = Number(process.env.BENCH_SERVERS ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);

export async function resetFleet(fleet: Fleet): Promise<void> {
  await Promise.all(fleet.servers.map((s) => fleet.setCommit(s.name, fleet.upstream.commits.base)));
}

export async function sshLoop(fleet: Fleet, commit: string): Promise<number> {
  const began = performance.now();
  for (const s of fleet.servers) {
    const ssh = (cmd: string) =>
      execa('ssh', ['-i', fleet.identityFile, '-o', `UserKnownHostsFile=${fleet.knownHosts}`, '-o', 'StrictHostKeyChecking=yes',
        '-o', 'BatchMode=yes', '-p', String(s.port), `${s.user}@${s.host}`, cmd], { reject: false, stdin: 'ignore' });
    const up = await ssh(
      `git -C ~/agent/repo fetch --quiet ${shellQuote(fleet.upstream.repo)} master && git -C ~/agent/repo reset --hard --quiet ${commit} && ~/agent/bin/restart web`,
    );
    if (up.exitCode !== 0) throw new Error(`ssh loop: update failed on ${s.name}: ${up.stderr}`);
    for (;;) {
      const h = await ssh('~/agent/bin/health');
      if (h.exitCode === 0 && h.stdout.includes(commit)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return performance.now() - began;
}

/** agent-update's time for the rollout, and how many remote commands it sent per server. */
export async function agentUpdate(fleet: Fleet, round: number): Promise<{ ms: number; commandsPerServer: number }> {
  const config = loadConfig(fleet.writeConfig({ name: `bench-${round}` }));
  const store = new Store(join(fleet.root, `bench-${round}.db`));
  const transport = new Ssh2Transport();
  const deps = { store, transport, clock: systemClock, emit: () => {} };
  try {
    await createPlan(deps, config, { concurrency: 32 });
    const began = performance.now();
    const r = await runUpdate(deps, `bench-${round}`, { mode: 'start' });
    if (r.status !== 'success') throw new Error(`agent-update: ${r.status}: ${r.reason}`);
    const ms = performance.now() - began;
    const commands = store.db.prepare("SELECT COUNT(*) FROM steps WHERE update_name = ? AND phase != 'probe'").pluck().get(`bench-${round}`) as number;
    return { ms, commandsPerServer: commands / fleet.servers.length };
  } finally {
    transport.close();
    store.close();
  }
}

/** The fixed costs under both: opening a connection, and one command on an open one (medians). */
export async function fixedCosts(fleet: Fleet): Promise<{ connectMs: number; execMs: number }> {
  const config = loadConfig(fleet.writeConfig({ name: 'costs' }));
  const s = fleet.servers[0]!;
  const spec = { name: s.name, host: s.host, port: s.port, user: s.user, type: 'app', types: ['app'] };
  const transport = new Ssh2Transport();
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  try {
    const connects: number[] = [];
    for (let i = 0; i < 5; i++) {
      const began = performance.now();
      (await transport.connect(spec, config.ssh)).close();
      connects.push(performance.now() - began);
    }
    const session = await transport.connect(spec, config.ssh);
    const execs: number[] = [];
    for (let i = 0; i < 10; i++) {
      const began = performance.now();
      await session.exec('true');
      execs.push(performance.now() - began);
    }
    session.close();
    return { connectMs: median(connects), execMs: median(execs) };
  } finally {
    transport.close();
  }
}

async function main(): Promise<void> {
  if (!sshdAvailable()) {
    console.error('bench: needs OpenSSH sshd, ssh and git (apt-get install openssh-server)');
    process.exit(2);
  }
  const fleet = await startFleet({ servers: SERVERS });
  try {
    const commit = fleet.upstream.commits.good;
    const loop: number[] = [];
    const ours: number[] = [];
    let commandsPerServer = 0;
    for (let round = 1; round <= ROUNDS; round++) {
      await resetFleet(fleet);
      loop.push(await sshLoop(fleet, commit));
      await resetFleet(fleet);
      const r = await agentUpdate(fleet, round);
      ours.push(r.ms);
      commandsPerServer = r.commandsPerServer;
    }
    const best = (xs: number[]) => Math.min(...xs);
    const fmt = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
    console.log(`rollout of ${SERVERS} servers, one at a time, best of ${ROUNDS} (real sshd on loopback)`);
    console.log(`  plain ssh loop   ${fmt(best(loop))}  (${fmt(best(loop) / SERVERS)} per server)`);
    console.log(`  agent-update     ${fmt(best(ours))}  (${fmt(best(ours) / SERVERS)} per server)`);
    console.log(`  ratio            ${(best(ours) / best(loop)).toFixed(2)}x the ssh loop's time (lower is better)`);
    const costs = await fixedCosts(fleet);
    const ms = (x: number) => `${Math.round(x)} ms`;
    console.log(
      `where the time goes: agent-update sends ${commandsPerServer.toFixed(1)} remote commands per server; ` +
        `one command on an open connection takes ${ms(costs.execMs)}, a new connection ${ms(costs.connectMs)} (medians)`,
    );
  } finally {
    await fleet.stop();
  }
}

// Run on its own (`node dist/bench/rollout.bench.js`); bench/run.ts imports the pieces.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
