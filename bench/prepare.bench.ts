/**
 * agent.prepare against a slow fetch (issue 13, item 4): a sequential rollout whose update
 * waits 1 s (a simulated slow `git fetch`), with and without the same wait as `agent.prepare`,
 * on a real-sshd fleet as the tests build it.
 *
 *   node dist/bench/prepare.bench.js              # 10 servers, best of 2
 *   BENCH_SERVERS=30 BENCH_ROUNDS=3 BENCH_PREPARE_AHEAD=3 node dist/bench/prepare.bench.js
 *
 * The prepare command does the slow part and leaves a marker; the update skips the wait when the
 * marker is there (as a `git fetch` of a commit already fetched returns at once). The first
 * server has nothing ahead of it and pays the wait in its update. Target: at least 40 % less
 * time with prepare. `runPrepareBench()` is exported for the suite runner (bench/*), which owns
 * bench/RESULTS.md.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { systemClock } from '../src/clock.js';
import { systemLiveness } from '../src/liveness.js';
import { loadConfig } from '../src/config/load.js';
import { createPlan } from '../src/plan/plan.js';
import { runUpdate } from '../src/rollout/run.js';
import { Ssh2Transport } from '../src/ssh/ssh2-transport.js';
import { SqliteStore } from '../src/store/sqlite/store.js';
import { agentCommands } from '../src/sim/agent.js';
import { sshdAvailable, startFleet, type Fleet } from '../test/fleet/fleet.js';

export interface PrepareBenchResult {
  servers: number;
  rounds: number;
  /** execution.prepare_ahead of the run with prepare */
  prepareAhead: number;
  fetchSeconds: number;
  /** best of the rounds, ms */
  withoutMs: number;
  withMs: number;
  /** 1 - with/without: the share of the rollout prepare saves */
  saved: number;
}

const SLOW_FETCH = 'sleep 1';
const MARKER = '~/.bench-fetched';

async function resetFleet(fleet: Fleet): Promise<void> {
  await Promise.all(fleet.servers.map((s) => fleet.setCommit(s.name, fleet.upstream.commits.base)));
  await Promise.all(fleet.servers.map((s) => fleet.sh(s.name, `rm -f ${MARKER}`)));
}

async function rollout(fleet: Fleet, name: string, prepare: boolean, prepareAhead: number): Promise<number> {
  const { update } = agentCommands();
  const overrides: Record<string, unknown> = {
    name,
    agent: {
      // the slow fetch, skipped when a prepare already did it
      update: [`[ -e ${MARKER} ] || ${SLOW_FETCH}`, ...update],
      ...(prepare ? { prepare: [`${SLOW_FETCH} && touch ${MARKER}`] } : {}),
    },
    execution: { prepare_ahead: prepareAhead },
  };
  const config = loadConfig(fleet.writeConfig(overrides));
  const store = new SqliteStore(join(fleet.root, `${name}.db`), { clock: systemClock });
  const transport = new Ssh2Transport();
  const deps = { store, transport, clock: systemClock, liveness: systemLiveness, emit: () => {} };
  try {
    await createPlan(deps, config, { concurrency: 32 });
    const began = performance.now();
    const r = await runUpdate(deps, name, { mode: 'start' });
    if (r.status !== 'success') throw new Error(`agent-update: ${r.status}: ${r.reason}`);
    return performance.now() - began;
  } finally {
    transport.close();
    await store.close();
  }
}

export async function runPrepareBench(opts: { servers?: number; rounds?: number; prepareAhead?: number } = {}): Promise<PrepareBenchResult> {
  const servers = opts.servers ?? 10;
  const prepareAhead = opts.prepareAhead ?? 1;
  const rounds = opts.rounds ?? 2;
  const fleet = await startFleet({ servers });
  try {
    const without: number[] = [];
    const withPrepare: number[] = [];
    for (let round = 1; round <= rounds; round++) {
      await resetFleet(fleet);
      without.push(await rollout(fleet, `plain-${round}`, false, prepareAhead));
      await resetFleet(fleet);
      withPrepare.push(await rollout(fleet, `prepared-${round}`, true, prepareAhead));
    }
    const withoutMs = Math.min(...without);
    const withMs = Math.min(...withPrepare);
    return { servers, rounds, prepareAhead, fetchSeconds: 1, withoutMs, withMs, saved: 1 - withMs / withoutMs };
  } finally {
    await fleet.stop();
  }
}

export function prepareBenchText(r: PrepareBenchResult): string {
  const fmt = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  return [
    `rollout of ${r.servers} servers with a ${r.fetchSeconds} s fetch in the update, best of ${r.rounds} (real sshd on loopback)`,
    `  without agent.prepare   ${fmt(r.withoutMs)}  (${fmt(r.withoutMs / r.servers)} per server)`,
    `  with agent.prepare      ${fmt(r.withMs)}  (${fmt(r.withMs / r.servers)} per server, prepare_ahead ${r.prepareAhead})`,
    `  saved                   ${(r.saved * 100).toFixed(0)} % (target: at least 40 %)`,
  ].join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  if (!sshdAvailable()) {
    console.error('bench: needs OpenSSH sshd, ssh and git (apt-get install openssh-server)');
    process.exit(2);
  }
  const r = await runPrepareBench({ servers: Number(process.env.BENCH_SERVERS ?? 10), rounds: Number(process.env.BENCH_ROUNDS ?? 2), prepareAhead: Number(process.env.BENCH_PREPARE_AHEAD ?? 1) });
  console.log(prepareBenchText(r));
}
