/**
 * The progress line of `status NAME --watch` (issue 25): the live view's `k/N done · f failed ·
 * ETA 3m10s`, made from the stored servers instead of a run's events, with the same sums and
 * ETA (UpdateProgress): the servers the update works on, those ended (an unreachable one at its
 * turn too, as the live view counts it), the failed among them, the mean time of those that
 * finished with work (their start to their end) × the servers left, less what the one in flight
 * has spent. The ETA only while the update runs. For an update that was split, over every batch
 * (issue 25).
 */
import { ACTIVE_SERVER, WORKED_SERVER, worksOn } from '../model/lifecycle.js';
import type { ServerRecord, UpdateRecord } from '../model/records.js';
import { overallParts, UpdateProgress } from './live.js';
import { fitParts, type Part } from './fit.js';

/** One update's progress as the live view keeps it, from its stored servers. */
function progressOf(u: UpdateRecord, servers: readonly ServerRecord[], now: number): UpdateProgress {
  const p = new UpdateProgress(u.name);
  const worked = servers.filter(worksOn);
  const ended = worked.filter((s) => !ACTIVE_SERVER.has(s.status));
  p.total = worked.length;
  p.done = ended.length;
  p.failed = ended.filter((s) => s.status !== 'success').length;
  for (const s of ended) {
    if (WORKED_SERVER.has(s.status) && s.startedAt !== null && s.endedAt !== null) p.durations.push(Math.max(0, Date.parse(s.endedAt) - Date.parse(s.startedAt)));
  }
  const flying = servers.find((s) => s.status === 'running');
  if (flying) {
    const since = flying.startedAt !== null ? Date.parse(flying.startedAt) : now;
    p.inFlight = { server: flying.name, host: flying.host, port: flying.port, step: flying.step ?? 'running', since, note: null };
  }
  // the ETA only while it runs
  p.ended = u.status === 'running' ? null : u.status;
  return p;
}

export function watchProgress(u: UpdateRecord, servers: readonly ServerRecord[], now: number): string {
  return fitParts(watchParts([{ u, servers }], now), null);
}

/**
 * The progress line as parts (the ETA gives way on a narrow terminal); for a split (the update,
 * then its batches) the sums over every batch and the ETA of the one that ends last, as the live
 * view's overall line.
 */
export function watchParts(split: ReadonlyArray<{ u: UpdateRecord; servers: readonly ServerRecord[] }>, now: number): Part[] {
  const ps = split.map(({ u, servers }) => progressOf(u, servers, now));
  return ps.length === 1 && ps[0]!.ended === null ? ps[0]!.summaryParts(now) : overallParts(ps, now);
}
