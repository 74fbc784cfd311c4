/**
 * `agent:` (SPEC.md "Config (YAML)"): the commands run on each server, and `restart:`, which of
 * agent.restart's commands run.
 *
 * - Commands may only use the placeholders `{repo}`, `{branch}`, `{commit}`,
 *   `{previous_commit}`; `${VAR}` and braces with spaces (`awk '{ print $1 }'`) are not
 *   placeholders. `agent.version_command` may use none: it runs as written. A placeholder may
 *   stand unquoted, inside '…' or inside "…" (its value is made one literal string there); one
 *   inside `…`, $(…), $((…)), ((…)), ${…}, $'…', a comment or a here-document, or right after a
 *   backslash, is refused (see placeholderSites in util/shell.ts).
 * - `agent.health.expect`: default `"{commit}"`; `""` means "exit status 0 is enough".
 *   `agent.health.timeout` default 5m, `agent.health.interval` default 2s, less than the timeout.
 * - `restart`: default `[]` (no restart); every name must be a key of `agent.restart`.
 * - `agent.semver_command` (default none): prints the installed agent's version; no placeholders
 *   (it runs as written); needed by source.min_compatible and source.min_version (validate.ts).
 * - `agent.prepare` (default none): commands that change nothing that runs (`git fetch`), run
 *   ahead on the next `execution.prepare_ahead` servers (default 1, 0..1000; 0 = off) while the
 *   current one updates (rollout/ahead.ts); placeholders as in `agent.update`.
 * - `agent.diagnose` (default none): commands run on a server whose update or verify failed,
 *   before its rollback (rollout/diagnose.ts), placeholders as in `agent.update`; a list, or
 *   `{commands: [...], timeout: 30s}` (each command's own timeout, default 30s). An empty list
 *   is none.
 */
import { CONFIG_WORDS, didYouMean } from '../util/did-you-mean.js';
import { formatDuration } from '../util/duration.js';
import { findPlaceholders } from '../util/shell.js';
import { describe, isRecord, type Checker, type KeyPath } from './checker.js';
import { DEFAULTS, KEYS, PLANNED } from './keys.js';
import { isRestartName } from './names.js';
import type { Config, DiagnoseConfig } from './types.js';

/**
 * The keys of `agent.diagnose` in its mapping form. Not in KEYS: a stray top-level `timeout:`
 * or `commands:` must not be said to belong under a `diagnose:` section of the top level.
 */
const DIAGNOSE_KEYS = ['commands', 'timeout'] as const;

/** `agent:` as the config's agent settings, and `restart:`; the problems go to `c`. */
export function checkAgent(c: Checker, top: Record<string, unknown>): { agent: Config['agent']; restart: string[] } {
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


  return {
    agent: { versionCommand, semverCommand, prepare, update, restart: restartCommands, health, ...(diagnose ? { diagnose } : {}) },
    restart,
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
