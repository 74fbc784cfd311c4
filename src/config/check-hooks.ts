/**
 * `hooks:` (rollout/hooks.ts calls them): a list, each entry one of
 *
 * - `run: COMMAND`: a shell command run with /bin/sh on the machine running agent-update (not on
 *   the servers), the event's JSON on its stdin. The agent commands' placeholders are not
 *   expanded (the event is on stdin and in AGENT_UPDATE_* variables), so a `{commit}` in it is
 *   refused as a mistake; other braces (jq's `{update}`) are the command's own.
 * - `url: URL`: an http(s) URL POSTed the event's JSON. `${NAME}` in it is the environment
 *   variable NAME when the hook is called (config/hook-url.ts); a password written in it is
 *   refused (it would be stored with the plan).
 *
 * with `timeout` (a duration, default 10s), `required` (default false) and `events` (names from
 * config/hook-events.ts: hook events, NDJSON event types, `all`; default the hook events; an
 * unknown name gets a "did you mean"). `hooks: []` or null: none.
 */
import { CONFIG_WORDS, didYouMean } from '../util/did-you-mean.js';
import { findPlaceholders, PLACEHOLDERS } from '../util/shell.js';
import { describe, type Checker, type KeyPath } from './checker.js';
import { ALL_EVENTS, EVENT_TYPES, HOOK_EVENT_NAMES, NOT_FOR_HOOKS } from './hook-events.js';
import { urlVars } from './hook-url.js';
import { DEFAULTS, KEYS } from './keys.js';
import { isEnvVarName } from './names.js';
import type { HookConfig } from './types.js';

const EXAMPLE = '(- run: ./notify.sh, or - url: https://hooks.example.com/…)';

/** `hooks:` as the config's hooks; the problems go to `c`. */
export function checkHooks(c: Checker, top: Record<string, unknown>): HookConfig[] {
  const v = top.hooks;
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) {
    c.add(['hooks'], `must be a list of hooks ${EXAMPLE}, got ${describe(v)}`);
    return [];
  }
  const hooks: HookConfig[] = [];
  v.forEach((entry: unknown, i: number) => {
    const hook = checkHook(c, ['hooks', i], entry);
    if (hook) hooks.push(hook);
  });
  return hooks;
}

function checkHook(c: Checker, p: KeyPath, v: unknown): HookConfig | undefined {
  if (typeof v === 'string') {
    c.add(p, `must be a mapping with run: or url:, got ${describe(v)}; write - run: ${JSON.stringify(v)} for a command`);
    return undefined;
  }
  const h = c.section(p, v, KEYS.hook);
  if (h === null) return undefined;
  const timeoutMs = c.duration([...p, 'timeout'], h.timeout, DEFAULTS.hookTimeoutMs);
  const required = c.bool([...p, 'required'], h.required, false);
  const events = checkEvents(c, [...p, 'events'], h.events);
  const has = (k: string) => h[k] !== undefined && h[k] !== null;
  if (has('run') && has('url')) {
    c.add(p, 'has both run: and url:; a hook is one or the other (write two hooks for both)');
    return undefined;
  }
  if (has('run')) {
    const run = hookCommand(c, [...p, 'run'], h.run);
    return run === undefined || events === undefined ? undefined : { run, timeoutMs, required, events };
  }
  if (has('url')) {
    const url = hookUrl(c, [...p, 'url'], h.url);
    return url === undefined || events === undefined ? undefined : { url, timeoutMs, required, events };
  }
  c.add(p, `needs run: (a command run here) or url: (a webhook) ${EXAMPLE}`);
  return undefined;
}

function hookCommand(c: Checker, p: KeyPath, v: unknown): string | undefined {
  const s = c.string(p, v, 'a shell command (a string)');
  if (s === undefined) return undefined;
  if (s.trim() === '') c.add(p, 'must not be empty');
  else if (s.includes('\0')) c.add(p, 'must not contain a NUL character');
  else if (placeholdersIn(s).length > 0) {
    const used = placeholdersIn(s).map((n) => `{${n}}`);
    c.add(p, `placeholders are not expanded in a hook (${used.join(', ')}): read the event's JSON on stdin, or $AGENT_UPDATE_UPDATE, $AGENT_UPDATE_SERVER and the other AGENT_UPDATE_ variables`);
  } else return s;
  return undefined;
}

/** The placeholders of agent commands in a hook's command (other `{word}`s, jq's `{update}`, are the command's own). */
function placeholdersIn(command: string): string[] {
  return findPlaceholders(command).filter((n) => (PLACEHOLDERS as readonly string[]).includes(n));
}

function hookUrl(c: Checker, p: KeyPath, v: unknown): string | undefined {
  const s = c.string(p, v, 'a URL (https://…)');
  if (s === undefined) return undefined;
  const bad = urlVars(s).find((name) => !isEnvVarName(name));
  if (bad !== undefined) {
    c.add(p, `\${${bad}} is not an environment variable name (letters, digits and _, not starting with a digit)`);
    return undefined;
  }
  // Each ${NAME} read as a plain word, to check the URL around it.
  let parsed: URL;
  try {
    parsed = new URL(s.replace(/\$\{[^}]*\}/g, 'x'));
  } catch {
    c.add(p, `is not a URL: write it whole, https://host/path (\${NAME} stands for an environment variable)`);
    return undefined;
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    c.add(p, `must be an http:// or https:// URL, got ${parsed.protocol.slice(0, -1)}:`);
    return undefined;
  }
  const userinfo = /^[^:]+:\/\/([^@/?#]*)@/.exec(s)?.[1] ?? '';
  const password = userinfo.includes(':') ? userinfo.slice(userinfo.indexOf(':') + 1) : '';
  if (password !== '' && !/^\$\{[^}]*\}$/.test(password)) {
    c.add(p, 'must not hold a password (it would be stored in the plan); put it in an environment variable: https://user:${HOOK_PASSWORD}@host/…');
    return undefined;
  }
  return s;
}

/** `events:` as validated names (each once); the hook events when absent; undefined when wrong. */
function checkEvents(c: Checker, p: KeyPath, v: unknown): string[] | undefined {
  if (v === undefined || v === null) return [...HOOK_EVENT_NAMES];
  const list = Array.isArray(v) ? v : [v];
  if (list.length === 0) {
    c.add(p, `must list at least one event; leave it out for the hook events (${HOOK_EVENT_NAMES.join(', ')})`);
    return undefined;
  }
  const known = [...HOOK_EVENT_NAMES, ALL_EVENTS, ...(EVENT_TYPES as readonly string[]).filter((t) => t !== NOT_FOR_HOOKS && !HOOK_EVENT_NAMES.includes(t))];
  const out: string[] = [];
  let ok = true;
  list.forEach((item: unknown, i: number) => {
    const ip: KeyPath = Array.isArray(v) ? [...p, i] : p;
    const name = c.string(ip, item, 'an event name (a string), e.g. server-fatal');
    if (name === undefined) {
      ok = false;
      return;
    }
    if (name === NOT_FOR_HOOKS) {
      c.add(ip, `hooks are never called on ${NOT_FOR_HOOKS}: a failing hook would be called about its own failure`);
      ok = false;
    } else if (!known.includes(name)) {
      const near = didYouMean(name, known, CONFIG_WORDS, (n) => JSON.stringify(n));
      c.add(ip, `unknown event ${JSON.stringify(name)}${near}${near ? '' : ` (the hook events are ${HOOK_EVENT_NAMES.join(', ')}; also ${ALL_EVENTS}, or any event type of the --json stream)`}`);
      ok = false;
    } else if (out.includes(name)) {
      c.add(ip, `${JSON.stringify(name)} is listed twice`);
      ok = false;
    } else out.push(name);
  });
  return ok ? out : undefined;
}
