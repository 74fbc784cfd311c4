import { setMaxListeners } from 'node:events';
import pLimit from 'p-limit';
import type { Config, RolloutSettings, ServerSpec, VersionBounds, VersionClass } from '../config/types.js';
import type { Clock } from '../clock.js';
import { InterruptedError, TransitionError, UsageError } from '../errors.js';
import { allows, forgettable } from '../model/lifecycle.js';
import { suggest } from '../util/suggest.js';
import { readCommit } from '../rollout/read-commit.js';
import type { EventSink } from '../rollout/events.js';
import { checkLocalSsh, type Transport } from '../ssh/transport.js';
import type { NewUpdate, PlanStore } from '../store/port.js';
import { specOf, type ServerRecord, type UpdateRecord } from '../model/records.js';
import { resolveCommit, resolveRollbackCommit, resolveTarget, withResolvedStones } from './source.js';
import { select } from '../config/select.js';
import { limitServers, parseLimit } from '../config/limit.js';
import { datedName, freeName, isUpdateName } from '../config/names.js';
import { plural } from '../util/plural.js';
import { actor } from '../util/actor.js';
import { describeOwner, parseOwner, readScript, splitLockOutput } from '../rollout/remote-lock.js';
import { finalTarget } from '../model/hops.js';
import { checkCeiling, classOf, pathFor, probeScript, readVersion, splitProbe } from './versions.js';

export interface PlanOptions {
  name?: string;
  /** how many servers to probe at once */
  concurrency: number;
  /**
   * Ctrl-C: probes in flight are cut, the rest are not started, and the update is removed with
   * everything recorded for it (nothing ran on any server but the version command), so it is
   * never left `planning` and its name is free again.
   */
  signal?: AbortSignal;
  /**
   * `plan --only required|recommended`: after the probe, the servers of another class are left
   * out of the update (Store.leaveOut); those whose class could not be read stay
   */
  only?: VersionClass | null;
}

export interface PlanDeps {
  store: PlanStore;
  transport: Transport;
  clock: Clock;
  emit: EventSink;
  /** injectable for tests; defaults to `git ls-remote` */
  resolve?: typeof resolveCommit;
  /** expands an abbreviated `rollback.commit`; injectable like `resolve` */
  resolveRollback?: typeof resolveRollbackCommit;
}

/** Throws a UsageError (exit 2) unless `name` can name an update. */
export function checkUpdateName(name: string): void {
  if (!isUpdateName(name)) {
    throw new UsageError(`--name: ${JSON.stringify(name)} is not a valid update name (letters, digits, '.', '_', '-'; at most 100)`);
  }
}

/**
 * The servers this update covers, in config order: `server_types` when given (a server with
 * several types is in when any of them is listed), then `include`, then `exclude`
 * (config/select.ts).
 */
export function selectServers(config: Config): ServerSpec[] {
  const servers = select(config.servers, config).servers;
  // --limit narrows them further (checked against them by withOverrides, plan/overrides.ts)
  const limit = config.overrides?.limit;
  return limit ? limitServers(servers, parseLimit(limit.patterns)) : servers;
}

/** What the plan stores: `commit` and `rollbackCommit` are the full 40-hex commits resolved at plan time. */
export function settingsOf(config: Config, commit: string, rollbackCommit: string | null, only: VersionClass | null = null): RolloutSettings {
  const { version = null, minCompatible = null, maxCompatible = null, minVersion = null, steppingStones = [] } = config.source;
  return {
    source: { repo: config.source.repo, branch: config.source.branch, commit },
    ssh: config.ssh,
    agent: config.agent,
    restart: config.restart,
    rollback: { ...config.rollback, commit: rollbackCommit },
    execution: config.execution,
    ...(config.hooks.length > 0 ? { hooks: config.hooks } : {}),
    ...(config.overrides && Object.keys(config.overrides).length > 0 ? { overrides: config.overrides } : {}),
    ...(version !== null
      ? { versions: { version, minCompatible, maxCompatible, only, ...(minVersion !== null ? { minVersion, steppingStones } : {}) } }
      : {}),
  };
}

/** Throws a UsageError (exit 2) unless `plan --only` can class this config's servers. */
export function checkOnly(config: Config, only: VersionClass | null | undefined): void {
  if (only == null) return;
  if (!config.source.version || !config.agent.semverCommand) {
    throw new UsageError(`--only ${only} classes servers by their version: ${config.file} needs source.version and agent.semver_command`);
  }
}

/**
 * Resolve the target, record the update as `planning`, probe every selected server in parallel
 * (its current commit, or why it cannot be reached), then make the update `pending`.
 */
export async function createPlan(deps: PlanDeps, config: Config, opts: PlanOptions): Promise<UpdateRecord> {
  const { store } = deps;
  const name = opts.name ?? config.name ?? (await freeName(datedName(config.source.branch, deps.clock.now()), (n) => store.hasUpdate(n)));
  checkUpdateName(name);
  const existing = await store.findUpdate(name);
  if (existing !== null) {
    const forget = forgettable(existing) ? ` (it is ${existing.status} and never ran: \`${suggest(`forget ${name}`)}\` removes it)` : '';
    throw new UsageError(`an update named ${name} already exists in ${store.location}${forget}; pass --name to choose another`);
  }
  checkCeiling(config.file, config.source);
  checkOnly(config, opts.only);
  const servers = selectServers(config);
  if (servers.length === 0) throw new UsageError(`${config.file}: server_types, include and exclude select no server`);
  const commit = deps.resolve ? await deps.resolve(config.source.repo, config.source.branch, config.source.commit) : await resolveTarget(config);
  // The executor compares version_command's 40 hex with it: an abbreviation would never match.
  const rollbackCommit =
    config.rollback.commit === null ? null : await (deps.resolveRollback ?? resolveRollbackCommit)(config.source.repo, config.rollback.commit);
  // Stepping stones' commits expanded to 40 hex, like rollback.commit (no I/O when they are).
  config = await withResolvedStones(config);
  await checkLocalSsh(deps.transport, config.ssh, `cannot plan ${name}`, servers);

  const input = planInput(config, name, commit, rollbackCommit, opts.only ?? null);
  await recordPlan(store, input);
  const only = opts.only ?? null;
  return probePlan(deps, input, {
    concurrency: opts.concurrency,
    signal: opts.signal,
    afterProbe: async () => {
      if (only === null) return;
      // A server whose class could not be read (unreachable, version unreadable) stays, so that it is seen.
      const out = (await store.getServers(name)).filter((s) => s.versionClass != null && s.versionClass !== only);
      await store.leaveOut(name, out.map((s) => s.id), `plan --only ${only}: not of class ${only}`);
    },
  });
}

/**
 * Everything a new update is planned from, whatever made it: `plan` (a config), `auto` (the
 * same), `retry` and `undo` (another update's stored settings and some of its servers): the
 * update as Store.createUpdate records it, and `probeWith`, what probeServer reads (ssh, agent
 * commands, the version bounds).
 */
export interface PlanInput extends NewUpdate {
  probeWith: Parameters<typeof probeServer>[1];
  createdBy: string;
}

/** The PlanInput of a config: its selected servers, the resolved target, its test mode. */
export function planInput(config: Config, name: string, commit: string, rollbackCommit: string | null, only: VersionClass | null = null): PlanInput {
  return {
    name,
    repo: config.source.repo,
    branch: config.source.branch,
    commit,
    configFile: config.file,
    settings: settingsOf(config, commit, rollbackCommit, only),
    testStopAfter: config.testMode.stopAfter,
    servers: selectServers(config),
    probeWith: { ...config, versions: config.source },
    createdBy: actor(),
  };
}

/** Write the update as `planning` with its servers `pending` (one transaction; may be inside the caller's). */
export function recordPlan(store: PlanStore, input: PlanInput): Promise<UpdateRecord> {
  const { probeWith: _probeWith, ...update } = input;
  return store.createUpdate(update);
}

/**
 * Probe every server of a recorded `planning` update (through probeServer, `concurrency` at a
 * time), then `afterProbe`, then make it `pending` (unless `keepPlanning`: the caller decides).
 * Ctrl-C (`signal`): the probes in flight are cut, the update is removed (Store.discardPlan).
 */
export async function probePlan(
  deps: PlanDeps,
  input: Pick<PlanInput, 'name' | 'commit' | 'probeWith'>,
  opts: { concurrency: number; signal?: AbortSignal; afterProbe?: () => Promise<void>; keepPlanning?: boolean },
): Promise<UpdateRecord> {
  const { store } = deps;
  const { name, commit } = input;
  const limit = pLimit(Math.max(1, opts.concurrency));
  const { signal } = opts;
  allowListeners(signal, opts.concurrency);
  await Promise.all(
    (await store.getServers(name)).map((s) => limit(async () => (signal?.aborted ? undefined : probeServer(deps, input.probeWith, commit, s, signal)))),
  );
  if (signal?.aborted) {
    const all = await store.getServers(name);
    const probed = all.filter((s) => s.status !== 'pending' || s.fromCommit !== null).length;
    // Nothing ran on any server but the probe, and the update never started: it is removed with
    // everything recorded for it, so the same command (and --name) can be run again.
    await store.discardPlan(name);
    throw new InterruptedError(
      `plan interrupted after probing ${probed} of ${plural(all.length, 'server')}: nothing was recorded (no update ${name}) and nothing was changed on any server; run the same command again to start over`,
    );
  }
  await opts.afterProbe?.();
  return opts.keepPlanning ? store.getUpdate(name) : store.setUpdateStatus(name, 'pending');
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
): Promise<{ update: UpdateRecord; probed: number; nowPending: number; nowSkipped: number; stillUnreachable: number; nowExcluded: number }> {
  const { store } = deps;
  const u = await store.getUpdate(name);
  if (!allows(u.status, 'refresh')) {
    throw new TransitionError(`cannot refresh update ${name}: it is ${u.status}; only a pending or paused update's plan can be refreshed`);
  }
  const targets = (await store.getServers(name)).filter((s) => s.status === 'unreachable');
  await checkLocalSsh(deps.transport, u.settings.ssh, `cannot refresh ${name}`, targets.map(specOf));
  await store.addEvent(name, null, 'refresh', `re-probing ${targets.length} unreachable server${targets.length === 1 ? '' : 's'}`);
  const limit = pLimit(Math.max(1, opts.concurrency));
  allowListeners(opts.signal, opts.concurrency);
  await Promise.all(
    targets.map((s) => limit(async () => (opts.signal?.aborted ? undefined : probeServer(deps, { ...u.settings, versions: u.settings.versions ?? {} }, u.commit, s, opts.signal, true)))),
  );
  const after = new Map((await store.getServers(name)).map((s) => [s.id, s.status]));
  const count = (st: string) => targets.filter((s) => after.get(s.id) === st).length;
  return { update: await store.getUpdate(name), probed: targets.length, nowPending: count('pending'), nowSkipped: count('skipped'), stillUnreachable: count('unreachable'), nowExcluded: count('excluded') };
}

/**
 * Read one server's current commit (and, with agent.semver_command, its version, in the same
 * remote command); record it as pending, skipped (at the target), unreachable, or excluded (its
 * version unreadable; on a refresh of a plan made with --only, also of another class).
 * `again`: a refresh of a server that was unreachable.
 */
export async function probeServer(
  deps: PlanDeps,
  config: Pick<Config, 'ssh' | 'agent'> & { versions: VersionBounds & { only?: VersionClass | null }; restartOnly?: boolean },
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
  let version: string | null = null;
  let versionError: string | null = null;
  let session;
  try {
    session = await transport.connect(spec, config.ssh, signal);
    const command = config.agent.versionCommand;
    const semverCommand = config.agent.semverCommand ?? null;
    // The lock is read in the same round trip: a server another executor is working on is not
    // called `skipped` on what it shows mid-update; `start` re-checks it under the lock. So is
    // the version: one command reads the lock, the commit and the version (versions.ts).
    const probe = semverCommand === null ? null : probeScript(command, semverCommand);
    const step = await store.beginCommand(s, 'probe', `(read the agent-update lock) && ${command}${semverCommand === null ? '' : `; ${semverCommand}`}`);
    const raw = await session.exec(`${readScript()}\n${probe === null ? command : probe.script}`, { timeoutMs: Math.min(config.ssh.commandTimeoutMs, 60_000), signal });
    await store.endCommand(step, raw);
    const { verdict, rest } = splitLockOutput(raw.stdout);
    if (verdict?.kind === 'present') lockedBy = describeOwner(parseOwner(verdict.owner));
    let r = { ...raw, stdout: rest };
    if (probe !== null) {
      const parts = splitProbe(r, probe.marker);
      r = { ...r, ...parts.commit };
      const v = readVersion(parts.version);
      if ('version' in v) version = v.version;
      else versionError = v.error;
    }
    const read = readCommit(r);
    if (read.ok) commit = read.commit;
    else error = read.error;
  } catch (e) {
    error = (e as Error).message;
  } finally {
    session?.close();
  }
  // Cut by Ctrl-C: that says nothing about the server, so nothing is recorded for it.
  if (error !== null && signal?.aborted) return;
  const cls = version === null ? null : classOf(version, config.versions);
  // Below source.min_version: the stepping stones it walks, or no path (excluded). A server
  // given its own path at creation (undo) keeps it.
  let path = s.path ?? null;
  // a rolling restart: each server's own target is the commit it runs (never `skipped`)
  if (config.restartOnly && commit !== null) path = [{ commit, version }];
  else if (version !== null && path === null && versionError === null) {
    const verdict = pathFor(version, config.versions, target);
    if (verdict.kind === 'none') versionError = verdict.reason;
    else if (verdict.kind === 'path') path = verdict.hops;
  }
  const endsAt = finalTarget({ path }, target);
  // A refresh of a plan made with --only: a server of another class is not this update's to touch.
  const only = config.versions.only ?? null;
  if (again && error === null && versionError === null && only !== null && cls !== null && cls !== only) {
    versionError = `class ${cls}, not ${only} (plan --only ${only})`;
  }
  const status =
    error !== null ? 'unreachable' : versionError !== null ? 'excluded' : commit === endsAt && lockedBy === null && !config.restartOnly ? 'skipped' : 'pending';
  if (lockedBy !== null) await store.addEvent(s.updateName, s.name, 'locked', `locked by ${lockedBy} when probed; start re-checks it under the lock`);
  if (status !== 'unreachable') await store.setProbedVersion(s.id, version, cls);
  const reason = status === 'excluded' ? versionError : error;
  if (again) {
    if (status === 'unreachable') await store.patchServer(s.id, { error, endedAt: deps.clock.now().toISOString() });
    else {
      const ended = status === 'skipped' || status === 'excluded';
      await store.setServerStatus(s.id, status, {
        fromCommit: commit,
        toCommit: status === 'skipped' ? endsAt : null,
        error: status === 'excluded' ? reason : null,
        endedAt: ended ? deps.clock.now().toISOString() : null,
        path: status === 'pending' ? path : s.path ?? null,
      });
    }
  } else if (status === 'pending') {
    await store.setProbedCommit(s.id, commit);
    if (path !== s.path) await store.patchServer(s.id, { path });
  } else {
    await store.setServerStatus(s.id, status, {
      fromCommit: commit,
      toCommit: status === 'skipped' ? endsAt : null,
      error: reason,
      endedAt: deps.clock.now().toISOString(),
    });
  }
  emit({
    type: 'probe',
    update: s.updateName,
    server: s.name,
    status,
    commit,
    error: reason ?? (lockedBy !== null ? `locked by ${lockedBy}` : null),
    ...(version !== null ? { version } : {}),
    ...(cls !== null ? { versionClass: cls } : {}),
    ...(path !== null && status === 'pending' && !config.restartOnly ? { path: path.map((h) => h.version ?? h.commit) } : {}),
  });
}
