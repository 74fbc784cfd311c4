import type { RolloutSettings } from '../config/types.js';
import { expandCommand, expandText, type PlaceholderValues } from '../util/shell.js';

/** The phases whose commands get placeholder values (the re-check's version command has none). */
export type ValuedPhase = 'prepare' | 'update' | 'restart' | 'verify' | 'diagnose' | 'rollback' | 'verify-rollback';

/**
 * Where a rollback goes: rollback.commit, else the server's own previous commit; null when
 * neither is known. A hop after the first (`stone`: `from` is a stepping stone's commit the
 * server was verified at) goes back to that stone, never to rollback.commit.
 */
export function rollbackTarget(settings: Pick<RolloutSettings, 'rollback'>, from: string | null, stone = false): string | null {
  return stone ? from : (settings.rollback.commit ?? from);
}

/**
 * agent.health's command and the text its output must contain, with `values` filled in (a verify,
 * a rollback's verify, a re-check by the guard or a bake); throws where a value cannot be placed.
 */
export function healthCheckOf(settings: Pick<RolloutSettings, 'agent'>, values: PlaceholderValues): { command: string; expect: string } {
  const { health } = settings.agent;
  return { command: expandCommand(health.command, values), expect: expandText(health.expect, values) };
}

/**
 * {repo}, {branch}, {commit} and {previous_commit} of a phase: the one definition the executor
 * (rollout/server-flow.ts) and `plan --show-commands` (plan/commands.ts) share. Going forward (prepare,
 * update, restart, verify, and diagnose, which looks at the target that failed) {commit} is the
 * target and {previous_commit} the server's commit (verify and diagnose read a missing one as
 * ''); in the rollback phases {commit} is the rollback target and
 * {previous_commit} the target that failed. Null for a rollback phase with nowhere to go.
 */
export function phaseValues(
  settings: Pick<RolloutSettings, 'source' | 'rollback'>,
  phase: ValuedPhase,
  c: { target: string | null; from: string | null; stone?: boolean },
): PlaceholderValues | null {
  const { repo, branch } = settings.source;
  if (phase === 'rollback' || phase === 'verify-rollback') {
    const to = rollbackTarget(settings, c.from, c.stone ?? false);
    return to === null ? null : { repo, branch, commit: to, previous_commit: c.target };
  }
  if (c.target === null) throw new Error(`phaseValues: no target for ${phase}`);
  return { repo, branch, commit: c.target, previous_commit: phase === 'verify' || phase === 'diagnose' ? (c.from ?? '') : c.from };
}
