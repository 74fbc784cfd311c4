import type { RolloutSettings } from '../config/types.js';
import type { PlaceholderValues } from '../util/shell.js';
import type { ServerRecord } from '../model/records.js';

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
 * The hop a server is on (issue 14): its index, of how many, and the (from, to) of that hop,
 * which is all the executor's one-hop logic (update, verify, rollback, takeover) works with.
 * Without a path it is the one hop fromCommit → toCommit (or the update's commit).
 */
export interface HopView {
  /** 0-based */
  index: number;
  count: number;
  /** the commit before this hop: the previous hop's, or the server's own before the update */
  from: string | null;
  /** this hop's commit */
  to: string;
  /** the versions of both ends, when known */
  fromVersion: string | null;
  toVersion: string | null;
  /** `from` is a stepping stone (index > 0) */
  stone: boolean;
}

export function hopOf(s: Pick<ServerRecord, 'path' | 'hop' | 'fromCommit' | 'toCommit' | 'agentVersion'>, updateCommit: string): HopView {
  const path = s.path ?? null;
  if (path === null || path.length === 0) {
    return { index: 0, count: 1, from: s.fromCommit, to: s.toCommit ?? updateCommit, fromVersion: s.agentVersion ?? null, toVersion: null, stone: false };
  }
  const index = Math.min(Math.max(s.hop ?? 0, 0), path.length - 1);
  const prev = index > 0 ? path[index - 1]! : null;
  return {
    index,
    count: path.length,
    from: prev ? prev.commit : s.fromCommit,
    to: path[index]!.commit,
    fromVersion: prev ? prev.version : (s.agentVersion ?? null),
    toVersion: path[index]!.version,
    stone: prev !== null,
  };
}

/** The commit a server's update ends at: its path's last hop, else the update's commit. */
export function finalTarget(s: Pick<ServerRecord, 'path'>, updateCommit: string): string {
  return s.path?.at(-1)?.commit ?? updateCommit;
}

/** `hop 2 of 3 (1.1.0 → 1.3.0)`; empty for a server with one hop. */
export function hopLabel(h: HopView): string {
  if (h.count <= 1) return '';
  const end = (v: string | null, c: string | null) => v ?? (c ? c.slice(0, 12) : '?');
  return `hop ${h.index + 1} of ${h.count} (${end(h.fromVersion, h.from)} → ${end(h.toVersion, h.to)})`;
}

/**
 * {repo}, {branch}, {commit} and {previous_commit} of a phase: the one definition the executor
 * (rollout/run.ts) and `plan --show-commands` (plan/commands.ts) share. Going forward (prepare,
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
