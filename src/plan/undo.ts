/**
 * `agent-update undo NAME`, the `kubectl rollout undo` of agent-update: a new `pending` update
 * that puts every server NAME changed (ended `success`, in NAME or a batch of its split) back to
 * the commit it had before NAME — each server to its own previous commit, recorded as a path of
 * one hop (servers.path_json), so the executor updates, restarts and verifies it like any other
 * update and rolls it back (to NAME's commit) if it does not come back. `undo_of` = NAME; NAME is
 * not changed. A server another update has worked on since (same account, started after NAME
 * finished with it, and not rolled back there) is left out and listed: undoing NAME would undo
 * that update too.
 */
import { TransitionError, UsageError } from '../errors.js';
import { checkLocalSsh } from '../ssh/transport.js';
import type { PlanStore, ReportStore } from '../store/port.js';
import { specOf, type ServerRecord, type UpdateRecord } from '../model/records.js';
import type { RolloutSettings } from '../config/types.js';
import { actor } from '../util/actor.js';
import { plural } from '../util/plural.js';
import { suggest } from '../util/suggest.js';
import { checkUpdateName, probePlan, recordPlan, type PlanDeps, type PlanInput } from './plan.js';
import { endCommit } from '../rollout/history.js';

const UNFINISHED = new Set(['planning', 'pending', 'running', 'paused']);

export interface UndoSelection {
  from: UpdateRecord;
  /** NAME and its batches */
  group: UpdateRecord[];
  /** the servers put back, each with the commit it goes back to */
  servers: ServerRecord[];
  /** servers NAME changed that another update has worked on since: left out */
  changedSince: Array<{ server: ServerRecord; by: { update: string; status: string } }>;
  /**
   * servers NAME changed that did not end `success` (rolled back to a stepping stone or to
   * rollback.commit, left failed or fatal): not undone, listed for a person
   */
  notUndone: Array<{ server: ServerRecord; why: string }>;
}

/**
 * Which servers an undo of `name` covers, or a refusal (exit 2): NAME unknown; NAME or a batch of
 * it planning, pending or running (pause it, or let it end, first); an unfinished undo of NAME.
 */
export async function selectUndo(store: ReportStore, name: string): Promise<UndoSelection> {
  const from = await store.getUpdate(name);
  const group = [from, ...(await store.batchesOf(name))];
  const busy = group.find((u) => u.status === 'planning' || u.status === 'pending' || u.status === 'running');
  if (busy) {
    const who = busy.name === name ? 'it' : `its batch ${busy.name}`;
    throw new TransitionError(
      `cannot undo ${name}: ${who} is ${busy.status}` +
        (busy.status === 'running'
          ? `; pause it first (\`${suggest(`pause ${busy.name}`)}\`), then undo`
          : busy.status === 'pending'
            ? `: nothing ran yet, so there is nothing to undo (\`${suggest(`cancel ${busy.name}`)}\` drops the plan)`
            : ''),
    );
  }
  const open = (await store.undosOf(name)).find((u) => UNFINISHED.has(u.status));
  if (open) {
    throw new UsageError(
      `${name} already has an undo that is not finished: ${open.name} (${open.status}); ` +
        `${open.status === 'paused' ? 'resume' : 'start'} it (\`${suggest(`${open.status === 'paused' ? 'resume' : 'start'} ${open.name}`)}\`) or cancel it first`,
    );
  }
  const names = new Set(group.map((u) => u.name));
  const byName = new Map(group.map((u) => [u.name, u]));
  const servers: ServerRecord[] = [];
  const changedSince: UndoSelection['changedSince'] = [];
  const notUndone: UndoSelection['notUndone'] = [];
  const all: ServerRecord[] = [];
  for (const u of group) all.push(...(await store.getServers(u.name)));
  for (const s of all) {
    const u = byName.get(s.updateName)!;
    if (s.status === 'failed' || s.status === 'fatal') {
      notUndone.push({ server: s, why: `${s.status}: its state is for a person to check` });
      continue;
    }
    if (s.status === 'rolled-back') {
      const at = endCommit(u, s, u.commit);
      if (at !== null && at !== s.fromCommit) notUndone.push({ server: s, why: `rolled back to ${at.slice(0, 12)}, not to the commit it had` });
      continue;
    }
    if (s.status !== 'success' || s.fromCommit === null || s.fromCommit === s.toCommit) continue;
    let later: ServerRecord | undefined;
    for (const r of await store.laterWorkOn(s, s.endedAt ?? s.startedAt ?? from.createdAt)) {
      if (names.has(r.updateName) || !(await changedIt(store, r))) continue;
      later = r;
      break;
    }
    if (later) changedSince.push({ server: s, by: { update: later.updateName, status: later.status } });
    else servers.push(s);
  }
  return { from, group, servers, changedSince, notUndone };
}

/**
 * Whether another update's row changed what runs on the server: it is running, or ended success,
 * failed or fatal, or was rolled back to something else than it found (a stepping stone, a
 * rollback.commit); a plain rollback put back what it found.
 */
async function changedIt(store: ReportStore, r: ServerRecord): Promise<boolean> {
  if (r.status !== 'rolled-back') return true;
  const u = await store.findUpdate(r.updateName);
  if (!u) return true;
  const at = endCommit(u, r, u.commit);
  return at === null || at !== r.fromCommit;
}

/** `NAME-undo`, then `NAME-undo-2`, … */
export async function undoName(store: ReportStore, from: UpdateRecord): Promise<string> {
  const base = `${from.name}-undo`.slice(0, 95);
  if (!(await store.hasUpdate(base))) return base;
  for (let i = 2; ; i++) if (!(await store.hasUpdate(`${base}-${i}`))) return `${base}-${i}`;
}

/**
 * NAME's settings for going back: the same ssh, agent commands and rules, without what only
 * made sense going forward (version bounds and stepping stones, a fixed rollback.commit: the
 * rollback of an undo is each server's own commit before it, NAME's target).
 */
export function undoSettings(s: RolloutSettings, commit: string): RolloutSettings {
  const { versions: _versions, ...rest } = s;
  return { ...rest, source: { ...s.source, commit }, rollback: { ...s.rollback, commit: null } };
}

export interface UndoResult {
  selection: UndoSelection;
  /** the new update, pending; null when there was nothing to undo (nothing written) */
  update: UpdateRecord | null;
}

/** Check, record and probe the undo of `name`; see the module's comment. */
export async function createUndo(
  deps: PlanDeps,
  name: string,
  opts: { newName?: string; concurrency: number; signal?: AbortSignal },
): Promise<UndoResult> {
  const { store } = deps;
  if (opts.newName !== undefined) checkUpdateName(opts.newName);
  const first = await selectUndo(store, name);
  if (first.servers.length === 0) return { selection: first, update: null };
  await checkLocalSsh(deps.transport, first.from.settings.ssh, `cannot undo ${name}`, first.servers.map(specOf));
  // The check and the record in one transaction: two undos of NAME at once make one.
  const { selection, input } = await store.tx(async (t: PlanStore) => {
    const selection = await selectUndo(t, name);
    if (selection.servers.length === 0) return { selection, input: null };
    const u = selection.from;
    const newName = opts.newName ?? (await undoName(t, u));
    if (await t.hasUpdate(newName)) throw new UsageError(`an update named ${newName} already exists in ${t.location}; pass --name to choose another`);
    // The update's own commit is the one most of its servers go back to (status shows it as the target).
    const counts = new Map<string, number>();
    for (const s of selection.servers) counts.set(s.fromCommit!, (counts.get(s.fromCommit!) ?? 0) + 1);
    const commit = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]![0];
    const settings = undoSettings(u.settings, commit);
    const input: PlanInput = {
      name: newName,
      repo: u.repo,
      branch: u.branch,
      commit,
      configFile: u.configFile,
      settings,
      testStopAfter: 0,
      servers: selection.servers.map((s) => ({ ...specOf(s), path: [{ commit: s.fromCommit!, version: s.agentVersion ?? null }] })),
      probeWith: { ...settings, versions: {} },
      undoOf: u.name,
      createdBy: actor(),
    };
    await recordPlan(t, input);
    const left = selection.changedSince.length ? `; left out, changed since: ${selection.changedSince.map((c) => `${c.server.name} by ${c.by.update} (${c.by.status})`).join(', ')}` : '';
    await t.addEvent(newName, null, 'undo', `undo of ${u.name}: ${plural(selection.servers.length, 'server')} back to their own previous commits${left}`, input.createdBy);
    return { selection, input };
  });
  if (input === null) return { selection, update: null };
  const update = await probePlan(deps, input, { concurrency: opts.concurrency, signal: opts.signal });
  return { selection, update };
}
