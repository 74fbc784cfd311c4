/**
 * The progress line of `status NAME --watch` (issue 25): the live view's `k/N done · f failed ·
 * ETA 3m10s`, made from the stored servers instead of a run's events, with the same sums and
 * ETA (UpdateProgress): the servers the update works on, those ended (an unreachable one at its
 * turn too, as the live view counts it), the failed among them, the mean time of those that
 * finished with work (their start to their end) × the servers left, less what the one in flight
 * has spent. The ETA only while the update runs.
 */
import { ACTIVE_SERVER, WORKED_SERVER, worksOn } from '../model/lifecycle.js';
import type { ServerRecord, UpdateRecord } from '../model/records.js';
import { progressText, UpdateProgress } from './live.js';

export function watchProgress(u: UpdateRecord, servers: readonly ServerRecord[], now: number): string {
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
  return u.status === 'running' ? p.summary(now) : progressText(p.done, p.total, p.failed, null);
}
