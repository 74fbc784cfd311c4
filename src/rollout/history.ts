import { UsageError } from '../errors.js';
import type { ReportStore, RunEvent } from '../store/port.js';
import type { ServerRecord, UpdateRecord } from '../model/records.js';
import { didYouMean } from '../util/did-you-mean.js';
import { rollbackTarget } from './phases.js';
import { hopOf } from '../model/hops.js';
import type { ServerStatus } from '../model/lifecycle.js';

/**
 * `history`: each server's commits over time, across every update in the database (batches of
 * a split included: a batch is an update of its own). Read from what the updates recorded (each
 * server row's commits, outcome and times, and who ran the update from its events); nothing is
 * asked of the servers and nothing is written.
 */


/** One update's passage on one server (docs/reference/status-json.md "history --json": the `--json` shape). */
export interface HistoryEntry {
  /** when it ended; for a server still in flight, when it began (ISO 8601, UTC) */
  at: string;
  update: string;
  /** the update it is a batch of, when split */
  batchOf: string | null;
  /** the commit the server ran before (null when the update never read it) */
  from: string | null;
  /** the commit the update was taking it to */
  target: string;
  /**
   * the commit it runs after: the target (success, skipped), the rollback commit (rolled-back);
   * null when unknown (failed, fatal: what the server runs is for a person to check; running)
   */
  to: string | null;
  /** the server's status in that update */
  outcome: ServerStatus;
  /** why, for an outcome that is not success (the server's error) */
  error: string | null;
  /** who ran the update when it worked on the server (`user@host` of the start, resume or takeover); for a server skipped by the plan, who planned it */
  by: string | null;
  /** who planned the update (null in updates planned before it was recorded) */
  plannedBy: string | null;
  /** a rolling restart (`agent-update restart`): no commit changed, `target` is the one it ran; absent otherwise */
  restart?: true;
}

export interface ServerHistory {
  name: string;
  /** every `user@host:port` it was reached at, oldest first (usually one) */
  accounts: string[];
  entries: HistoryEntry[];
}

export interface HistoryJson {
  servers: ServerHistory[];
}

/** The commit a server runs after its row in an update ended, when that is known. */
export function endCommit(u: UpdateRecord, s: ServerRecord, target: string): string | null {
  switch (s.status) {
    case 'success':
      return target;
    case 'skipped':
      return s.fromCommit ?? target;
    case 'rolled-back': {
      // back to where the hop that failed began: for a later hop of a path, the stepping stone
      const hop = hopOf(s, u.commit);
      return rollbackTarget(u.settings, hop.from, hop.stone);
    }
    default:
      return null;
  }
}

/**
 * Every server's history (or that of `server`: a name, or `user@host:port`), servers by name,
 * each one's entries oldest first. An unknown server is exit 2 with the closest names.
 */
export async function readHistory(store: ReportStore, server?: string): Promise<HistoryJson> {
  if (server !== undefined && !(await store.hasServer(server))) {
    const names = await store.serverNames();
    throw new UsageError(
      `no server named ${JSON.stringify(server)} in any update of ${store.location}` +
        (didYouMean(server, names) || (names.length ? '' : `; it holds no servers (run \`plan -c FILE\` first)`)),
    );
  }
  const rows = await store.historyServers(server);
  const updates = new Map<string, UpdateRecord>();
  const runs = new Map<string, RunEvent[]>();
  const updateOf = async (name: string) => {
    let u = updates.get(name);
    if (!u) updates.set(name, (u = await store.getUpdate(name)));
    return u;
  };
  const runsOf = async (name: string) => {
    let r = runs.get(name);
    if (!r) runs.set(name, (r = await store.runEvents(name)));
    return r;
  };
  // A batch of a split is not planned by anyone: who planned the update it was split from.
  const plannedBy = async (u: UpdateRecord): Promise<string | null> => {
    let at: UpdateRecord | null = u;
    for (let hops = 0; at !== null && at.createdBy === null && at.batchOf !== null && hops < 100; hops++) at = await store.findUpdate(at.batchOf);
    return at?.createdBy ?? null;
  };
  const byServer = new Map<string, { accounts: string[]; entries: Array<HistoryEntry & { created: string; id: number }> }>();
  for (const s of rows) {
    const u = await updateOf(s.updateName);
    const target = s.path?.at(-1)?.commit ?? s.toCommit ?? u.commit;
    // Who ran it: the last start/resume/takeover of its update before the server began.
    const ran = s.startedAt === null ? undefined : (await runsOf(u.name)).filter((e) => e.at <= s.startedAt!).at(-1);
    const entry = {
      at: s.endedAt ?? s.startedAt ?? u.createdAt,
      update: u.name,
      batchOf: u.batchOf,
      from: s.fromCommit,
      target,
      to: endCommit(u, s, target),
      outcome: s.status,
      error: s.status === 'success' ? null : s.error,
      by: ran?.actor ?? (s.startedAt === null ? await plannedBy(u) : null),
      plannedBy: await plannedBy(u),
      ...(u.settings.restartOnly ? { restart: true as const } : {}),
      created: u.createdAt,
      id: s.id,
    };
    const account = `${s.user}@${s.host}:${s.port}`;
    const h = byServer.get(s.name) ?? { accounts: [], entries: [] };
    if (!h.accounts.includes(account)) h.accounts.push(account);
    h.entries.push(entry);
    byServer.set(s.name, h);
  }
  const servers = [...byServer.entries()]
    .sort(([a], [b]) => a.localeCompare(b, undefined, { numeric: true }))
    .map(([name, h]) => ({
      name,
      accounts: h.accounts,
      entries: h.entries
        .sort((a, b) => a.at.localeCompare(b.at) || a.created.localeCompare(b.created) || a.id - b.id)
        .map(({ created: _c, id: _i, ...e }) => e),
    }));
  return { servers };
}
