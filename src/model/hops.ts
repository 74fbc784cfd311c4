/**
 * A server's hops: the moves of its path (stepping stones, undo), each from the commit before it
 * to its stop (records.ts PathStop). Pure: the executor, a takeover, history and the status JSON
 * read a server's hop from its record the same way.
 */
import type { ServerRecord } from './records.js';

/**
 * The hop a server is on (issue 14): its index, of how many, and the (from, to) of that hop,
 * which is all the executor's one-hop logic (update, verify, rollback, takeover) works with.
 * Without a path it is the one hop fromCommit → toCommit (or the update's commit).
 */
export interface Hop {
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

export function hopOf(s: Pick<ServerRecord, 'path' | 'hop' | 'fromCommit' | 'toCommit' | 'agentVersion'>, updateCommit: string): Hop {
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
export function hopLabel(h: Hop): string {
  if (h.count <= 1) return '';
  const end = (v: string | null, c: string | null) => v ?? (c ? c.slice(0, 12) : '?');
  return `hop ${h.index + 1} of ${h.count} (${end(h.fromVersion, h.from)} → ${end(h.toVersion, h.to)})`;
}
