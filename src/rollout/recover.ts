/**
 * What a takeover does with a server an executor left `running` when it died: a pure function
 * of what was recorded (its step, whether its previous commit was recorded, the hop it was on)
 * and what the re-check finds on it now. rollout/server-flow.ts carryOut does it, for a takeover
 * and for a server's own turn (from FRESH); the table of cases is tested in
 * test/rollout/recover.test.ts without a server. A rolling restart (settings.restartOnly) has
 * its own table, restartRecoveryOf, below.
 */
import type { JournalEntry, ServerRecord } from '../model/records.js';
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

// ---- a rolling restart (settings.restartOnly) -------------------------------------------------

/**
 * How far one restart command of a server got, as the journal says: `done` (it exited 0),
 * `not-sent` (no row, or rows of tries that were never run: refused, not connected, fenced),
 * `unknown` (sent, and its end never recorded (the executor died while it ran) or cut off: lost,
 * timed out, killed), `failed` (it exited non-zero: `why`).
 */
export type RestartProgress = { name: string } & ({ state: 'done' | 'not-sent' | 'unknown' } | { state: 'failed'; why: string });

/** A journal row, as restartProgress reads it. */
export type RestartRow = Pick<JournalEntry, 'command' | 'endedAt' | 'exitCode' | 'error'>;

/**
 * Each restart command's progress, from the server's journal rows of phase `restart` in the order
 * written (`restarts`: each restart's name and the command as the journal shows it, expanded as
 * the executor sent it). The executor runs them in order, the next only after one exited 0, so a
 * row is the current command's (rows of our own scripts, the wait for a command in flight, are
 * not any restart's).
 */
export function restartProgress(restarts: ReadonlyArray<{ name: string; command: string }>, rows: readonly RestartRow[]): RestartProgress[] {
  const out: RestartProgress[] = restarts.map((r) => ({ name: r.name, state: 'not-sent' }));
  let i = 0;
  for (const row of rows) {
    if (i >= restarts.length) break;
    if (row.command !== restarts[i]!.command) continue;
    const cur = out[i]!;
    if (row.endedAt !== null && row.exitCode === 0) {
      out[i] = { name: cur.name, state: 'done' };
      i++;
    } else if (row.endedAt !== null && row.exitCode !== null) {
      out[i] = { name: cur.name, state: 'failed', why: `exited ${row.exitCode}${row.error ? `: ${row.error}` : ''}` };
      break;
    } else if (row.endedAt === null || !/^(not run|could not connect)\b/.test(row.error ?? '')) {
      out[i] = { name: cur.name, state: 'unknown' };
    }
  }
  return out;
}

export type RestartRecovery =
  /** nothing had run and it cannot be read now: untouched, unreachable */
  | { kind: 'unreachable'; reason: string }
  /** nothing had run: record the commit it runs, then its restarts from the first */
  | { kind: 'begin'; commit: string }
  /** the restarts before `from` are done, the others were never sent: run them, then verify */
  | { kind: 'restart'; from: number }
  /** the restarts are done, or one was in flight (never run twice blindly): verify; `note` says which */
  | { kind: 'verify'; note: string | null }
  /** it cannot be finished: failed (`diagnosed`: agent.diagnose already ran for this failure) */
  | { kind: 'failed'; reason: string; diagnosed: boolean };

/**
 * What a rolling restart does with a server at its turn (from FRESH) or left `running` by an
 * executor that died: a pure function of what was recorded (its step, the commit recorded when
 * its restart began, the journal's progress of each restart) and what the re-check finds. Never
 * `skipped` (a restart has no target to be at), never a rollback (nothing was changed); a restart
 * whose end was never recorded is not run again: the server is verified.
 */
export function restartRecoveryOf(
  server: Pick<ServerRecord, 'step' | 'fromCommit' | 'error'>,
  found: Found,
  progress: readonly RestartProgress[],
  when: 'turn' | 'takeover' = 'takeover',
): RestartRecovery {
  const step = server.step === null ? null : STEP_TABLE[server.step];
  if (step?.rollingBack) return { kind: 'failed', reason: server.error ?? `interrupted during ${server.step}`, diagnosed: true };
  if (server.fromCommit === null) {
    // nothing has run yet (its turn), or the crash came before the commit was recorded: no restart was sent
    if (!found.ok) return { kind: 'unreachable', reason: `re-check${when === 'takeover' ? ' after a crash' : ''} failed, nothing was run: ${found.error}` };
    return { kind: 'begin', commit: found.commit };
  }
  if (!found.ok) return { kind: 'failed', reason: `re-checked after a crash during ${server.step}: ${found.error}`, diagnosed: false };
  if (found.commit !== server.fromCommit) {
    return {
      kind: 'failed',
      reason: `re-checked after a crash during ${server.step}: it runs ${found.commit.slice(0, 12)}, not ${server.fromCommit.slice(0, 12)} as when its restart began (a restart changes no commit: someone else did)`,
      diagnosed: false,
    };
  }
  if (step?.restarted) return { kind: 'verify', note: null };
  const k = progress.findIndex((p) => p.state !== 'done');
  if (k === -1) return { kind: 'verify', note: null };
  const p = progress[k]!;
  if (p.state === 'failed') return { kind: 'failed', reason: `restart ${p.name} ${p.why}`, diagnosed: false };
  if (p.state === 'unknown') {
    const after = progress.slice(k + 1).map((x) => x.name);
    return {
      kind: 'verify',
      note:
        `restart ${p.name} was sent when the executor died and its end was never recorded: it is not run again (a restart is never run twice blindly)` +
        `${after.length > 0 ? `, nor ${after.join(', ')} after it` : ''}; verifying`,
    };
  }
  return { kind: 'restart', from: k };
}
