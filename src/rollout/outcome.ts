/**
 * The exit code an update's run ends with (docs/reference/exit-codes.md), pure: 0 success, 1
 * failure or partial success, 3 a clean pause, 5 a pause after a server of that run failed or
 * was rolled back. A run is one start, resume or takeover: what an earlier run did was said by
 * that run's own exit code. `start`/`resume` know their run's servers (failedInRun); `status
 * --watch` finds the run from the events and the servers' end times (failedSince).
 */
import { EXIT } from '../errors.js';
import { FAILED_SERVER, type UpdateStatus } from '../model/lifecycle.js';
import type { ServerRecord } from '../model/records.js';

export function exitCodeFor(status: UpdateStatus, failedInRun: readonly ServerRecord[] = []): number {
  if (status === 'success') return EXIT.ok;
  if (status === 'paused') return failedInRun.length > 0 ? EXIT.pausedAfterFailure : EXIT.paused;
  return EXIT.failure;
}

/** The servers that ended failed, rolled-back or fatal between `before` (the run's start) and `after`. */
export function failedInRun(before: readonly ServerRecord[], after: readonly ServerRecord[]): ServerRecord[] {
  const was = new Map(before.map((s) => [s.id, s.status]));
  return after.filter((s) => FAILED_SERVER.has(s.status) && was.get(s.id) !== s.status);
}

/** The servers that ended failed, rolled-back or fatal at or after `since` (ISO 8601: the run's start). */
export function failedSince(servers: readonly ServerRecord[], since: string | null): ServerRecord[] {
  if (since === null) return [];
  const from = Date.parse(since);
  return servers.filter((s) => FAILED_SERVER.has(s.status) && s.endedAt !== null && Date.parse(s.endedAt) >= from);
}

/**
 * How bad each exit code is when several updates end at once (the batches of `start`, the
 * updates a `status --watch` followed): 1 > 5 > 4 > 3 > 0, an unknown code worse than a pause.
 */
const SEVERITY: Record<number, number> = {
  [EXIT.ok]: 0,
  [EXIT.paused]: 1,
  [EXIT.busy]: 2,
  [EXIT.pausedAfterFailure]: 3,
  [EXIT.failure]: 4,
  [EXIT.interrupted]: 5,
};

/** The worst of `codes` (0 when there are none). */
export function worstExit(codes: Iterable<number>): number {
  let worst: number = EXIT.ok;
  for (const code of codes) if ((SEVERITY[code] ?? 3) > (SEVERITY[worst] ?? 0)) worst = code;
  return worst;
}

/** `s1 rolled-back, s3 failed`: the servers a pause's exit 5 is about, as a message names them. */
export function describeFailed(servers: readonly ServerRecord[]): string {
  return servers.map((s) => `${s.name} ${s.status}`).join(', ');
}
