import pLimit from 'p-limit';
import type { ServerRecord } from '../model/records.js';
import type { CommitRelation, LogEntry, SourceHistory } from './source.js';

/** How many commits of the log a plan shows (and `plan --json` carries). */
export const LOG_LINES = 10;

/** One distinct commit running on the fleet, as the plan's probes found it. */
export interface RunningCommit {
  commit: string;
  /** the servers at it, in plan order */
  servers: string[];
  /** null when the source history could not be read */
  relation: CommitRelation | null;
  /** commits of the target it lacks (updating adds them); null when unknown or unread */
  behind: number | null;
  /** commits of it the target lacks (updating drops them: a downgrade); null when unknown or unread */
  ahead: number | null;
}

/**
 * What the update changes (`plan`'s "changes", `plan --json`'s `changes`): the commits between
 * the oldest commit running on the fleet and the target, read from the source repository.
 */
export interface PlanChanges {
  /** the target commit */
  to: string;
  /** the oldest running commit the target descends from (the most commits behind), or null */
  from: string | null;
  /** how many commits `from..to` holds (`git rev-list --count`); null with no `from` */
  commits: number | null;
  /** the newest commits of `from..to`, at most LOG_LINES, as `git log --oneline` lists them */
  log: LogEntry[];
  /** commits of `from..to` not in `log` */
  more: number;
  /** every distinct commit the probes found, the oldest (most behind) first, then the target, downgrades, diverged, unknown */
  running: RunningCommit[];
  /** why the history could not be read (then relations and counts are null), or null */
  error: string | null;
}

const ORDER: Record<CommitRelation, number> = { behind: 0, target: 1, ahead: 2, diverged: 3, unknown: 4 };

/**
 * The changes of an update from its probed servers (those with a known commit: pending and
 * skipped ones) and the source history, or the error that kept it from being read.
 */
export async function planChanges(history: SourceHistory | { error: string }, target: string, servers: readonly ServerRecord[]): Promise<PlanChanges> {
  const byCommit = new Map<string, string[]>();
  for (const s of servers) {
    if (s.fromCommit === null || (s.status !== 'pending' && s.status !== 'skipped')) continue;
    const list = byCommit.get(s.fromCommit) ?? [];
    list.push(s.name);
    byCommit.set(s.fromCommit, list);
  }
  const running: RunningCommit[] = [...byCommit].map(([commit, names]) => ({ commit, servers: names, relation: null, behind: null, ahead: null }));
  const none: PlanChanges = { to: target, from: null, commits: null, log: [], more: 0, running, error: null };
  if ('error' in history) return { ...none, error: history.error };
  try {
    const known = await history.known([target, ...byCommit.keys()]);
    if (!known.has(target)) return { ...none, error: `the target ${target.slice(0, 12)} is not on a branch or tag of the source repository` };
    const limit = pLimit(8);
    await Promise.all(
      running.map((r) =>
        limit(async () => {
          if (!known.has(r.commit)) {
            r.relation = 'unknown';
            return;
          }
          Object.assign(r, await history.relation(r.commit, target));
        }),
      ),
    );
    running.sort((a, b) => ORDER[a.relation!] - ORDER[b.relation!] || (b.behind ?? 0) - (a.behind ?? 0) || (b.ahead ?? 0) - (a.ahead ?? 0));
    const oldest = running.find((r) => r.relation === 'behind');
    if (!oldest) return { ...none, running };
    const log = await history.log(oldest.commit, target, LOG_LINES);
    return { to: target, from: oldest.commit, commits: oldest.behind, log, more: oldest.behind! - log.length, running, error: null };
  } catch (e) {
    return { ...none, running: running.map((r) => ({ ...r, relation: null, behind: null, ahead: null })), error: (e as Error).message };
  }
}
