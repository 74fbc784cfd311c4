/**
 * `agent-update restart -c FILE`, the `kubectl rollout restart` of agent-update (issue 25): a
 * rolling restart of the agent, one server at a time, verified, with no code change. It is an
 * update like any other (planned from the config's servers, --limit included; probed; run by the
 * same executor, so status, pause, resume, split, drop, takeover after kill -9 all apply), whose
 * settings say `restartOnly`: no source is read (nothing is fetched), each server's own target is
 * the commit it runs (its path: one hop, set by the probe and again at its turn), and the
 * executor's turn is rollout/restart-flow.ts. Its rollback is off (nothing changed to roll back:
 * a failure is `failed`, and stops the update or counts against execution.max_failures).
 * The update's commit is the one most of its servers run, once they are probed (40 zeros until
 * then, and when none could be probed).
 */
import type { Config, RolloutSettings } from '../config/types.js';
import { datedName, freeName } from '../config/names.js';
import { UsageError } from '../errors.js';
import { forgettable } from '../model/lifecycle.js';
import type { UpdateRecord } from '../model/records.js';
import { checkLocalSsh } from '../ssh/transport.js';
import { actor } from '../util/actor.js';
import { plural } from '../util/plural.js';
import { suggest } from '../util/suggest.js';
import { checkUpdateName, probePlan, recordPlan, selectServers, settingsOf, type PlanDeps, type PlanInput } from './plan.js';

/** A restart's commit before its servers are probed: no commit. */
export const NO_COMMIT = '0'.repeat(40);

/**
 * The config's settings for a restart: the same ssh, agent (restart, health, diagnose),
 * execution (steps, bake, guard, window, budget) and hooks; no versions (none is read: a server
 * whose version cannot be read is restarted all the same), no agent.prepare (nothing to fetch),
 * rollback off.
 */
export function restartSettings(config: Config): RolloutSettings {
  const { versions: _versions, ...s } = settingsOf(config, NO_COMMIT, null);
  return {
    ...s,
    agent: { ...s.agent, semverCommand: null, prepare: [] },
    rollback: { enabled: false, continueAfterRollback: config.rollback.continueAfterRollback, commit: null },
    restartOnly: true,
  };
}

/**
 * Record a restart of the config's selected servers (`planning`), probe them (unreachable ones
 * stay `unreachable`, never touched; none is `skipped`), set its commit to the one most of them
 * run, → `pending`. Ctrl-C: as plan (nothing recorded).
 */
export async function createRestart(deps: PlanDeps, config: Config, opts: { name?: string; concurrency: number; signal?: AbortSignal }): Promise<UpdateRecord> {
  const { store } = deps;
  const servers = selectServers(config);
  if (servers.length === 0) throw new UsageError(`${config.file}: server_types, include and exclude select no server`);
  if (config.restart.length === 0) throw new UsageError(`${config.file}: restart lists no named restart (agent.restart) to run: there is nothing to restart`);
  const name = opts.name ?? (await freeName(datedName('restart', deps.clock.now()), (n) => store.hasUpdate(n)));
  checkUpdateName(name);
  const existing = await store.findUpdate(name);
  if (existing !== null) {
    const forget = forgettable(existing) ? ` (it is ${existing.status} and never ran: \`${suggest(`forget ${name}`)}\` removes it)` : '';
    throw new UsageError(`an update named ${name} already exists in ${store.location}${forget}; pass --name to choose another`);
  }
  await checkLocalSsh(deps.transport, config.ssh, `cannot restart`, servers);
  const settings = restartSettings(config);
  const input: PlanInput = {
    name,
    repo: config.source.repo,
    branch: config.source.branch,
    commit: NO_COMMIT,
    configFile: config.file,
    settings,
    testStopAfter: config.testMode.stopAfter,
    servers,
    probeWith: { ...settings, versions: {}, restartOnly: true },
    createdBy: actor(),
  };
  await store.tx(async (t) => {
    await recordPlan(t, input);
    await t.addEvent(name, null, 'restart', `a rolling restart of ${plural(servers.length, 'server')} (${config.restart.join(', ')}), no code change`, input.createdBy);
  });
  return probePlan(deps, input, {
    concurrency: opts.concurrency,
    signal: opts.signal,
    afterProbe: async () => {
      const commit = mostCommon((await store.getServers(name)).flatMap((s) => (s.status === 'pending' && s.fromCommit !== null ? [s.fromCommit] : [])));
      if (commit !== null) await store.patchUpdate(name, { commit });
    },
  });
}

/** The value most often in `list` (the first of equals), or null for none. */
function mostCommon(list: readonly string[]): string | null {
  const counts = new Map<string, number>();
  for (const x of list) counts.set(x, (counts.get(x) ?? 0) + 1);
  let best: string | null = null;
  for (const [x, n] of counts) if (best === null || n > counts.get(best)!) best = x;
  return best;
}
