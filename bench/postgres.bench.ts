/**
 * `npm run bench` section (p): the same sequential rollout of BENCH_SERVERS servers (a real sshd
 * on loopback) run through the CLI as a user runs it (`plan`, then `start`, each its own
 * process), once with the plan in a SQLite file and once in PostgreSQL on loopback (a real
 * server started for the bench, as the tests start theirs), alternating, best of BENCH_ROUNDS.
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
    for (let round = 1; round <= rounds; round++) {
      for (const kind of ['sqlite', 'postgres'] as const) {
        await resetFleet(fleet);
        const name = `pg-bench-${kind}-${round}`;
        // one plan store per kind for every round, as a team keeps one: the first plan creates it
        const db = kind === 'sqlite' ? join(fleet.root, 'pg-bench.db') : `${pg.url}?schema=bench`;
        const config = fleet.writeConfig({ name }, join(fleet.root, `${name}.yaml`));
        const planMs = await timed(bin, ['--db', db, '-q', 'plan', '-c', config, '--name', name]);
        const startMs = await timed(bin, ['--db', db, '-q', 'start', name]);
        if (planMs + startMs < best[kind].planMs + best[kind].startMs) best[kind] = { planMs, startMs };
        if (kind === 'postgres') {
          const logs = await execa(process.execPath, [bin, '--db', db, 'logs', name, '--json'], { reject: false });
          journal = (logs.stdout.match(/"phase"/g) ?? []).length;
        }
      }
    }
    return { ...best, journal };
  } finally {
    await pg.stop();
  }
}
