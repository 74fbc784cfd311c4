/**
 * Config validation (SPEC.md "Config (YAML)"): turns the parsed YAML into a `Config`, or lists
 * EVERY problem at once, each with its dotted key path (`agent.health.timeout`,
 * `servers[2].host`) and, when the caller can tell, its line. Pure: the file system is only
 * reached through `ctx.exists` and `ctx.readInventory`.
 *
 * Defaults and rules beyond the SPEC's example:
 *
 * - `name`: optional, `[A-Za-z0-9][A-Za-z0-9._-]{0,99}`.
 * - `restart`: default `[]` (no restart); every name must be a key of `agent.restart`.
 * - Commands may only use the placeholders `{repo}`, `{branch}`, `{commit}`,
 *   `{previous_commit}`; `${VAR}` and braces with spaces (`awk '{ print $1 }'`) are not
 *   placeholders. `agent.version_command` may use none: it runs as written. A placeholder may
 *   stand unquoted, inside '…' or inside "…" (its value is made one literal string there); one
 *   inside `…`, $(…), $((…)), ((…)), ${…}, $'…', a comment or a here-document, or right after a
 *   backslash, is refused (see placeholderSites in util/shell.ts).
 * - `agent.health.expect`: default `"{commit}"`; `""` means "exit status 0 is enough".
 *   `agent.health.timeout` default 5m, `agent.health.interval` default 2s, less than the timeout.
 *
 * Extension keys (not in the SPEC's example):
 *
 * - `agent.prepare` (default none): commands that change nothing that runs (`git fetch`), run
 *   ahead on the next `execution.prepare_ahead` servers (default 1, 0..1000; 0 = off) while the
 *   current one updates (rollout/ahead.ts); placeholders as in `agent.update`.
 * - `execution.busy_wait` (default `10m`; `0` = do not wait): how long an executor waits for a
 *   server that another update (of this database, or of another one, by the lock on the server)
 *   is working on, before it pauses its own update with a reason naming the other.
 *
 *
 * - `agent.diagnose` (default none): commands run on a server whose update or verify failed,
 *   before its rollback (rollout/diagnose.ts), placeholders as in `agent.update`; a list, or
 *   `{commands: [...], timeout: 30s}` (each command's own timeout, default 30s). An empty list
 *   is none.
 *
 * The other extensions SPEC.md lists as decided but not built yet are reported as "not
 * supported yet" rather than as unknown keys.
 */
import * as path from 'node:path';
import type { ConfigProblem } from '../errors.js';
import type { Config, DiagnoseConfig, FailureBudget } from './types.js';
import type { InventoryRead } from './inventory/index.js';
import { formatDuration } from '../util/duration.js';
import { findPlaceholders } from '../util/shell.js';
import { isRestartName, isUpdateName } from './names.js';
import { CONFIG_WORDS, didYouMean } from '../util/did-you-mean.js';
import { Checker, describe, isRecord, sortProblems, type KeyPath } from './checker.js';
import { DEFAULTS, KEYS, PLANNED } from './keys.js';
import { checkSource } from './check-source.js';
import { checkSsh } from './check-ssh.js';
import { serverReach } from './reach.js';
import { checkSelection, checkServers } from './check-servers.js';

export interface ValidateContext {
  /** the config file, as given (made absolute with `dir` when relative) */
  file: string;
  /** folder relative paths in the config are resolved against (the config file's folder) */
  dir: string;
  /** home folder, for `~` */
  home: string;
  /** the current user name: default for `ssh.user` */
  user?: string;
  /** does this absolute path name an existing file? Without it, file checks are skipped. */
  exists?: (absPath: string) => boolean;
  /** the line (1-based) of a key path in the source, when known */
  locate?: (path: KeyPath) => number | undefined;
  /** reads `inventory:` (an absolute path); needed only when the config has one */
  readInventory?: (absPath: string) => InventoryRead;
  /** read a file (`ssh.config` and its Includes); without it, `ssh.config` is not read */
  readFile?: (absPath: string) => { text: string } | { error: string };
  /** file names in a folder (ssh config `Include` patterns) */
  listDir?: (absPath: string) => string[];
  /** environment for `${VAR}` in ssh config paths; default process.env */
  env?: NodeJS.ProcessEnv;
  /**
   * The config is merged from several files (site defaults, config/defaults.ts): the file and
   * folder of the value at a key path, undefined where there is none. A problem is then reported
   * against the file its key path (or nearest parent that is there) was written in, with `locate`
   * giving the line in that file, and a relative path is resolved against that file's folder.
   */
  origin?: (path: KeyPath) => { file: string; dir: string } | undefined;
}

export type ValidateResult = { config: Config } | { problems: ConfigProblem[] };

/**
 * The keys of `agent.diagnose` in its mapping form. Not in KEYS: a stray top-level `timeout:`
 * or `commands:` must not be said to belong under a `diagnose:` section of the top level.
 */
const DIAGNOSE_KEYS = ['commands', 'timeout'] as const;

// ---------------------------------------------------------------------------------------------
// validateConfig

export function validateConfig(raw: unknown, ctx: ValidateContext): ValidateResult {
  const c = new Checker(ctx);
  const file = path.resolve(ctx.dir, ctx.file);

  if (raw === null || raw === undefined) {
    c.add([], 'the config file is empty; it needs at least source, servers and agent');
    return { problems: c.problems };
  }
  const top = c.section([], raw, KEYS.top, PLANNED.top);
  if (top === null) return { problems: c.problems };

  // name
  let name: string | null = null;
  if (top.name !== undefined && top.name !== null) {
    const s = c.string(['name'], top.name);
    if (s !== undefined) {
      if (isUpdateName(s)) name = s;
      else c.add(['name'], `${JSON.stringify(s)} is not a valid name: use letters, digits, '.', '_' and '-', starting with a letter or digit, at most 100 characters`);
    }
  }

  const source = checkSource(c, top);

  // ssh (before servers: servers default to ssh.user / ssh.port)
  const { ssh, raw: sshRaw, parsed: sshCfg } = checkSsh(c, ctx, top);
  const reach = serverReach(c, ctx, ssh, sshRaw, sshCfg);

  // servers: the `servers:` list, then the hosts of `inventory:`; then what a plan covers
  const { servers, inventory, complete: serversComplete } = checkServers(c, ctx, top, ssh, reach);
  const { serverTypes, include, exclude } = checkSelection(c, top, servers, serversComplete);

  // agent
  let versionCommand = '';
  let semverCommand: string | null = null;
  const update: string[] = [];
  const prepare: string[] = [];
  const restartCommands: Record<string, string> = {};
  let diagnose: DiagnoseConfig | undefined;
  let restartsKnown = false;
  const health = {
    command: '',
    expect: DEFAULTS.healthExpect as string,
    timeoutMs: DEFAULTS.healthTimeoutMs as number,
    intervalMs: DEFAULTS.healthIntervalMs as number,
    stableForMs: 0,
  };
  const agent = c.section(['agent'], top.agent, KEYS.agent, PLANNED.agent);
  if (top.agent === undefined || top.agent === null) {
    c.add(['agent'], 'is required (with version_command, update and health)');
  } else if (agent) {
    versionCommand = c.command(['agent', 'version_command'], agent.version_command) ?? '';
    const used = findPlaceholders(versionCommand);
    if (used.length) {
      c.add(
        ['agent', 'version_command'],
        `placeholders are not expanded here (it runs as written, to read the installed commit): ${used.map((n) => `{${n}}`).join(', ')}`,
      );
    }
    if (agent.semver_command !== undefined && agent.semver_command !== null) {
      semverCommand = c.command(['agent', 'semver_command'], agent.semver_command) ?? null;
      const inSemver = semverCommand === null ? [] : findPlaceholders(semverCommand);
      if (inSemver.length) {
        c.add(
          ['agent', 'semver_command'],
          `placeholders are not expanded here (it runs as written, to read the installed version): ${inSemver.map((n) => `{${n}}`).join(', ')}`,
        );
      }
    }

    if (agent.update === undefined || agent.update === null) {
      c.add(['agent', 'update'], 'is required: the list of commands that install the new commit');
    } else if (!Array.isArray(agent.update)) {
      c.add(['agent', 'update'], `must be a list of commands, got ${describe(agent.update)}`);
    } else if (agent.update.length === 0) {
      c.add(['agent', 'update'], 'must list at least one command');
    } else {
      agent.update.forEach((cmd: unknown, i: number) => {
        const s = c.command(['agent', 'update', i], cmd);
        if (s !== undefined) update.push(s);
      });
    }

    if (agent.prepare !== undefined && agent.prepare !== null) {
      if (!Array.isArray(agent.prepare)) {
        c.add(['agent', 'prepare'], `must be a list of commands (git -C ~/agent/repo fetch --quiet {repo} {commit}), got ${describe(agent.prepare)}`);
      } else {
        agent.prepare.forEach((cmd: unknown, i: number) => {
          const s = c.command(['agent', 'prepare', i], cmd);
          if (s !== undefined) prepare.push(s);
        });
      }
    }

    diagnose = diagnoseConfig(c, agent.diagnose);

    if (agent.restart !== undefined && agent.restart !== null) {
      if (!isRecord(agent.restart)) {
        c.add(['agent', 'restart'], `must be a mapping of restart names to commands (web: sudo supervisorctl restart agent:web), got ${describe(agent.restart)}`);
      } else {
        restartsKnown = true;
        for (const [key, cmd] of Object.entries(agent.restart)) {
          if (!isRestartName(key)) {
            c.add(['agent', 'restart', key], `${JSON.stringify(key)} is not a valid restart name: use letters, digits, '.', '_' and '-'`);
          }
          const s = c.command(['agent', 'restart', key], cmd);
          if (s !== undefined) restartCommands[key] = s;
        }
      }
    } else restartsKnown = true;

    const h = c.section(['agent', 'health'], agent.health, KEYS.health, PLANNED.health);
    if (agent.health === undefined || agent.health === null) {
      c.add(['agent', 'health'], 'is required (with command: how to tell the agent is online)');
    } else if (h) {
      health.command = c.command(['agent', 'health', 'command'], h.command) ?? '';
      if (h.expect !== undefined && h.expect !== null) {
        const s = c.string(['agent', 'health', 'expect'], h.expect, 'a string to find in the output');
        if (s !== undefined && c.placeholders(['agent', 'health', 'expect'], s)) health.expect = s;
      }
      health.timeoutMs = c.duration(['agent', 'health', 'timeout'], h.timeout, DEFAULTS.healthTimeoutMs);
      health.intervalMs = c.duration(['agent', 'health', 'interval'], h.interval, DEFAULTS.healthIntervalMs);
      health.stableForMs = c.duration(['agent', 'health', 'stable_for'], h.stable_for, 0, true);
      if (health.intervalMs >= health.timeoutMs) {
        const both = `${formatDuration(health.intervalMs)} is not less than ${formatDuration(health.timeoutMs)}`;
        if (h.interval === undefined || h.interval === null) {
          c.add(['agent', 'health', 'timeout'], `must be longer than agent.health.interval (${both}, the default interval)`);
        } else {
          c.add(['agent', 'health', 'interval'], `must be shorter than agent.health.timeout (${both})`);
        }
      }
    }
  }

  // restart
  const restart: string[] = [];
  if (top.restart !== undefined && top.restart !== null) {
    if (!Array.isArray(top.restart)) {
      c.add(['restart'], `must be a list of names from agent.restart, e.g. [web, workers], got ${describe(top.restart)}`);
    } else {
      const names = Object.keys(restartCommands);
      const declared = isRecord(agent?.restart) ? Object.keys(agent.restart) : [];
      top.restart.forEach((r: unknown, i: number) => {
        const v = c.string(['restart', i], r, 'a restart name (a string)');
        if (v === undefined) return;
        if (restart.includes(v)) {
          c.add(['restart', i], `${JSON.stringify(v)} is listed twice`);
          return;
        }
        if (restartsKnown && !declared.includes(v)) {
          const defined = declared.length ? `agent.restart defines: ${declared.join(', ')}` : 'agent.restart defines none';
          c.add(['restart', i], `unknown restart ${JSON.stringify(v)}${didYouMean(v, declared, CONFIG_WORDS, String)} (${defined})`);
          return;
        }
        if (names.includes(v) || !restartsKnown) restart.push(v);
      });
    }
  }

  // rollback
  const rb = c.section(['rollback'], top.rollback, KEYS.rollback) ?? {};
  const rollback = {
    enabled: c.bool(['rollback', 'enabled'], rb.enabled, DEFAULTS.rollbackEnabled),
    continueAfterRollback: c.bool(['rollback', 'continue_after_rollback'], rb.continue_after_rollback, DEFAULTS.continueAfterRollback),
    commit: c.commit(['rollback', 'commit'], rb.commit),
  };

  // test_mode
  const tm = c.section(['test_mode'], top.test_mode, KEYS.test_mode) ?? {};
  const stopAfter = c.int(['test_mode', 'stop_after'], tm.stop_after, DEFAULTS.stopAfter, 0, Number.MAX_SAFE_INTEGER, 'a whole number 0 or more (0 = off)');

  // execution
  const ex = c.section(['execution'], top.execution, KEYS.execution, PLANNED.execution) ?? {};
  const busyWaitMs = c.duration(['execution', 'busy_wait'], ex.busy_wait, DEFAULTS.busyWaitMs, true);
  const maxFailures = failureBudget(c, ['execution', 'max_failures'], ex.max_failures);
  const prepareAhead = c.int(['execution', 'prepare_ahead'], ex.prepare_ahead, DEFAULTS.prepareAhead, 0, 1000, 'a whole number 0 to 1000 (0 = do not prepare ahead)');
  if (maxFailures !== null && !rollback.continueAfterRollback) {
    c.add(
      ['execution', 'max_failures'],
      'needs rollback.continue_after_rollback: true (without it the first server that fails stops the update, so there is no budget to spend)',
    );
  }

  for (const key of ['min_compatible', 'min_version'] as const) {
    const set = key === 'min_compatible' ? source.minCompatible : source.minVersion;
    if (set != null && semverCommand === null && isRecord(top.agent) && (top.agent.semver_command === undefined || top.agent.semver_command === null)) {
      c.add(['source', key], "needs agent.semver_command, to read each server's version");
    }
  }

  if (c.problems.length) return { problems: sortProblems(c.problems) };

  return {
    config: {
      file,
      name,
      source,
      servers,
      inventory,
      serverTypes,
      include: include ?? null,
      exclude: exclude ?? null,
      ssh,
      agent: { versionCommand, semverCommand, prepare, update, restart: restartCommands, health, ...(diagnose ? { diagnose } : {}) },
      restart,
      rollback,
      testMode: { stopAfter },
      execution: { busyWaitMs, maxFailures, prepareAhead },
    },
  };
}

/**
 * `agent.diagnose`: a list of commands (each with the default timeout), or `{commands, timeout}`.
 * Absent, null or no command: none (undefined), so a config can turn off a site default's with [].
 */
function diagnoseConfig(c: Checker, v: unknown): DiagnoseConfig | undefined {
  if (v === undefined || v === null) return undefined;
  const p: KeyPath = ['agent', 'diagnose'];
  const example = '(tail -n 50 ~/agent/log/agent.log), or a mapping {commands: [...], timeout: 30s}';
  let list: unknown = v;
  let listPath = p;
  let timeoutMs: number = DEFAULTS.diagnoseTimeoutMs;
  if (isRecord(v)) {
    const d = c.section(p, v, DIAGNOSE_KEYS);
    if (!d) return undefined;
    timeoutMs = c.duration([...p, 'timeout'], d.timeout, DEFAULTS.diagnoseTimeoutMs);
    list = d.commands;
    listPath = [...p, 'commands'];
    if (list === undefined || list === null) {
      c.add(listPath, 'is required: the list of commands to run on a server that failed (tail -n 50 ~/agent/log/agent.log)');
      return undefined;
    }
  }
  if (!Array.isArray(list)) {
    c.add(listPath, `must be a list of commands ${listPath === p ? example : '(tail -n 50 ~/agent/log/agent.log)'}, got ${describe(list)}`);
    return undefined;
  }
  const commands: string[] = [];
  let ok = true;
  list.forEach((cmd: unknown, i: number) => {
    const s = c.command([...listPath, i], cmd);
    if (s === undefined) ok = false;
    else commands.push(s);
  });
  return ok && commands.length > 0 ? { commands, timeoutMs } : undefined;
}

/** `execution.max_failures`: a whole number of servers, or a percentage of the update's (`"10%"`). */
function failureBudget(c: Checker, p: KeyPath, v: unknown): FailureBudget | null {
  if (v === undefined || v === null) return null;
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return { count: v };
  if (typeof v === 'string') {
    const m = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(v);
    if (m && Number(m[1]) <= 100) return { percent: Number(m[1]) };
    if (/^\d+$/.test(v.trim())) return { count: Number(v.trim()) };
  }
  c.add(p, `must be a whole number of servers (3) or a percentage of the update's servers ("10%", 0 to 100), got ${describe(v)}`);
  return null;
}

