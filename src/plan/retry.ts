/**
 * `agent-update retry NAME`: a new `pending` update of exactly the servers of NAME (and of the
 * batches split from it) that did not make it: `rolled-back`, `failed`, `unreachable`, and
 * `fatal` only when asked (a server whose rollback failed too needs a person first). Same
 * settings and target as NAME (its stored settings and commit, not the config file as it is
 * now), each server probed again as a plan does; `retry_of` = NAME. NAME is not changed.
 */
import { TransitionError, UsageError } from '../errors.js';
import { checkLocalSsh } from '../ssh/transport.js';
import type { PlanStore, ReportStore } from '../store/port.js';
import { specOf, type ServerRecord, type UpdateRecord } from '../model/records.js';
import type { ServerStatus } from '../model/lifecycle.js';
import { actor } from '../util/actor.js';
import { suggest } from '../util/suggest.js';
import { checkUpdateName, probePlan, recordPlan, type PlanDeps, type PlanInput } from './plan.js';

/** The end statuses a retry takes again by default. */
export const RETRIED: ReadonlySet<ServerStatus> = new Set(['rolled-back', 'failed', 'unreachable']);

const UNFINISHED = new Set(['planning', 'pending', 'running', 'paused']);

export interface RetrySelection {
  from: UpdateRecord;
  /** NAME and its batches */
  group: UpdateRecord[];
  /** the servers the retry covers, in NAME's order, then each batch's */
  servers: ServerRecord[];
  /** fatal servers not taken (no --include-fatal) */
  fatalLeftOut: ServerRecord[];
  /** servers never worked on (still pending in a stopped or cancelled update): not retried */
  neverRun: ServerRecord[];
}

/**
 * Which servers a retry of `name` covers, or a refusal (exit 2): NAME unknown; NAME planning,
 * pending (nothing ran: `plan --refresh` re-probes its unreachable servers) or running; a batch
 * of it planning or running (its servers are not done); an unfinished retry of NAME (start or
 * cancel that one first; a finished retry can itself be retried).
 */
export async function selectRetry(store: ReportStore, name: string, includeFatal: boolean): Promise<RetrySelection> {
  const from = await store.getUpdate(name);
  if (from.status === 'pending') {
    throw new TransitionError(`cannot retry ${name}: it is pending, nothing ran yet; start it, or re-probe its unreachable servers with \`${suggest(`plan --refresh ${name}`)}\``);
  }
  const group = [from, ...(await store.batchesOf(name))];
  const busy = group.find((u) => u.status === 'planning' || u.status === 'running');
  if (busy) {
    throw new TransitionError(
      `cannot retry ${name}: ${busy.name === name ? 'it' : `its batch ${busy.name}`} is ${busy.status}; retry it once it has ended or paused` +
        (busy.status === 'running' ? ` (\`${suggest(`pause ${busy.name}`)}\`)` : ''),
    );
  }
  // A retry of NAME and one of a batch of the same split would take the same servers: one at a time.
  let root = from;
  for (let hops = 0; root.batchOf !== null && hops < 1000; hops++) root = (await store.findUpdate(root.batchOf)) ?? { ...root, batchOf: null };
  const split = [root, ...(await store.batchesOf(root.name))];
  const retries: UpdateRecord[] = [];
  for (const u of split) retries.push(...(await store.retriesOf(u.name)));
  const open = retries.find((u) => UNFINISHED.has(u.status));
  if (open) {
    const of = open.retryOf === name ? name : `${open.retryOf} (of the same split as ${name})`;
    throw new UsageError(
      `${of} already has a retry that is not finished: ${open.name} (${open.status}); ` +
        `${open.status === 'paused' ? 'resume' : 'start'} it (\`${suggest(`${open.status === 'paused' ? 'resume' : 'start'} ${open.name}`)}\`) or cancel it first`,
    );
  }
  const all: ServerRecord[] = [];
  for (const u of group) all.push(...(await store.getServers(u.name)));
  return {
    from,
    group,
    servers: all.filter((s) => RETRIED.has(s.status) || (includeFatal && s.status === 'fatal')),
    fatalLeftOut: includeFatal ? [] : all.filter((s) => s.status === 'fatal'),
    neverRun: all.filter((s) => s.status === 'pending'),
  };
}

/**
 * The default name: `ROOT-retry`, then `ROOT-retry-2`, … where ROOT is the update the chain of
 * retries started from (a retry of `a-retry` is `a-retry-2`, not `a-retry-retry`).
 */
export async function retryName(store: ReportStore, from: UpdateRecord): Promise<string> {
  let root = from;
  for (let hops = 0; root.retryOf !== null && hops < 1000; hops++) {
    const up = await store.findUpdate(root.retryOf);
    if (!up) break;
    root = up;
  }
  const base = `${root.name}-retry`.slice(0, 94);
  if (!(await store.hasUpdate(base))) return base;
  for (let i = 2; ; i++) if (!(await store.hasUpdate(`${base}-${i}`))) return `${base}-${i}`;
}

/**
 * NAME is an undo, or a retry (of a retry, …) of one: each server's path is its own target, which
 * the stored settings cannot compute again (an undo's have no version bounds), so a retry keeps it.
 */
async function ownTargets(store: ReportStore, u: UpdateRecord): Promise<boolean> {
  let at: UpdateRecord | null = u;
  for (let hops = 0; at !== null && hops < 1000; hops++) {
    if (at.undoOf !== null) return true;
    at = at.retryOf === null ? null : ((await store.findUpdate(at.retryOf)) ?? null);
  }
  return false;
}

export interface RetryResult {
  selection: RetrySelection;
  /** the new update, pending; null when there was nothing to retry (nothing written) */
  update: UpdateRecord | null;
}

/** Check, record and probe the retry of `name`; see the module's comment. */
export async function createRetry(
  deps: PlanDeps,
  name: string,
  opts: { newName?: string; includeFatal: boolean; concurrency: number; signal?: AbortSignal },
): Promise<RetryResult> {
  const { store } = deps;
  if (opts.newName !== undefined) checkUpdateName(opts.newName);
  const first = await selectRetry(store, name, opts.includeFatal);
  if (first.servers.length === 0) return { selection: first, update: null };
  await checkLocalSsh(deps.transport, first.from.settings.ssh, `cannot retry ${name}`, first.servers.map(specOf));
  // The check and the record in one transaction: two retries of NAME at once make one.
  const { selection, input } = await store.tx(async (t: PlanStore) => {
    const selection = await selectRetry(t, name, opts.includeFatal);
    if (selection.servers.length === 0) return { selection, input: null };
    const u = selection.from;
    const newName = opts.newName ?? (await retryName(t, u));
    const own = await ownTargets(t, u);
    if (await t.hasUpdate(newName)) throw new UsageError(`an update named ${newName} already exists in ${t.location}; pass --name to choose another`);
    const input: PlanInput = {
      name: newName,
      repo: u.repo,
      branch: u.branch,
      commit: u.commit,
      configFile: u.configFile,
      settings: u.settings,
      testStopAfter: u.testStopAfter,
      // a retry of an undo (or of a retry of one) keeps each server's own target (its path); others are probed for theirs
      servers: selection.servers.map((s) => (own && s.path ? { ...specOf(s), path: s.path } : specOf(s))),
      probeWith: { ...u.settings, versions: u.settings.versions ?? {} },
      retryOf: u.name,
      createdBy: actor(),
    };
    await recordPlan(t, input);
    const fatal = selection.fatalLeftOut.length ? `; fatal left out (needs --include-fatal): ${selection.fatalLeftOut.map((s) => s.name).join(', ')}` : '';
    await t.addEvent(newName, null, 'retry', `retry of ${u.name}: ${selection.servers.map((s) => `${s.name} (${s.status})`).join(', ')}${fatal}`, input.createdBy);
    return { selection, input };
  });
  if (input === null) return { selection, update: null };
  const update = await probePlan(deps, input, { concurrency: opts.concurrency, signal: opts.signal });
  return { selection, update };
}
