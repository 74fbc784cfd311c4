/**
 * npm run bench: every figure of issue 13 in one run, each beside its baseline measured in the
 * same process on the same machine, then bench/RESULTS.md.
 *
 *   (a) sequential rollout: agent-update as a user runs it (`plan` + `start`, the CLI) vs the best
 *       by hand (one `ssh` per server, its commands chained), a plain `ssh` loop (a connection per
 *       command), ansible-playbook (serial: 1); the engine alone, and the tool's share per server
 *   (b) a 1 s fetch, with and without agent.prepare       (bench/prepare.bench.ts, when built)
 *   (c) plan of BENCH_PLAN_SERVERS (1,000) probe-only servers vs `xargs -P 32 ssh`
 *   (d) status --json of a synthetic BENCH_STATUS_SERVERS (10,000)-server update
 *   (e) cold start of --help and status, beside `node -e 0`
 *   (f) peak RSS of the plan of (c)
 *   (g) plan of BENCH_PLAN_SERVERS servers behind one bastion vs reached directly (bastion.bench.ts)
 *   (p) the rollout of (a) through the CLI, plan included, with the plan in PostgreSQL vs SQLite
 *       (postgres.bench.ts; skipped when PostgreSQL is not installed)
 *   and bench/where.bench.ts (where one command's time goes), when built.
 *
 * Knobs: BENCH_SERVERS (30), BENCH_ROUNDS (2; best of), BENCH_PLAN_SERVERS (1000),
 * BENCH_STATUS_SERVERS (10000), BENCH_SKIP (letters to leave out, e.g. `ac`), BENCH_RESULTS
 * (where to write the results; default bench/RESULTS.md).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { systemClock } from '../src/clock.js';
import { SqliteStore } from '../src/store/sqlite/store.js';
import { sshdAvailable, startFleet, SSHD } from '../test/fleet/fleet.js';
import { ansibleRollout, ansibleVersion } from './ansible.js';
import { agentUpdate, agentUpdateCli, type CliRun, resetFleet, sshChained, sshLoop } from './rollout.bench.js';
import { writeSyntheticUpdate } from './synthetic.js';
import { bastionPlan } from './bastion.bench.js';
import { postgresRollout } from './postgres.bench.js';
import { postgresBin } from '../test/helpers/postgres.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin/agent-update.js');
const num = (name: string, dflt: number) => Number(process.env[name] ?? dflt);
const SERVERS = num('BENCH_SERVERS', 30);
const ROUNDS = Math.max(1, num('BENCH_ROUNDS', 2));
const PLAN_SERVERS = num('BENCH_PLAN_SERVERS', 1000);
const STATUS_SERVERS = num('BENCH_STATUS_SERVERS', 10_000);
const SKIP = process.env.BENCH_SKIP ?? '';
const RESULTS = process.env.BENCH_RESULTS ?? join(ROOT, 'bench/RESULTS.md');

const best = (xs: number[]) => Math.min(...xs);
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const msf = (ms: number) => `${Math.round(ms)} ms`;
const lines: string[] = [];
const targets: Array<{ target: string; reached: string; met: boolean | null }> = [];
function say(line = ''): void {
  console.log(line);
  lines.push(line);
}

/** Wall time of one run of `node args…` (its output discarded). */
async function timeNode(args: string[], env: Record<string, string> = {}): Promise<number> {
  const began = performance.now();
  const r = await execa(process.execPath, args, { reject: false, env, stdout: 'ignore', stderr: 'pipe' });
  const t = performance.now() - began;
  if (r.exitCode !== 0) throw new Error(`node ${args.join(' ')} exited ${r.exitCode}: ${r.stderr}`);
  return t;
}

async function sectionA(): Promise<void> {
  say(`## (a) sequential rollout of ${SERVERS} servers (real sshd on loopback), best of ${ROUNDS}`);
  const fleet = await startFleet({ servers: SERVERS });
  try {
    const commit = fleet.upstream.commits.good;
    const chained: number[] = [];
    const loop: number[] = [];
    const cli: CliRun[] = [];
    const engine: number[] = [];
    const ansible: number[] = [];
    const version = await ansibleVersion();
    let ansibleError: string | null = null;
    let perServer = 0;
    for (let round = 1; round <= ROUNDS; round++) {
      await resetFleet(fleet);
      chained.push(await sshChained(fleet, commit));
      await resetFleet(fleet);
      loop.push(await sshLoop(fleet, commit));
      await resetFleet(fleet);
      cli.push(await agentUpdateCli(BIN, fleet, round));
      await resetFleet(fleet);
      const r = await agentUpdate(fleet, round);
      engine.push(r.ms);
      perServer = r.commandsPerServer;
      if (version && ansibleError === null) {
        await resetFleet(fleet);
        try {
          ansible.push(await ansibleRollout(fleet, commit));
        } catch (e) {
          ansibleError = (e as Error).message;
        }
      }
    }
    const bestCli = cli.reduce((a, b) => (a.planMs + a.startMs <= b.planMs + b.startMs ? a : b));
    const ours = bestCli.planMs + bestCli.startMs;
    const base = best(chained);
    say(`  ssh, one per server, commands chained   ${s(base)}  (the best by hand: one connection per server, no journal, no re-check, no rollback)`);
    say(`  ssh loop, a connection per command     ${s(best(loop))}  ${(best(loop) / base).toFixed(2)}x the chained ssh`);
    say(`  agent-update plan + start (the CLI)     ${s(ours)}  ${(ours / base).toFixed(2)}x the chained ssh (plan ${s(bestCli.planMs)}, start ${s(bestCli.startMs)}; ${perServer.toFixed(1)} remote commands per server)`);
    say(`    of which the engine alone (runUpdate in this process: no process start, no plan)  ${s(best(engine))}`);
    const per = (ms: number) => `${(ms / SERVERS).toFixed(0)} ms`;
    say(
      `    per server: agent-update ${per(ours)} (its plan ${per(bestCli.planMs)}, the engine's turn ${per(best(engine))}, the rest the two processes' start), ` +
        `the chained ssh ${per(base)} (an ssh process, a handshake and the commands each time); where one command's time goes: section "where" below`,
    );
    // The tool's own time: the wall time of its two processes less the time a remote command was
    // running (the journal's). In start, what comes once (before the first command: node, the
    // store, the first server's connection; after the last) apart from what each server costs
    // (the gaps between commands: the journal's writes, the engine's decisions, status changes).
    const own = (r: CliRun) => r.planMs + r.startMs - r.planRemoteMs - r.startRemoteMs;
    const lean = cli.reduce((a, b) => (own(a) <= own(b) ? a : b));
    const between = (lean.startMs - lean.startRemoteMs - lean.startBeforeMs - lean.startAfterMs) / SERVERS;
    say(
      `    the tool's own time (wall less the time a remote command ran, from the journal): ${per(own(lean))} per server in plan + start ` +
        `(plan ${s(lean.planMs)} of which its probes ${s(lean.planRemoteMs)}; start ${s(lean.startMs)} of which remote commands ${s(lean.startRemoteMs)})`,
    );
    say(
      `    in start: ${s(lean.startBeforeMs)} before the first remote command (node, the store, the first connection), ${s(lean.startAfterMs)} after the last, ` +
        `and ${between.toFixed(1)} ms per server between its commands`,
    );
    targets.push({ target: "the tool's own time per server in start, between its remote commands, under 15 ms", reached: `${between.toFixed(1)} ms`, met: between < 15 });
    if (!version) say('  ansible-playbook   (not installed: skipped)');
    else if (ansible.length === 0) say(`  ansible-playbook   failed: ${ansibleError}`);
    else say(`  ansible-playbook   ${s(best(ansible))}  (${version}); agent-update is ${(best(ansible) / ours).toFixed(2)}x faster`);
    const ratio = ours / base;
    targets.push({ target: 'rollout (plan + start, the CLI) no slower than one chained ssh per server', reached: `${ratio.toFixed(2)}×`, met: ratio <= 1 });
    if (ansible.length) {
      const faster = best(ansible) / ours;
      targets.push({ target: 'rollout ≥ 4× faster than Ansible', reached: `${faster.toFixed(2)}×`, met: faster >= 4 });
    }
  } finally {
    await fleet.stop();
  }
  say();
}

/** A helper's bench script, when it has been built: its output, indented. */
async function helperBench(file: string, title: string, missing: string): Promise<void> {
  say(title);
  const script = join(ROOT, 'dist/bench', file);
  if (!existsSync(script)) {
    say(`  ${missing}`);
    say();
    return;
  }
  const r = await execa(process.execPath, [script], { reject: false, env: { BENCH_SERVERS: String(SERVERS), BENCH_ROUNDS: String(ROUNDS) } });
  for (const l of `${r.stdout}${r.exitCode !== 0 ? `\n(exited ${r.exitCode}) ${r.stderr.slice(-600)}` : ''}`.split('\n')) say(`  ${l}`);
  say();
}

async function sectionCF(): Promise<void> {
  say(`## (c) plan of ${PLAN_SERVERS} probe-only servers vs xargs -P 32 ssh; (f) its peak memory`);
  const began = performance.now();
  const fleet = await startFleet({ servers: PLAN_SERVERS, probeOnly: true });
  say(`  fleet of ${PLAN_SERVERS} started in ${s(performance.now() - began)} (${Math.ceil(PLAN_SERVERS / 16)} sshd)`);
  try {
    const hosts = join(fleet.root, 'hosts');
    writeFileSync(hosts, fleet.servers.map((x) => x.host).join('\n') + '\n');
    const ssh = `ssh -F /dev/null -i ${fleet.identityFile} -o IdentitiesOnly=yes -o UserKnownHostsFile=${fleet.knownHosts} -o StrictHostKeyChecking=yes -o BatchMode=yes -p ${fleet.port}`;
    let t = performance.now();
    const x = await execa('sh', ['-c', `xargs -P 32 -I{} ${ssh} {} 'cat ~/commit' < ${hosts} | grep -c .`], { reject: false });
    const xargsMs = performance.now() - t;
    if (Number(x.stdout.trim()) !== PLAN_SERVERS) throw new Error(`xargs probed ${x.stdout.trim()} of ${PLAN_SERVERS}: ${x.stderr.slice(0, 400)}`);
    const config = fleet.writeConfig({});
    const rssFile = join(fleet.root, 'rss');
    t = performance.now();
    const p = await execa(process.execPath, ['--import', join(ROOT, 'dist/bench/rss-preload.js'), BIN, '--db', join(fleet.root, 'plan.db'), 'plan', '-c', config, '--name', 'p', '-q'], {
      reject: false,
      env: { BENCH_RSS_FILE: rssFile },
    });
    const planMs = performance.now() - t;
    if (p.exitCode !== 0) throw new Error(`plan exited ${p.exitCode}: ${p.stderr.slice(-600)}`);
    const store = new SqliteStore(join(fleet.root, 'plan.db'), { clock: systemClock });
    const probed = (await store.getServers('p')).filter((x) => x.fromCommit !== null).length;
    await store.close();
    const rss = Number(readFileSync(rssFile, 'utf8')) / 1024 / 1024;
    say(`  xargs -P 32 ssh    ${s(xargsMs)}`);
    say(`  agent-update plan  ${s(planMs)}  ${(planMs / xargsMs).toFixed(2)}x xargs' time (--concurrency 32; ${probed} of ${PLAN_SERVERS} probed)`);
    say(`  (f) peak RSS of that plan: ${rss.toFixed(0)} MB`);
    targets.push({ target: `plan of ${PLAN_SERVERS} no slower than xargs -P 32 ssh`, reached: `${(planMs / xargsMs).toFixed(2)}× its time`, met: planMs <= xargsMs });
    targets.push({ target: `< 150 MB resident for a ${PLAN_SERVERS}-server plan`, reached: `${rss.toFixed(0)} MB`, met: rss < 150 });
  } finally {
    await fleet.stop();
  }
  say();
}

async function sectionG(): Promise<void> {
  say(`## (g) plan of ${PLAN_SERVERS} probe-only servers behind one bastion vs the same servers reached directly`);
  const r = await bastionPlan(BIN, PLAN_SERVERS, ROUNDS);
  say(`  direct             ${s(r.directMs)}  (${r.probedDirect} of ${r.servers} probed)`);
  say(`  through a bastion  ${s(r.viaMs)}  ${(r.viaMs / r.directMs).toFixed(2)}x the direct time (${r.probedVia} of ${r.servers} probed)`);
  say(`  bastion logins     ${r.logins}  (its sshd's log: one per shared connection, not one per server)`);
  targets.push({ target: `plan of ${PLAN_SERVERS} behind one bastion no slower than direct`, reached: `${(r.viaMs / r.directMs).toFixed(2)}× the direct time`, met: r.viaMs <= r.directMs });
  targets.push({ target: 'a handful of bastion logins for the whole plan', reached: `${r.logins} logins`, met: r.logins <= 10 });
  say();
}

async function sectionP(): Promise<void> {
  say(`## (p) rollout of ${SERVERS} servers through the CLI (plan + start), plan in PostgreSQL vs SQLite, best of ${ROUNDS}`);
  if (postgresBin() === null) {
    say('  PostgreSQL is not installed: skipped');
    say();
    return;
  }
  const fleet = await startFleet({ servers: SERVERS });
  try {
    const r = await postgresRollout(BIN, fleet, ROUNDS);
    const total = (x: { planMs: number; startMs: number }) => x.planMs + x.startMs;
    say(`  SQLite file        ${s(total(r.sqlite))}  (plan ${s(r.sqlite.planMs)}, start ${s(r.sqlite.startMs)})`);
    say(`  PostgreSQL         ${s(total(r.postgres))}  (plan ${s(r.postgres.planMs)}, start ${s(r.postgres.startMs)})  ${(total(r.postgres) / total(r.sqlite)).toFixed(2)}x SQLite; ${r.journal} journal rows`);
    const sorted = [...r.ratios].sort((a, b) => a - b);
    const median = sorted.length % 2 === 1 ? sorted[(sorted.length - 1) / 2]! : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2;
    say(`  each round's own ratio (the load moves between rounds): ${r.ratios.map((x) => x.toFixed(2)).join(', ')}; median ${median.toFixed(2)}x`);
    const ratio = total(r.postgres) / total(r.sqlite);
    // met only when both say so: the best of each, and the middle round
    targets.push({ target: `${SERVERS}-server rollout with the plan in PostgreSQL ≤ 1.2× SQLite`, reached: `${ratio.toFixed(2)}× (best of each), ${median.toFixed(2)}× (median round)`, met: ratio <= 1.2 && median <= 1.2 });
  } finally {
    await fleet.stop();
  }
  say();
}

async function sectionDE(): Promise<void> {
  const dir = mkdtempSync(join(os.tmpdir(), 'agent-update-bench-'));
  try {
    const db = join(dir, 'big.db');
    const store = new SqliteStore(db, { clock: systemClock });
    await writeSyntheticUpdate(store, 'big', STATUS_SERVERS);
    await store.close();
    const rounds = Math.max(3, ROUNDS);
    const runs = async (args: string[]) => {
      const xs: number[] = [];
      for (let i = 0; i < rounds; i++) xs.push(await timeNode(args));
      return best(xs);
    };
    say(`## (d) status of a synthetic ${STATUS_SERVERS}-server update (best of ${rounds}, whole process)`);
    const node0 = await runs(['-e', '0']);
    const json = await runs([BIN, '--db', db, 'status', 'big', '--json']);
    const table = await runs([BIN, '--db', db, 'status', 'big']);
    const logs = await runs([BIN, '--db', db, 'logs', 'big']);
    say(`  status big --json  ${msf(json)}`);
    say(`  status big         ${msf(table)}`);
    say(`  logs big           ${msf(logs)}  (${STATUS_SERVERS * 7} journalled commands)`);
    targets.push({ target: `status --json of ${STATUS_SERVERS} servers < 300 ms`, reached: msf(json), met: json < 300 });
    say();
    say(`## (e) cold start (best of ${rounds})`);
    const help = await runs([BIN, '--help']);
    const list = await runs([BIN, '--db', db, 'status']);
    say(`  node -e 0          ${msf(node0)}  (Node's own start, the floor)`);
    say(`  --help             ${msf(help)}`);
    say(`  status             ${msf(list)}  (the list, with the ${STATUS_SERVERS}-server update in it)`);
    targets.push({ target: 'cold start of --help < 150 ms', reached: `${msf(help)} (node -e 0: ${msf(node0)})`, met: help < 150 });
    targets.push({ target: 'cold start of status < 150 ms', reached: `${msf(list)} (node -e 0: ${msf(node0)})`, met: list < 150 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  say();
}

async function machine(): Promise<string[]> {
  const cpus = os.cpus();
  const sshd = await execa(SSHD, ['-V'], { reject: false });
  return [
    `- CPU: ${cpus[0]?.model ?? 'unknown'}, ${cpus.length} cores; ${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    `- load average at the start: ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} (other work on the machine shows in every figure)`,
    `- Node ${process.version}; ${(sshd.stderr || sshd.stdout).split('\n')[0]}; ${(await ansibleVersion()) ?? 'no Ansible'}`,
    `- ${os.type()} ${os.release()}`,
  ];
}

async function main(): Promise<void> {
  if (!sshdAvailable()) {
    console.error('bench: needs OpenSSH sshd, ssh and git (apt-get install openssh-server)');
    process.exit(2);
  }
  const about = await machine();
  if (!SKIP.includes('a')) await sectionA();
  if (!SKIP.includes('b')) await helperBench('prepare.bench.js', '## (b) a 1 s fetch, with and without agent.prepare', '(b) not built yet');
  if (!SKIP.includes('c')) await sectionCF();
  if (!SKIP.includes('d')) await sectionDE();
  if (!SKIP.includes('g')) await sectionG();
  if (!SKIP.includes('p')) await sectionP();
  if (!SKIP.includes('w')) await helperBench('where.bench.js', '## where one command\'s time goes', '(where.bench.ts not built yet)');
  say('## targets (issue 13)');
  for (const t of targets) say(`  ${t.met === null ? '?' : t.met ? 'met    ' : 'NOT met'}  ${t.target}: ${t.reached}`);
  const knobs = ['BENCH_SERVERS', 'BENCH_ROUNDS', 'BENCH_PLAN_SERVERS', 'BENCH_STATUS_SERVERS', 'BENCH_SKIP'].filter((k) => process.env[k] !== undefined).map((k) => `${k}=${process.env[k]}`);
  writeFileSync(
    RESULTS,
    [
      '# npm run bench: results',
      '',
      `Run ${new Date().toISOString()}.`,
      '',
      ...about,
      '',
      `Command: \`${[...knobs, 'npm run bench'].join(' ')}\``,
      '',
      '```',
      ...lines,
      '```',
      '',
    ].join('\n'),
  );
  console.log(`\nwritten to ${RESULTS}`);
}

await main();
