import { setMaxListeners } from 'node:events';
import pLimit from 'p-limit';
import type { Config, RolloutSettings, ServerSpec } from '../config/types.js';
import type { Clock } from '../clock.js';
import { InterruptedError, TransitionError, UsageError } from '../errors.js';
import type { EventSink } from '../rollout/events.js';
import { checkLocalSsh, type Transport } from '../ssh/transport.js';
import { specOf, type ServerRecord, type Store, type UpdateRecord } from '../store/store.js';
import { resolveCommit, resolveRollbackCommit } from './source.js';
import { select } from '../config/select.js';
import { plural } from '../util/plural.js';
import { describeOwner, parseOwner, readScript, splitLockOutput } from '../rollout/remote-lock.js';

export interface PlanOptions {
  name?: string;
  /** how many servers to probe at once */
  concurrency: number;
  /**
   * Ctrl-C: probes in flight are cut, the rest are not started, and the update is recorded
   * `cancelled` (nothing ran on any server but the version command), so it is never left
   * `planning`.
   */
  signal?: AbortSignal;
}

export interface PlanDeps {
  store: Store;
  transport: Transport;
  clock: Clock;
  emit: EventSink;
  /** injectable for tests; defaults to `git ls-remote` */
  resolve?: typeof resolveCommit;
  /** expands an abbreviated `rollback.commit`; injectable like `resolve` */
  resolveRollback?: typeof resolveRollbackCommit;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/** Throws a UsageError (exit 2) unless `name` can name an update. */
export function checkUpdateName(name: string): void {
  if (!NAME_RE.test(name)) {
    throw new UsageError(`--name: ${JSON.stringify(name)} is not a valid update name (letters, digits, '.', '_', '-'; at most 100)`);
  }
}

/**
 * The servers this update covers, in config order: `server_types` when given (a server with
 * several types is in when any of them is listed), then `include`, then `exclude`
 * (config/select.ts).
 */
export function selectServers(config: Config): ServerSpec[] {
  return select(config.servers, config).servers;
}

/** `<branch>-<YYYY-MM-DD>`, then `-2`, `-3`… until the name is free. */
export function defaultName(branch: string, now: Date, taken: (name: string) => boolean): string {
  const base = `${branch.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '')}-${now.toISOString().slice(0, 10)}`;
  if (!taken(base)) return base;
  for (let i = 2; ; i++) if (!taken(`${base}-${i}`)) return `${base}-${i}`;
}

/** What the plan stores: `commit` and `rollbackCommit` are the full 40-hex commits resolved at plan time. */
export function settingsOf(config: Config, commit: string, rollbackCommit: string | null): RolloutSettings {
  return {
    source: { repo: config.source.repo, branch: config.source.branch, commit },
    ssh: config.ssh,
    agent: config.agent,
    restart: config.restart,
    rollback: { ...config.rollback, commit: rollbackCommit },
    execution: config.execution,
  };
}

/**
 * Resolve the target, record the update as `planning`, probe every selected server in parallel
 * (its current commit, or why it cannot be reached), then make the update `pending`.
 */
export async function createPlan(deps: PlanDeps, config: Config, opts: PlanOptions): Promise<UpdateRecord> {
  const { store } = deps;
  const name = opts.name ?? config.name ?? defaultName(config.source.branch, deps.clock.now(), (n) => store.hasUpdate(n));
  checkUpdateName(name);
  if (store.hasUpdate(name)) {
    throw new UsageError(`an update named ${name} already exists in ${store.path}; pass --name to choose another`);
  }
  const servers = selectServers(config);
  if (servers.length === 0) throw new UsageError(`${config.file}: server_types, include and exclude select no server`);
  const commit = await (deps.resolve ?? resolveCommit)(config.source.repo, config.source.branch, config.source.commit);
  // The executor compares version_command's 40 hex with it: an abbreviation would never match.
  const rollbackCommit =
    config.rollback.commit === null ? null : await (deps.resolveRollback ?? resolveRollbackCommit)(config.source.repo, config.rollback.commit);
  await checkLocalSsh(deps.transport, config.ssh, `cannot plan ${name}`, servers);

  store.createUpdate({
    name,
    repo: config.source.repo,
    branch: config.source.branch,
    commit,
    configFile: config.file,
    settings: settingsOf(config, commit, rollbackCommit),
    testStopAfter: config.testMode.stopAfter,
    servers,
  });
  const limit = pLimit(Math.max(1, opts.concurrency));
  const { signal } = opts;
  allowListeners(signal, opts.concurrency);
  await Promise.all(
    store.getServers(name).map((s) => limit(async () => (signal?.aborted ? undefined : probeServer(deps, config, commit, s, signal)))),
  );
  if (signal?.aborted) {
    const all = store.getServers(name);
    const probed = all.filter((s) => s.status !== 'pending' || s.fromCommit !== null).length;
    const reason = `plan interrupted after probing ${probed} of ${plural(all.length, 'server')}`;
    store.setUpdateStatus(name, 'cancelled', { endedAt: deps.clock.now().toISOString(), reason });
    throw new InterruptedError(`${reason}: update ${name} is cancelled (nothing was changed on any server); plan again to start over`);
  }
  return store.setUpdateStatus(name, 'pending');
}

/**
 * Every probe in flight listens on the Ctrl-C signal (its connect, its command): more than
 * Node's default of 10 is expected, not a leak, and must not print a MaxListenersExceeded warning.
 */
function allowListeners(signal: AbortSignal | undefined, concurrency: number): void {
  if (signal) setMaxListeners(Math.max(10, concurrency * 4 + 10), signal);
}

/**
 * `plan --refresh NAME`: probe again the servers of a pending or paused update that were
 * `unreachable` (and only those), with the settings the plan stored; each becomes pending,
 * skipped or stays unreachable with the new reason.
 */
export async function refreshPlan(
  deps: PlanDeps,
  name: string,
  opts: { concurrency: number; signal?: AbortSignal },
): Promise<{ update: UpdateRecord; probed: number; nowPending: number; nowSkipped: number; stillUnreachable: number }> {
  const { store } = deps;
  const u = store.getUpdate(name);
  if (u.status !== 'pending' && u.status !== 'paused') {
    throw new TransitionError(`cannot refresh update ${name}: it is ${u.status}; only a pending or paused update's plan can be refreshed`);
  }
  const targets = store.getServers(name).filter((s) => s.status === 'unreachable');
  await checkLocalSsh(deps.transport, u.settings.ssh, `cannot refresh ${name}`, targets.map(specOf));
  store.addEvent(name, null, 'refresh', `re-probing ${targets.length} unreachable server${targets.length === 1 ? '' : 's'}`);
  const limit = pLimit(Math.max(1, opts.concurrency));
  allowListeners(opts.signal, opts.concurrency);
  await Promise.all(
    targets.map((s) => limit(async () => (opts.signal?.aborted ? undefined : probeServer(deps, u.settings, u.commit, s, opts.signal, true)))),
  );
  const after = new Map(store.getServers(name).map((s) => [s.id, s.status]));
  const count = (st: string) => targets.filter((s) => after.get(s.id) === st).length;
  return { update: store.getUpdate(name), probed: targets.length, nowPending: count('pending'), nowSkipped: count('skipped'), stillUnreachable: count('unreachable') };
}

/**
 * Read one server's current commit; record it as pending, skipped (at the target) or
 * unreachable. `again`: a refresh of a server that was unreachable.
 */
export async function probeServer(
  deps: PlanDeps,
  config: Pick<Config, 'ssh' | 'agent'>,
  target: string,
  s: ServerRecord,
  signal?: AbortSignal,
  again = false,
): Promise<void> {
  const { store, transport, emit } = deps;
  const spec = specOf(s);
  let commit: string | null = null;
  let error: string | null = null;
  let lockedBy: string | null = null;
  let session;
  try {
    session = await transport.connect(spec, config.ssh, signal);
    const command = config.agent.versionCommand;
    // The lock is read in the same round trip: a server another executor is working on is not
    // called `skipped` on what it shows mid-update; `start` re-checks it under the lock.
    const step = store.beginStep(s, 'probe', `(read the agent-update lock) && ${command}`);
    const raw = await session.exec(`${readScript()}\n${command}`, { timeoutMs: Math.min(config.ssh.commandTimeoutMs, 60_000), signal });
    store.endStep(step, raw);
    const { verdict, rest } = splitLockOutput(raw.stdout);
    if (verdict?.kind === 'present') lockedBy = describeOwner(parseOwner(verdict.owner));
    const r = { ...raw, stdout: rest };
    const last = r.stdout.trim().split('\n').pop()?.trim().toLowerCase() ?? '';
    if (r.code !== 0) error = `version_command ${r.code === null ? `failed: ${r.error}` : `exited ${r.code}: ${(r.stderr || r.stdout).trim().split('\n').pop() ?? ''}`}`;
    else if (!/^[0-9a-f]{40}$/.test(last)) error = `version_command printed ${JSON.stringify(last.slice(0, 80))}, not a 40-hex commit`;
    else commit = last;
  } catch (e) {
    error = (e as Error).message;
  } finally {
    session?.close();
  }
  // Cut by Ctrl-C: that says nothing about the server, so nothing is recorded for it.
  if (error !== null && signal?.aborted) return;
  const status = error !== null ? 'unreachable' : commit === target && lockedBy === null ? 'skipped' : 'pending';
  if (lockedBy !== null) store.addEvent(s.updateName, s.name, 'locked', `locked by ${lockedBy} when probed; start re-checks it under the lock`);
  if (again) {
    if (status === 'unreachable') store.patchServer(s.id, { error, endedAt: deps.clock.now().toISOString() });
    else store.setServerStatus(s.id, status, { fromCommit: commit, toCommit: status === 'skipped' ? target : null, error: null, endedAt: status === 'skipped' ? deps.clock.now().toISOString() : null });
  } else if (status === 'pending') {
    store.setProbedCommit(s.id, commit);
  } else {
    store.setServerStatus(s.id, status, {
      fromCommit: commit,
      toCommit: status === 'skipped' ? target : null,
      error,
      endedAt: deps.clock.now().toISOString(),
    });
  }
  emit({ type: 'probe', update: s.updateName, server: s.name, status, commit, error: error ?? (lockedBy !== null ? `locked by ${lockedBy}` : null) });
}
