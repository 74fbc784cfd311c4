/**
 * `rollback:`, `test_mode:` and `execution:` (SPEC.md "Config (YAML)"): how the executor goes
 * through the servers.
 *
 * - `rollback.commit`: 7 to 40 hex digits, stored lower case (Checker.commit); expanded to 40 by
 *   `plan`.
 * - `execution.prepare_ahead` (default 1, 0..1000; 0 = off): see agent.prepare (check-agent.ts).
 * - `execution.busy_wait` (default `10m`; `0` = do not wait): how long an executor waits for a
 *   server that another update (of this database, or of another one, by the lock on the server)
 *   is working on, before it pauses its own update with a reason naming the other.
 * - `execution.max_failures` (default none): servers that may end rolled back or failed before
 *   the update stops, a number or a percentage (`"10%"`); needs rollback.continue_after_rollback.
 * - `execution.steps` (default none: one step): cumulative sizes, each a number of servers, a
 *   percentage (`"25%"`) or `{ servers, bake, pause_after }`; strictly growing where two of the
 *   same kind can be compared; `"100%"` (or a last step short of it) ends the list implicitly.
 *   `execution.bake` (default 0) and `execution.pause_after_step` (default false): for every
 *   step without its own. Both need steps.
 * - `execution.guard` (default on: interval 30s, rollback false, after_finish 0s; `false`: off):
 *   `guard.rollback` needs rollback.enabled.
 * - `execution.window` (default none): when new servers may be started, `{days, hours,
 *   timezone}` each optional (config/window.ts); the time zone is the machine's when not given,
 *   filled in here so the plan stores the planner's.
 */
import { describe, type Checker, type KeyPath } from './checker.js';
import { DEFAULTS, KEYS, PLANNED } from './keys.js';
import type { Config, DeliveryStep, FailureBudget, GuardConfig, RolloutWindow, Weekday } from './types.js';
import { canonicalTimeZone, formatHours, machineTimeZone, parseDayEntry, parseHours, timeZoneNames, WEEKDAYS } from './window.js';
import { CONFIG_WORDS, didYouMean } from '../util/did-you-mean.js';

/** The three sections as the config's settings; the problems go to `c`. */
export function checkRollout(c: Checker, top: Record<string, unknown>): Pick<Config, 'rollback' | 'testMode' | 'execution'> {
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

  const steps = deliverySteps(c, ex);
  const guard = guardOf(c, ex.guard, rollback.enabled);
  const window = rolloutWindow(c, ['execution', 'window'], ex.window);

  return { rollback, testMode: { stopAfter }, execution: { busyWaitMs, maxFailures, prepareAhead, steps, guard, ...(window ? { window } : {}) } };
}

/** `execution.steps` with `bake` and `pause_after_step` filled in; null without steps. */
function deliverySteps(c: Checker, ex: Record<string, unknown>): DeliveryStep[] | null {
  const bakeMs = c.duration(['execution', 'bake'], ex.bake, DEFAULTS.bakeMs, true);
  const pauseAfter = c.bool(['execution', 'pause_after_step'], ex.pause_after_step, false);
  const v = ex.steps;
  if (v === undefined || v === null) {
    for (const key of ['bake', 'pause_after_step'] as const) {
      if (ex[key] !== undefined && ex[key] !== null) c.add(['execution', key], 'needs execution.steps (the steps to bake or pause after), e.g. steps: [1, "25%", "100%"]');
    }
    return null;
  }
  if (!Array.isArray(v) || v.length === 0) {
    c.add(['execution', 'steps'], `must be a list of step sizes, e.g. [1, 5, "25%", "100%"] (a number of servers or a percentage of the update's), got ${describe(v)}`);
    return null;
  }
  const out: DeliveryStep[] = [];
  let last: { count?: number; percent?: number } = {};
  v.forEach((item, i) => {
    const p: KeyPath = ['execution', 'steps', i];
    let step: DeliveryStep | null = null;
    if (typeof item === 'object' && item !== null && !Array.isArray(item)) {
      const s = c.section(p, item, KEYS.step);
      if (!s) return;
      if (s.servers === undefined || s.servers === null) {
        c.add([...p, 'servers'], 'is required: how many servers the update has reached at the end of this step (a number, or a percentage such as "25%")');
        return;
      }
      const size = stepSize(c, [...p, 'servers'], s.servers);
      const own = { bakeMs: c.duration([...p, 'bake'], s.bake, bakeMs, true), pauseAfter: c.bool([...p, 'pause_after'], s.pause_after, pauseAfter) };
      if (size) step = { size, ...own };
    } else {
      const size = stepSize(c, p, item);
      if (size) step = { size, bakeMs, pauseAfter };
    }
    if (!step) return;
    const n = 'count' in step.size ? step.size.count : step.size.percent;
    const kind = 'count' in step.size ? 'count' : 'percent';
    const before = last[kind];
    if (before !== undefined && n <= before) {
      c.add(p, `must be larger than the step before it (${kind === 'count' ? before : `${before}%`}): steps count the servers reached so far, not each step's own`);
      return;
    }
    last = { ...last, [kind]: n };
    out.push(step);
  });
  return out.length === v.length ? out : null;
}

/** A step's size: a whole number of servers (at least 1), or a percentage above 0 up to 100. */
function stepSize(c: Checker, p: KeyPath, v: unknown): DeliveryStep['size'] | null {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 1) return { count: v };
  if (typeof v === 'string') {
    const m = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(v);
    if (m && Number(m[1]) > 0 && Number(m[1]) <= 100) return { percent: Number(m[1]) };
    if (/^\s*\d+\s*$/.test(v) && Number(v) >= 1) return { count: Number(v.trim()) };
  }
  c.add(p, `must be a number of servers (1 or more) or a percentage of the update's servers ("25%", above 0 up to 100), got ${describe(v)}`);
  return null;
}

/** `execution.guard`: on by default; `false` turns it off; a mapping sets it. */
function guardOf(c: Checker, v: unknown, rollbackEnabled: boolean): GuardConfig | null {
  const p: KeyPath = ['execution', 'guard'];
  const dflt: GuardConfig = { intervalMs: DEFAULTS.guardIntervalMs, rollback: false, afterFinishMs: DEFAULTS.guardAfterFinishMs };
  if (v === false) return null;
  if (v === undefined || v === null || v === true) return dflt;
  const g = c.section(p, v, KEYS.guard);
  if (!g) return dflt;
  const guard: GuardConfig = {
    intervalMs: c.duration([...p, 'interval'], g.interval, dflt.intervalMs),
    rollback: c.bool([...p, 'rollback'], g.rollback, false),
    afterFinishMs: c.duration([...p, 'after_finish'], g.after_finish, dflt.afterFinishMs, true),
  };
  if (guard.rollback && !rollbackEnabled) c.add([...p, 'rollback'], 'needs rollback.enabled: true (there is no rollback to run)');
  return guard;
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

/**
 * `execution.window`: `days` (a list of day names or ranges, or one of them as a string; default
 * every day), `hours` (`HH:MM-HH:MM`; default the whole day), `timezone` (an IANA name; default
 * this machine's). Undefined when absent or wrong.
 */
function rolloutWindow(c: Checker, p: KeyPath, v: unknown): RolloutWindow | undefined {
  if (v === undefined || v === null) return undefined;
  const w = c.section(p, v, KEYS.window);
  if (!w) return undefined;
  let ok = true;
  const bad = (at: KeyPath, message: string) => {
    c.add(at, message);
    ok = false;
  };

  let days: Weekday[] = [...WEEKDAYS];
  if (w.days !== undefined && w.days !== null) {
    const entries = typeof w.days === 'string' ? [w.days] : Array.isArray(w.days) ? (w.days as unknown[]) : null;
    if (entries === null) bad([...p, 'days'], `must be a list of days ([mon, tue, wed, thu, fri]) or a range ("mon-fri"), got ${describe(w.days)}`);
    else if (entries.length === 0) bad([...p, 'days'], 'is empty: the window would never open; leave days out for every day');
    else {
      const on = new Set<Weekday>();
      entries.forEach((e, i) => {
        const at = typeof w.days === 'string' ? [...p, 'days'] : [...p, 'days', i];
        if (typeof e !== 'string') return bad(at, `must be a day (mon … sun) or a range of days (mon-fri), got ${describe(e)}`);
        const r = parseDayEntry(e);
        if ('error' in r) return bad(at, r.error);
        for (const d of r) on.add(d);
      });
      days = WEEKDAYS.filter((d) => on.has(d));
    }
  }

  let hours: string | null = null;
  if (w.hours !== undefined && w.hours !== null) {
    const s = c.string([...p, 'hours'], w.hours, 'a span of hours like "09:00-17:00"');
    if (s === undefined) ok = false;
    else {
      const h = parseHours(s);
      if ('error' in h) bad([...p, 'hours'], h.error);
      else hours = formatHours(h);
    }
  }

  let timezone = machineTimeZone();
  if (w.timezone !== undefined && w.timezone !== null) {
    const s = c.string([...p, 'timezone'], w.timezone, 'a time zone name like "Europe/Berlin"');
    if (s === undefined) ok = false;
    else {
      const tz = canonicalTimeZone(s);
      if (tz === null) {
        const near = didYouMean(s, timeZoneNames(), CONFIG_WORDS, String);
        bad([...p, 'timezone'], `${JSON.stringify(s)} is not a time zone${near || ': use an IANA name like "Europe/Berlin", "America/New_York" or "UTC"'}`);
      } else timezone = tz;
    }
  }
  return ok ? { days, hours, timezone } : undefined;
}
