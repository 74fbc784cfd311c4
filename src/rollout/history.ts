import { UsageError } from '../errors.js';
import type { ReportStore, RunEvent } from '../store/port.js';
import type { FreezeRecord, ServerRecord, UpdateRecord } from '../model/records.js';
import { freezeJson, repoKey, type FreezeJson } from '../model/freeze.js';
import { didYouMean } from '../util/did-you-mean.js';
import { rollbackTarget } from './phases.js';
import { hopOf } from '../model/hops.js';
import type { ServerStatus, UpdateStatus } from '../model/lifecycle.js';

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

// ---- per update (issue 25): a repo's updates in order, like `kubectl rollout history` --------

/** One update as `history --updates` lists it (docs/reference/status-json.md "history --updates --json"). */
export interface UpdateHistoryEntry {
  name: string;
  status: UpdateStatus;
  createdAt: string;
  startedAt: string | null;
  endedAt: string | null;
  repo: string;
  branch: string;
  commit: string;
  /** the config it was planned from (absolute path); null when not recorded */
  configFile: string | null;
  /** who planned it (`user@host`); a batch: who planned the update it was split from */
  createdBy: string | null;
  /** who ran it (start, resume, takeover), each once, in order */
  ranBy: string[];
  /** its servers counted by status (`total` and one key per status present) */
  counts: Record<string, number>;
  /** why it is paused or ended */
  reason: string | null;
  /** lineage: the update it is a batch, a retry or an undo of (null when none) */
  batchOf: string | null;
  retryOf: string | null;
  undoOf: string | null;
  /** and the other way: its batches, retries and undos, in creation order */
  batches: string[];
  retries: string[];
  undos: string[];
}

/** One repo's updates, oldest first, and its freezes (active and lifted), oldest first. */
export interface RepoHistory {
  /** the key updates and freezes of the repo share (model/freeze.ts repoKey) */
  repoKey: string;
  /** the repo as its newest update (else its newest freeze) wrote it */
  repo: string;
  updates: UpdateHistoryEntry[];
  freezes: FreezeJson[];
}

export interface UpdatesHistoryJson {
  repos: RepoHistory[];
}

/** One update's timeline: its summary (lineage and all) and every event recorded for it, in order. */
export interface UpdateTimelineJson {
  update: UpdateHistoryEntry;
  events: Array<{ at: string; server: string | null; kind: string; message: string; actor: string | null }>;
  /** the freezes of its repo that were in force at some time between its plan and its end (or now) */
  freezes: FreezeJson[];
}

/** Every update summarised, with the lineage read from the whole list (no query per link). */
async function summaries(store: ReportStore, updates: readonly UpdateRecord[], all: readonly UpdateRecord[]): Promise<UpdateHistoryEntry[]> {
  const counts = await store.countsByUpdate();
  const byName = new Map(all.map((u) => [u.name, u]));
  // a batch keeps its original's retryOf/undoOf: the retry or undo is the original, named once
  const children = (key: 'batchOf' | 'retryOf' | 'undoOf', name: string) =>
    all.filter((x) => x[key] === name && (key === 'batchOf' || x.batchOf === null)).map((x) => x.name);
  const out: UpdateHistoryEntry[] = [];
  for (const u of updates) {
    // a batch of a split is planned by nobody: who planned the update it came from
    let planner: UpdateRecord | undefined = u;
    for (let hops = 0; planner && planner.createdBy === null && planner.batchOf !== null && hops < 100; hops++) planner = byName.get(planner.batchOf);
    out.push({
      name: u.name,
      status: u.status,
      createdAt: u.createdAt,
      startedAt: u.startedAt,
      endedAt: u.endedAt,
      repo: u.repo,
      branch: u.branch,
      commit: u.commit,
      configFile: u.configFile,
      createdBy: planner?.createdBy ?? null,
      ranBy: [...new Set((await store.runEvents(u.name)).map((e) => e.actor))],
      counts: counts.get(u.name) ?? { total: 0 },
      reason: u.reason,
      batchOf: u.batchOf,
      retryOf: u.retryOf,
      undoOf: u.undoOf,
      batches: children('batchOf', u.name),
      retries: children('retryOf', u.name),
      undos: children('undoOf', u.name),
    });
  }
  return out;
}

/**
 * `history --updates` (every repo) and `history -c FILE` (`repo`: that config's source repo,
 * whichever config planned its updates): each repo's updates in the order they were planned,
 * with their commit, status, who planned and ran them and their lineage, and the repo's freezes.
 * Reads only.
 */
export async function readUpdatesHistory(store: ReportStore, repo?: string): Promise<UpdatesHistoryJson> {
  const all = await store.listUpdates();
  const only = repo === undefined ? undefined : repoKey(repo);
  const byKey = new Map<string, { updates: UpdateRecord[]; freezes: FreezeRecord[] }>();
  const group = (key: string) => {
    let g = byKey.get(key);
    if (!g) byKey.set(key, (g = { updates: [], freezes: [] }));
    return g;
  };
  for (const u of all) {
    const key = repoKey(u.repo);
    if (only === undefined || key === only) group(key).updates.push(u);
  }
  for (const f of await store.freezes(only)) group(f.repoKey).freezes.push(f);
  if (only !== undefined) group(only);
  const repos: RepoHistory[] = [];
  for (const [key, g] of byKey) {
    repos.push({
      repoKey: key,
      repo: g.updates.at(-1)?.repo ?? g.freezes.at(-1)?.repo ?? repo ?? key,
      updates: await summaries(store, g.updates, all),
      freezes: g.freezes.map(freezeJson),
    });
  }
  repos.sort((a, b) => a.repoKey.localeCompare(b.repoKey));
  return { repos };
}

/** `history NAME`: the update's summary and lineage, and every event recorded for it in order. Reads only. */
export async function readUpdateTimeline(store: ReportStore, name: string): Promise<UpdateTimelineJson> {
  const u = await store.getUpdate(name);
  const [update] = await summaries(store, [u], await store.listUpdates());
  const end = u.endedAt ?? '\uffff';
  const freezes = (await store.freezes(repoKey(u.repo))).filter((f) => f.frozenAt <= end && (f.unfrozenAt === null || f.unfrozenAt >= u.createdAt));
  return {
    update: update!,
    events: (await store.getEvents(name)).map((e) => ({ at: e.at, server: e.serverName, kind: e.kind, message: e.message, actor: e.actor })),
    freezes: freezes.map(freezeJson),
  };
}
