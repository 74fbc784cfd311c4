/**
 * What a takeover does with a server an executor left `running` when it died: a pure function
 * of what was recorded (its step, whether its previous commit was recorded, the hop it was on)
 * and what the re-check finds on it now. rollout/server-flow.ts carryOut does it, for a takeover
 * and for a server's own turn (from FRESH); the table of cases is tested in
 * test/rollout/recover.test.ts without a server.
 */
import type { ServerRecord } from '../model/records.js';
import type { Hop } from '../model/hops.js';
import { STEP_TABLE } from '../model/lifecycle.js';

export type Found = { ok: true; commit: string } | { ok: false; error: string };

export type Recovery =
  /**
   * it died while diagnosing or rolling back, or the hop's state cannot be trusted: roll the hop
   * back (`diagnosed`: agent.diagnose already ran for this failure, it is not run again)
   */
  | { kind: 'rollback'; reason: string; diagnosed: boolean }
  /** nothing had run and it cannot be read now: untouched, unreachable */
  | { kind: 'unreachable'; reason: string }
  /** nothing had run and it is already at its final target */
  | { kind: 'skipped'; commit: string }
  /** nothing had run: update it from the start (its previous commit is what was found) */
  | { kind: 'begin'; from: string }
  /** the hop's commit is on it: finish the hop (the update commands again if it died in them) */
  | { kind: 'finish-hop'; skipUpdate: boolean }
  /** still at the commit before the hop: run the hop again */
  | { kind: 'redo-hop' };

/**
 * A server whose turn has come: nothing has run on it yet. Its turn is recovery from this state,
 * so a fresh server and one a crash left before its first update command take the same path.
 */
export const FRESH: Pick<ServerRecord, 'step' | 'fromCommit' | 'error'> = { step: 'update', fromCommit: null, error: null };

/** `when`: its own turn (`turn`, from FRESH) or a takeover after a crash; only the wording differs. */
export function recoveryOf(
  server: Pick<ServerRecord, 'step' | 'fromCommit' | 'error'>,
  hop: Pick<Hop, 'from' | 'to'>,
  finalTarget: string,
  found: Found,
  when: 'turn' | 'takeover' = 'takeover',
): Recovery {
  const step = server.step === null ? null : STEP_TABLE[server.step];
  if (step?.rollingBack) {
    return { kind: 'rollback', reason: server.error ?? `interrupted during ${server.step}`, diagnosed: true };
  }
  if (server.fromCommit === null) {
    // Nothing has run yet (its turn), or the crash came before the previous commit was recorded,
    // so no update command had run: a failed re-check leaves it untouched (nothing to roll back).
    if (!found.ok) return { kind: 'unreachable', reason: `re-check${when === 'takeover' ? ' after a crash' : ''} failed, nothing was changed: ${found.error}` };
    if (found.commit === finalTarget) return { kind: 'skipped', commit: found.commit };
    return { kind: 'begin', from: found.commit };
  }
  if (!found.ok) return { kind: 'rollback', reason: `re-checked after a crash: ${found.error}`, diagnosed: false };
  // At the hop's commit: if it died during the update step, a later update command (a build, a
  // migration) may not have run, so all of them run again (they must be idempotent).
  if (found.commit === hop.to) return { kind: 'finish-hop', skipUpdate: step === null || step.updated };
  // At the commit before the hop (the server's own, or the stepping stone it was verified at).
  if (found.commit === hop.from) return { kind: 'redo-hop' };
  return { kind: 'rollback', reason: `re-checked after a crash during ${server.step}: found ${found.commit.slice(0, 12)}`, diagnosed: false };
}
