/**
 * The pieces of `npm run bench` section (a) (bench/run.ts runs them; `BENCH_SKIP=bcdw npm run
 * bench` runs that section alone): agent-update's rollout and a hand-written `ssh` loop over the
 * same fleet (a real OpenSSH sshd on loopback), one server at a time both.
 *
 * The baseline is what an operator would script: per server one `ssh` for the update and the
 * restart joined with &&, then `ssh` health polls until it reports the new commit. It has no
 * journal, no re-check, no rollback. Where one command's time goes is bench/where.bench.ts.
 */
import { join } from 'node:path';
import { execa } from 'execa';
import { systemClock } from '../src/clock.js';
import { systemLiveness } from '../src/liveness.js';
import { loadConfig } from '../src/config/load.js';
import { createPlan } from '../src/plan/plan.js';
import { runUpdate } from '../src/rollout/run.js';
import { Ssh2Transport } from '../src/ssh/ssh2-transport.js';
import { shellQuote } from '../src/util/shell.js';
import { SqliteStore } from '../src/store/sqlite/store.js';
import type { Fleet } from '../test/fleet/fleet.js';
import type { JournalEntry } from '../src/model/records.js';

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

/**
 * The best an operator could do by hand: one `ssh` per server, every command chained in it, the
 * health poll too (a shell loop on the server, every 100 ms, bounded), one server after the other.
 * No journal, no re-check, no rollback, no lock: the floor for one connection per server.
 */
export async function sshChained(fleet: Fleet, commit: string): Promise<number> {
  const began = performance.now();
  for (const s of fleet.servers) {
    const q = shellQuote;
    const remote =
      `git -C ~/agent/repo fetch --quiet ${q(fleet.upstream.repo)} master && git -C ~/agent/repo reset --hard --quiet ${commit} && ` +
      `echo ${commit} >> ~/agent/deploys.log && ~/agent/bin/restart web >/dev/null && ` +
      `i=0; until ~/agent/bin/health 2>/dev/null | grep -q ${commit}; do i=$((i+1)); [ $i -gt 600 ] && exit 1; sleep 0.1; done`;
    const r = await execa(
      'ssh',
      ['-i', fleet.identityFile, '-o', `UserKnownHostsFile=${fleet.knownHosts}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-p', String(s.port), `${s.user}@${s.host}`, remote],
      { reject: false, stdin: 'ignore' },
    );
    if (r.exitCode !== 0) throw new Error(`ssh chained: failed on ${s.name}: ${r.stderr}`);
  }
  return performance.now() - began;
}

export interface CliRun {
  planMs: number;
  startMs: number;
  /** how long a remote command of the plan (its probes) / of the start was running (remoteTime) */
  planRemoteMs: number;
  startRemoteMs: number;
  /** start: from the process's spawn to its first remote command (node, the store, the first connection), and from its last to its exit */
  startBeforeMs: number;
  startAfterMs: number;
}

/**
 * agent-update run as a user runs it: `plan -c FILE` then `start NAME`, each its own process of
 * the CLI (bin/agent-update.js), plan included; the time of each.
 */
export async function agentUpdateCli(bin: string, fleet: Fleet, round: number): Promise<CliRun> {
  const name = `cli-${round}`;
  const db = join(fleet.root, `${name}.db`);
  const config = fleet.writeConfig({ name }, join(fleet.root, `${name}.yaml`));
  const run = async (args: string[]) => {
    const began = performance.now();
    const r = await execa(process.execPath, [bin, '--db', db, '-q', ...args], { reject: false, stdin: 'ignore', env: { AGENT_UPDATE_DEFAULTS: '' } });
    if (r.exitCode !== 0) throw new Error(`agent-update ${args.join(' ')} exited ${r.exitCode}: ${r.stderr.slice(-600)}`);
    return performance.now() - began;
  };
  const planMs = await run(['plan', '-c', config, '--name', name]);
  const startedAt = Date.now();
  const startMs = await run(['start', name]);
  const endedAt = Date.now();
  const store = new SqliteStore(db, { clock: systemClock });
  try {
    const journal = await store.getJournal(name);
    const start = remoteTime(journal, (p) => p !== 'probe');
    return {
      planMs,
      startMs,
      planRemoteMs: remoteTime(journal, (p) => p === 'probe').ms,
      startRemoteMs: start.ms,
      startBeforeMs: start.first - startedAt,
      startAfterMs: endedAt - start.last,
    };
  } finally {
    await store.close();
  }
}

/**
 * How long at least one remote command (of the phases `which` picks) was running, from the
 * journal's times: the union of their intervals, so work done ahead beside another server's
 * command counts once. The rest of a run's wall time is the tool's own.
 */
export function remoteTime(journal: readonly JournalEntry[], which: (phase: string) => boolean): { ms: number; first: number; last: number } {
  const spans = journal
    .filter((e) => which(e.phase) && e.endedAt !== null)
    .map((e) => [Date.parse(e.startedAt), Date.parse(e.endedAt!)] as const)
    .sort((a, b) => a[0] - b[0]);
  let total = 0;
  let [from, to] = [-Infinity, -Infinity];
  for (const [a, b] of spans) {
    if (a > to) {
      if (to > from) total += to - from;
      [from, to] = [a, b];
    } else to = Math.max(to, b);
  }
  if (to > from) total += to - from;
  return { ms: total, first: spans[0]?.[0] ?? NaN, last: Math.max(...spans.map((x) => x[1])) };
}

/** agent-update's time for the rollout, and how many remote commands it sent per server. */
export async function agentUpdate(fleet: Fleet, round: number): Promise<{ ms: number; commandsPerServer: number }> {
  const config = loadConfig(fleet.writeConfig({ name: `bench-${round}` }));
  const store = new SqliteStore(join(fleet.root, `bench-${round}.db`), { clock: systemClock });
  const transport = new Ssh2Transport();
  const deps = { store, transport, clock: systemClock, liveness: systemLiveness, emit: () => {} };
  try {
    await createPlan(deps, config, { concurrency: 32 });
    const began = performance.now();
    const r = await runUpdate(deps, `bench-${round}`, { mode: 'start' });
    if (r.status !== 'success') throw new Error(`agent-update: ${r.status}: ${r.reason}`);
    const ms = performance.now() - began;
    const commands = (await store.getJournal(`bench-${round}`)).filter((s) => s.phase !== 'probe').length;
    return { ms, commandsPerServer: commands / fleet.servers.length };
  } finally {
    transport.close();
    await store.close();
  }
}
