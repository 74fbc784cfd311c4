/**
 * `npm run bench` section (p): the same sequential rollout of BENCH_SERVERS servers (a real sshd
 * on loopback) run through the CLI as a user runs it (`plan`, then `start`, each its own
 * process), once with the plan in a SQLite file and once in PostgreSQL on loopback (a real
 * server started for the bench, as the tests start theirs), alternating (which goes first too),
 * best of BENCH_ROUNDS; and, as the machine's load moves between rounds, the median of each
 * round's own ratio.
 * Each kind keeps one plan store over the rounds, as a team does (round 1's plan creates it).
 * Issue 23's target: PostgreSQL no slower than 1.2× SQLite. Run alone with
 * `BENCH_SKIP=abcdgw npm run bench`.
 */
import { join } from 'node:path';
import { execa } from 'execa';
import type { Fleet } from '../test/fleet/fleet.js';
import { startPostgres } from '../test/helpers/postgres.js';
import { resetFleet } from './rollout.bench.js';

export interface PgBench {
  sqlite: { planMs: number; startMs: number };
  postgres: { planMs: number; startMs: number };
  /** journal rows written per rollout (the same on both) */
  journal: number;
  /** each round's PostgreSQL time over its SQLite time, plan + start */
  ratios: number[];
}

async function timed(bin: string, args: string[]): Promise<number> {
  const began = performance.now();
  const r = await execa(process.execPath, [bin, ...args], { reject: false, stdin: 'ignore' });
  const ms = performance.now() - began;
  if (r.exitCode !== 0) throw new Error(`agent-update ${args.join(' ')} exited ${r.exitCode}: ${r.stderr.slice(-600)}`);
  return ms;
}

export async function postgresRollout(bin: string, fleet: Fleet, rounds: number): Promise<PgBench> {
  const pg = await startPostgres('bench');
  try {
    const best = { sqlite: { planMs: Infinity, startMs: Infinity }, postgres: { planMs: Infinity, startMs: Infinity } };
    let journal = 0;
    const ratios: number[] = [];
    for (let round = 1; round <= rounds; round++) {
      const took = { sqlite: 0, postgres: 0 };
      for (const kind of round % 2 === 1 ? (['sqlite', 'postgres'] as const) : (['postgres', 'sqlite'] as const)) {
        await resetFleet(fleet);
        const name = `pg-bench-${kind}-${round}`;
        // one plan store per kind for every round, as a team keeps one: the first plan creates it
        const db = kind === 'sqlite' ? join(fleet.root, 'pg-bench.db') : `${pg.url}?schema=bench`;
        const config = fleet.writeConfig({ name }, join(fleet.root, `${name}.yaml`));
        const planMs = await timed(bin, ['--db', db, '-q', 'plan', '-c', config, '--name', name]);
        const startMs = await timed(bin, ['--db', db, '-q', 'start', name]);
        took[kind] = planMs + startMs;
        if (planMs + startMs < best[kind].planMs + best[kind].startMs) best[kind] = { planMs, startMs };
        if (kind === 'postgres') {
          const logs = await execa(process.execPath, [bin, '--db', db, 'logs', name, '--json'], { reject: false });
          journal = (logs.stdout.match(/"phase"/g) ?? []).length;
        }
      }
      ratios.push(took.postgres / took.sqlite);
    }
    return { ...best, journal, ratios };
  } finally {
    await pg.stop();
  }
}
