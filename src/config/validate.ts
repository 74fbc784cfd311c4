/**
 * Config validation (SPEC.md "Config (YAML)"): turns the parsed YAML into a `Config`, or lists
 * EVERY problem at once, each with its dotted key path (`agent.health.timeout`,
 * `servers[2].host`) and, when the caller can tell, its line. Pure: the file system is only
 * reached through the functions of `ctx` (exists, readInventory, readFile, listDir).
 *
 * Each section is checked in its own file, which lists its rules and defaults beyond the SPEC's
 * example: `source` (check-source.ts), `ssh` (check-ssh.ts), how each server is reached
 * (reach.ts), `servers`, `inventory`, `server_types`, `include` and `exclude`
 * (check-servers.ts), `agent` and `restart` (check-agent.ts), `rollback`, `test_mode` and
 * `execution` (check-rollout.ts), `hooks` (check-hooks.ts). Every value is read through the
 * Checker (checker.ts); each section's keys and defaults are in keys.ts, the name rules in
 * names.ts.
 *
 * Here: the top level; `name` (optional, an update name); and the rules across sections
 * (source.min_compatible and source.min_version need agent.semver_command). The sections are
 * checked in the order below, which is the order problems without a line are listed in.
 *
 * The extensions SPEC.md lists as decided but not built yet are reported as "not supported yet"
 * rather than as unknown keys (keys.ts, PLANNED).
 */
import * as path from 'node:path';
import type { ConfigProblem } from '../errors.js';
import type { Config } from './types.js';
import type { InventoryRead } from './inventory/index.js';
import { isUpdateName } from './names.js';
import { Checker, isRecord, sortProblems, type KeyPath } from './checker.js';
import { KEYS, PLANNED } from './keys.js';
import { checkSource } from './check-source.js';
import { checkSsh } from './check-ssh.js';
import { serverReach } from './reach.js';
import { checkSelection, checkServers } from './check-servers.js';
import { checkAgent } from './check-agent.js';
import { checkRollout } from './check-rollout.js';
import { checkHooks } from './check-hooks.js';

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
  /**
   * A read-only view (`config`, `freeze`): the problems that matter only when connecting
   * (ConfigProblem.local: a key, known_hosts or ssh config file missing here) come back as
   * `warnings` beside the config instead of refusing it; any other problem still refuses it.
   */
  localAsWarnings?: boolean;
}

/** The config (with, for `localAsWarnings`, the local problems as warnings), or every problem. */
export type ValidateResult = { config: Config; warnings?: ConfigProblem[] } | { problems: ConfigProblem[] };

/** The parsed YAML of a config (merged with the site defaults) as a Config, or every problem. */
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

  // agent, and restart: (which of agent.restart's commands run)
  const { agent, restart } = checkAgent(c, top);

  // rollback, test_mode, execution
  const { rollback, testMode, execution } = checkRollout(c, top);

  // hooks
  const hooks = checkHooks(c, top);

  for (const key of ['min_compatible', 'min_version'] as const) {
    const set = key === 'min_compatible' ? source.minCompatible : source.minVersion;
    if (set != null && agent.semverCommand === null && isRecord(top.agent) && (top.agent.semver_command === undefined || top.agent.semver_command === null)) {
      c.add(['source', key], "needs agent.semver_command, to read each server's version");
    }
  }

  let warnings: ConfigProblem[] = [];
  if (ctx.localAsWarnings) {
    warnings = sortProblems(c.problems.filter((x) => x.local));
    const errors = c.problems.filter((x) => !x.local);
    if (errors.length) return { problems: sortProblems(errors) };
  } else if (c.problems.length) return { problems: sortProblems(c.problems) };

  return {
    ...(ctx.localAsWarnings ? { warnings } : {}),
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
      agent,
      restart,
      rollback,
      testMode,
      execution,
      hooks,
    },
  };
}

