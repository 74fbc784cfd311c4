/**
 * The health check after a restart or a rollback: agent.health.command polled until its output
 * contains `expect` (and stays so for stable_for), or its timeout.
 */
import { formatDuration } from '../util/duration.js';
import { healthCheckOf, phaseValues } from './phases.js';
import { type Hop } from '../model/hops.js';
import type { ServerStep } from '../model/lifecycle.js';
import { ServerRun } from './server-run.js';
import { describeFailure } from './read-commit.js';

/** Characters kept at each end of a health attempt's output between the first and the last. */
export const HEALTH_KEEP_CHARS = 512;

/** Poll `agent.health.command` every interval until its output contains `expect`, or the timeout. */
export async function verifyHealth(run: ServerRun, phase: ServerStep, hop: Hop): Promise<{ ok: true } | { ok: false; error: string }> {
  const { clock, emit } = run.ctx.deps;
  const signal = run.ctx.signal;
  const { agent: { health }, ssh } = run.settings;
  // The same values as the commands of the phase: during a rollback {previous_commit} is the target that failed.
  const values =
    phase === 'verify-rollback'
      ? phaseValues(run.settings, 'verify-rollback', { target: hop.to, from: hop.from, stone: hop.stone })!
      : phaseValues(run.settings, 'verify', { target: hop.to, from: hop.from })!;
  // the commit this verify waits for, as its messages name it
  const commit = values.commit!;
  let expect: string;
  let command: string;
  try {
    ({ command, expect } = healthCheckOf(run.settings, values));
  } catch (e) {
    return { ok: false, error: `health command not run: ${(e as Error).message}` };
  }
  const begin = clock.now().getTime();
  const deadline = begin + health.timeoutMs;
  // agent.health.stable_for: once healthy, it must stay so (every check) this long.
  const stableFor = health.stableForMs ?? 0;
  let healthySince: number | null = null;
  let last: string;
  // The journal keeps the first attempt and the latest in full; each one between is cut down
  // once the next has run, so a long verify stores kilobytes, not megabytes, per server.
  let between: number | null = null;
  for (let attempt = 1; ; attempt++) {
    const until = healthySince === null ? deadline : healthySince + stableFor;
    const r = await run.exec(phase, command, Math.min(ssh.commandTimeoutMs, Math.max(until - clock.now().getTime(), 1_000)));
    if (between !== null) await run.ctx.deps.store.summarizeCommand(between, HEALTH_KEEP_CHARS);
    if (attempt > 1) between = run.lastEntryId;
    const good = r.code === 0 && r.stdout.includes(expect);
    last = good ? 'healthy' : r.code === 0 ? `output does not contain ${JSON.stringify(expect)}: ${r.stdout.trim().slice(0, 200)}` : describeFailure(r);
    const now = clock.now().getTime();
    if (good && healthySince === null) healthySince = now;
    if (good && now - healthySince! >= stableFor) return { ok: true };
    if (!good && healthySince !== null) {
      return {
        ok: false,
        error:
          `came online at ${commit.slice(0, 12)} but did not stay healthy: health ${last} after ${formatDuration(now - healthySince)} ` +
          `of the ${formatDuration(stableFor)} it must stay healthy (agent.health.stable_for)`,
      };
    }
    if (signal.aborted) return { ok: false, error: `interrupted while verifying: ${last}` };
    if (healthySince === null && now + health.intervalMs >= deadline) {
      return { ok: false, error: `not online at ${commit.slice(0, 12)} after ${formatDuration(now - begin)} (health ${last})` };
    }
    emit({
      type: 'health-waiting',
      update: run.server.updateName,
      server: run.server.name,
      attempt,
      elapsedMs: now - begin,
      output: last,
      ...(healthySince !== null ? { stableMs: now - healthySince, stableForMs: stableFor } : {}),
    });
    await clock.sleep(healthySince === null ? health.intervalMs : Math.min(health.intervalMs, healthySince + stableFor - now), signal);
  }
}
