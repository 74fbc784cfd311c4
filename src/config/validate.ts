/**
 * Config validation (SPEC.md "Config (YAML)"): turns the parsed YAML into a `Config`, or lists
 * EVERY problem at once, each with its dotted key path (`agent.health.timeout`,
 * `servers[2].host`) and, when the caller can tell, its line. Pure: the file system is only
 * reached through `ctx.exists` and `ctx.readInventory`.
 *
 * Defaults and rules beyond the SPEC's example:
 *
 * - `name`: optional, `[A-Za-z0-9][A-Za-z0-9._-]{0,99}`.
 * - `servers[].name` is required, unique, `[A-Za-z0-9][A-Za-z0-9._-]*`; `type` defaults to
 *   `default`; `user` and `port` default to `ssh.user` and `ssh.port`.
 * - `server_types`: every listed type must be the type of at least one server; a server is
 *   covered when any of its types is listed.
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
 * - `servers[].type` may be a list (`[app, web]`): every type of the server, the first its
 *   primary one (status JSON's `type`).
 * - `inventory: PATH` (relative to the config's folder, `~` = home): more servers, from an
 *   Ansible INI or YAML inventory or a list in our own format (config/inventory/). With it,
 *   `servers:` is optional; with both, the servers are `servers:` then the inventory's. A name
 *   in both is an error reported at the config's entry, naming the inventory's file and line.
 *   Problems inside the inventory carry its file (ConfigProblem.file) and line.
 * - `include` / `exclude`: server-name globs (a string or a list), applied after
 *   `server_types` (config/select.ts). An include pattern matching none of the servers
 *   server_types covers is an error (a typo, nearly always); an exclude that matches nothing is
 *   fine; a selection left empty is an error.
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
import type { Config, DiagnoseConfig, FailureBudget, ServerSources, ServerSpec } from './types.js';
import type { InventoryRead } from './inventory/index.js';
import { select } from './select.js';
import { formatDuration } from '../util/duration.js';
import { findPlaceholders } from '../util/shell.js';
import { isRestartName, isServerName, isUpdateName } from './names.js';
import { CONFIG_WORDS, didYouMean } from '../util/did-you-mean.js';
import { Checker, checkUser, describe, formatKeyPath, isRecord, sortProblems, type KeyPath } from './checker.js';
import { DEFAULTS, KEYS, PLANNED } from './keys.js';
import { checkSource } from './check-source.js';
import { checkSsh } from './check-ssh.js';
import { serverReach, type ReachResolver } from './reach.js';

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
  const { user: sshUser, port: sshPort } = ssh;
  const reach = serverReach(c, ctx, ssh, sshRaw, sshCfg);

  // servers: the `servers:` list, then the hosts of `inventory:`
  const servers: ServerSpec[] = [];
  // every entry became a server: only then can "matches no server" be told
  let serversComplete = true;
  const candidates: Candidate[] = [];
  const others: Checker[] = [];
  const hasInventory = top.inventory !== undefined && top.inventory !== null;
  if (top.servers === undefined || top.servers === null) {
    if (!hasInventory) c.add(['servers'], 'is required: a list of servers, e.g. - { name: app1, host: 10.0.0.11 } (or inventory: PATH)');
  } else if (!Array.isArray(top.servers)) {
    c.add(['servers'], `must be a list of servers, got ${describe(top.servers)}`);
    serversComplete = false;
  } else if (top.servers.length === 0) {
    if (!hasInventory) c.add(['servers'], 'must list at least one server');
  } else {
    top.servers.forEach((item: unknown, i: number) => {
      const p: KeyPath = ['servers', i];
      const r = checkServer(c, p, item, sshUser, sshPort, `servers[${i}].user`, reach);
      if (!r.spec) serversComplete = false;
      if (r.name !== undefined) candidates.push({ ...r, name: r.name, c, p, label: `servers[${i}]`, file, line: c.lineOf(p), origin: 'config' });
    });
  }

  let inventory: string | null = null;
  if (hasInventory) {
    const s = c.string(['inventory'], top.inventory, 'a file path (a string)');
    const abs = s === undefined ? undefined : c.filePath(['inventory'], s);
    if (abs === undefined) serversComplete = false;
    else {
      inventory = abs;
      if (!ctx.readInventory) throw new Error('validateConfig: the config has an inventory and ctx.readInventory is not set');
      const read = ctx.readInventory(abs);
      if (read.kind === 'unreadable') {
        c.add(['inventory'], `${read.message}${abs !== s ? ` (from ${JSON.stringify(s)})` : ''}`);
        serversComplete = false;
      } else if (read.kind === 'problems') {
        c.problems.push(...read.problems);
        serversComplete = false;
      } else if (read.kind === 'servers') {
        // agent-update's own format: entries exactly as under servers:, problems in that file
        const ic = new Checker({ ...ctx, locate: read.locate }, { file: read.file });
        others.push(ic);
        let list: unknown = read.value;
        if (read.base.length) {
          const wrapper = read.value as Record<string, unknown>;
          for (const key of Object.keys(wrapper)) {
            if (key !== 'servers') ic.add([key], "unknown key: an inventory in agent-update's format holds servers: only");
          }
          list = wrapper.servers;
        }
        if (!Array.isArray(list) || list.length === 0) {
          ic.add(read.base, 'must list at least one server');
          serversComplete = false;
        } else {
          list.forEach((item: unknown, i: number) => {
            const p: KeyPath = [...read.base, i];
            const label = formatKeyPath(p);
            const r = checkServer(ic, p, item, sshUser, sshPort, formatKeyPath([...p, 'user']), reach);
            if (!r.spec) serversComplete = false;
            if (r.name !== undefined) {
              candidates.push({ ...r, name: r.name, c: ic, p, label: label.startsWith('[') ? `entry ${label}` : label, file: read.file, line: read.locate(p), origin: 'inventory' });
            }
          });
        }
      } else {
        // an Ansible inventory: each field is placed where its variable was written
        c.problems.push(...read.problems);
        if (read.problems.length) serversComplete = false;
        for (const e of read.entries) {
          const ac = new Checker(ctx, {
            where: (p) => {
              // the field's own place (`jump`, not its hop `jump[0]`), else the host's
              const key = [...p].reverse().find((k) => typeof k === 'string');
              const place = e.places[key as keyof typeof e.places] ?? e.places.name;
              return { path: place.path, file: place.file, line: place.line };
            },
          });
          others.push(ac);
          const r = checkServer(ac, [], e.raw, sshUser, sshPort, 'ansible_user', reach);
          if (!r.spec) serversComplete = false;
          if (r.name !== undefined) {
            candidates.push({ ...r, name: r.name, c: ac, p: [], label: r.name, file: e.places.name.file, line: e.places.name.line, origin: 'ansible' });
          }
        }
      }
    }
  }

  {
    // One name is one server; one account (user@host:port) is one agent checkout: listed twice,
    // it would be updated twice, and by two executors at once if a split put the entries in
    // different batches.
    const byName = new Map<string, Candidate>();
    const byAccount = new Map<string, Candidate>();
    for (const cand of candidates) {
      const prev = byName.get(cand.name);
      if (prev) {
        serversComplete = false;
        if (prev.origin === 'config' && cand.origin !== 'config') {
          // reported in the config, where the two lists meet
          prev.c.add(
            [...prev.p, 'name'],
            `duplicate server name ${JSON.stringify(cand.name)}: the inventory lists it too (${cand.file}${cand.line !== undefined ? `:${cand.line}` : ''}); ` +
              'list each server once, under servers or in the inventory',
          );
        } else cand.c.add([...cand.p, 'name'], `duplicate server name ${JSON.stringify(cand.name)} (also ${refer(prev, cand, false)})`);
        continue;
      }
      byName.set(cand.name, cand);
      const spec = cand.spec;
      if (!spec) continue;
      const account = `${spec.user}@${spec.host.toLowerCase()}:${spec.port}`;
      const other = byAccount.get(account);
      if (other) {
        serversComplete = false;
        cand.c.add(
          [...cand.p, cand.origin === 'ansible' ? 'name' : 'host'],
          `${JSON.stringify(cand.name)} is the same host, port and user (${account}) as ${refer(other, cand, true)}: ` +
            'one account is one agent checkout; list it once',
        );
        continue;
      }
      byAccount.set(account, cand);
      servers.push(spec);
    }
    // the same definition (a group variable) is wrong for each of its hosts: say it once
    const seen = new Set(c.problems.map(problemKey));
    for (const o of others) {
      for (const p of o.problems) {
        if (seen.has(problemKey(p))) continue;
        seen.add(problemKey(p));
        c.problems.push(p);
      }
    }
  }

  // server_types: a server is covered when any of its types is listed
  let serverTypes: string[] | null = null;
  let selectionOk = serversComplete;
  if (top.server_types !== undefined && top.server_types !== null) {
    const st = top.server_types;
    if (!Array.isArray(st)) {
      c.add(['server_types'], `must be a list of server types, e.g. [app, db], got ${describe(st)}`);
      selectionOk = false;
    } else if (st.length === 0) {
      c.add(['server_types'], 'must list at least one type; leave it out to cover every server');
      selectionOk = false;
    } else {
      const types = [...new Set(servers.flatMap((s) => s.types))];
      const out: string[] = [];
      st.forEach((t: unknown, i: number) => {
        const v = c.string(['server_types', i], t, 'a server type (a string)');
        if (v === undefined) {
          selectionOk = false;
          return;
        }
        if (!types.includes(v) && serversComplete) {
          const implicit =
            v === 'all' ? "; Ansible's group all is not a type: leave server_types out to cover every server"
            : v === 'ungrouped' ? "; Ansible's group ungrouped is not a type: hosts in no group have the type default"
            : '';
          c.add(
            ['server_types', i],
            `no server has type ${JSON.stringify(v)}${didYouMean(v, types, CONFIG_WORDS, String)}${implicit} (the servers' types: ${types.join(', ')})`,
          );
          selectionOk = false;
          return;
        }
        if (!out.includes(v)) out.push(v);
      });
      serverTypes = out;
    }
  }

  // include / exclude: server-name globs, after server_types
  const include = c.patterns(['include'], top.include);
  const exclude = c.patterns(['exclude'], top.exclude);
  if (include === undefined || exclude === undefined) selectionOk = false;
  if (selectionOk && (include || exclude)) {
    const r = select(servers, { serverTypes, include: include ?? null, exclude: exclude ?? null });
    for (const i of r.unmatchedInclude) {
      const pattern = include![i]!;
      const elsewhere = serverTypes ? select(servers, { serverTypes: null, include: [pattern], exclude: null }).servers : [];
      const names = (list: ServerSpec[]) => `${list.slice(0, 5).map((x) => x.name).join(', ')}${list.length > 5 ? `, … (${list.length})` : ''}`;
      c.add(
        Array.isArray(top.include) ? ['include', i] : ['include'],
        elsewhere.length
          ? `${JSON.stringify(pattern)} matches no server of server_types (${serverTypes!.join(', ')}); it matches ${names(elsewhere)}, of other types`
          : `${JSON.stringify(pattern)} matches no server (the servers: ${names(r.ofTypes)}); a pattern that matches nothing is almost always a typo`,
      );
    }
    if (r.unmatchedInclude.length === 0 && r.servers.length === 0) {
      c.add(exclude ? ['exclude'] : ['include'], `leaves no server to update (of ${r.ofTypes.length} ${serverTypes ? 'of server_types' : 'in all'})`);
    }
  }

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

/** A server entry on its way to the list: where it was written, for messages. */
interface Candidate {
  name: string;
  spec: ServerSpec | undefined;
  c: Checker;
  p: KeyPath;
  /** `servers[2]`, `entry [0]` (an inventory list), `web1` (an Ansible host) */
  label: string;
  file: string;
  line: number | undefined;
  origin: 'config' | 'inventory' | 'ansible';
}

/** How `cand`'s message names `other`: with its file and line when it is in another file. */
function refer(other: Candidate, cand: Candidate, withName: boolean): string {
  const elsewhere = other.file !== cand.file;
  const line = other.line !== undefined ? `:${other.line}` : '';
  if (other.origin === 'ansible') {
    const at = elsewhere ? `${other.file}${line}` : other.line !== undefined ? `line ${other.line}` : '';
    return at ? `${JSON.stringify(other.name)} (${at})` : JSON.stringify(other.name);
  }
  const base = withName ? `${other.label} ${JSON.stringify(other.name)}` : other.label;
  return elsewhere ? `${base} (${other.file}${line})` : base;
}

function problemKey(p: ConfigProblem): string {
  return `${p.file ?? ''}\0${p.line ?? ''}\0${p.path}\0${p.message}`;
}

/**
 * One entry of a server list (`servers:`, an inventory, an Ansible host as such an entry):
 * its name when that is valid (for the duplicate check), and the server when every field is.
 * `userKey` is where a user belongs, for the message about `user@host`.
 */
function checkServer(
  c: Checker,
  p: KeyPath,
  item: unknown,
  sshUser: string,
  sshPort: number,
  userKey: string,
  reach?: ReachResolver,
): { name: string | undefined; spec: ServerSpec | undefined } {
  const s = c.section(p, item, KEYS.server);
  if (s === null) return { name: undefined, spec: undefined };
  const before = c.problems.length;
  let name: string | undefined;
  if (s.name === undefined || s.name === null) {
    c.add([...p, 'name'], 'is required');
  } else {
    const v = c.string([...p, 'name'], s.name, 'a server name (a string)');
    if (v !== undefined && !isServerName(v)) {
      c.add([...p, 'name'], `${JSON.stringify(v)} is not a valid server name: use letters, digits, '.', '_' and '-', starting with a letter or digit`);
    } else name = v;
  }
  let host = '';
  if ((s.host === undefined || s.host === null) && reach?.aliasOk && name !== undefined) {
    // With an ssh config, a server may be named by its alias alone.
    host = name;
  } else if (s.host === undefined || s.host === null) {
    c.add([...p, 'host'], `is required (a host name or IP address${reach?.aliasOk ? ', or an alias of the ssh config' : ''})`);
  } else {
    const v = c.string([...p, 'host'], s.host, 'a host name or IP address (a string)');
    if (v === undefined) {
      // reported
    } else if (v === '') c.add([...p, 'host'], 'must not be empty');
    else if (/\s/.test(v)) c.add([...p, 'host'], `${JSON.stringify(v)} must not contain whitespace`);
    else if (v.startsWith('-')) c.add([...p, 'host'], `${JSON.stringify(v)} must not start with '-'`);
    else if (v.includes('@')) c.add([...p, 'host'], `${JSON.stringify(v)} must not contain '@'; put the user in ${userKey}`);
    else host = v;
  }
  const explicit: { user?: string; port?: number; identityFiles?: string[] } = {};
  if (s.port !== undefined && s.port !== null) explicit.port = c.int([...p, 'port'], s.port, sshPort, 1, 65535, 'a port number (an integer 1 to 65535)');
  if (s.user !== undefined && s.user !== null) {
    const u = checkUser(c, [...p, 'user'], s.user);
    if (u !== undefined) explicit.user = u;
  }
  if (s.identity_file !== undefined && s.identity_file !== null) {
    const v = c.string([...p, 'identity_file'], s.identity_file, 'a file path (a string)');
    const abs = v === undefined ? undefined : c.filePath([...p, 'identity_file'], v);
    if (abs !== undefined) {
      if (!c.exists(abs)) c.add([...p, 'identity_file'], `file not found: ${abs}${abs !== v ? ` (from ${JSON.stringify(v)})` : ''}`);
      explicit.identityFiles = [abs];
    }
  }
  // `type: app`, or several: `type: [app, web]` (the first is the primary type)
  const types: string[] = [];
  if (s.type !== undefined && s.type !== null) {
    const list = Array.isArray(s.type) ? s.type : [s.type];
    if (list.length === 0) c.add([...p, 'type'], 'must list at least one type');
    list.forEach((t: unknown, i: number) => {
      const tp: KeyPath = Array.isArray(s.type) ? [...p, 'type', i] : [...p, 'type'];
      const v = c.string(tp, t, 'a server type (a string)');
      if (v === undefined) return;
      if (v.trim() === '') c.add(tp, 'must not be empty');
      else if (!types.includes(v)) types.push(v);
    });
  } else types.push(DEFAULTS.serverType);
  if (c.problems.length > before || name === undefined || types.length === 0) return { name, spec: undefined };
  if (!reach) {
    return { name, spec: { name, host, port: explicit.port ?? sshPort, user: explicit.user ?? sshUser, type: types[0]!, types } };
  }
  const r = reach.resolve(p, { host, explicit, jump: { given: 'jump' in s, value: s.jump } });
  if (!r) return { name, spec: undefined };
  const spec: ServerSpec = { name, host: r.host, port: r.port, user: r.user, type: types[0]!, types, ...r.reach };
  // where each value came from (`agent-update servers`): the entry's own keys, else what the resolver says
  const sources: ServerSources = { ...r.sources };
  sources.host ??= c.sourceOf([...p, s.host === undefined || s.host === null ? 'name' : 'host']);
  if (explicit.port !== undefined) sources.port = c.sourceOf([...p, 'port']);
  if (explicit.user !== undefined) sources.user = c.sourceOf([...p, 'user']);
  if (explicit.identityFiles !== undefined) sources.identityFiles = c.sourceOf([...p, 'identity_file']);
  if ('jump' in s) sources.jump = `${c.sourceOf([...p, 'jump'])}${r.sources?.jump ?? ''}`;
  // non-enumerable: in memory only, never in JSON or the database, and no test's deepEqual sees it
  Object.defineProperty(spec, 'sources', { value: sources, enumerable: false });
  return { name, spec };
}

