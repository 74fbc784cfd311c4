/**
 * Rollout windows (`execution.window`, issue 24): when new servers may be started. Pure: the
 * time-zone arithmetic is Intl.DateTimeFormat's (the tz database Node ships), nothing is read or
 * written. The validator (check-rollout.ts) reads a config's window with the parsers here; the
 * engine (rollout/run.ts), `auto` and `plan` ask `windowState`.
 *
 * A window is a set of intervals of real time: for each day D of `days` (a date in `timezone`),
 * from the first instant that day whose wall clock shows the start of `hours` to the first
 * instant whose wall clock shows its end (the same day, or the next one when the hours wrap past
 * midnight: the days name the day the window opens). So across a change of the clocks:
 *
 * - a start or end the clocks skip (02:30 when 02:00 becomes 03:00) is the instant after the
 *   jump (03:00); a window wholly inside the skipped hour does not open that day;
 * - a start or end the clocks show twice (02:30 when 03:00 becomes 02:00) is the first of the
 *   two, so a window over that hour is an hour longer that night, never cut in two.
 */
import type { RolloutWindow, Weekday } from './types.js';

/** The days of the week in the order a window names them, Monday first. */
export const WEEKDAYS: readonly Weekday[] = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
const FULL_NAMES = ['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday'];

/** What a pause for the window writes first in its reason (and `auto` looks for: isWindowPause). */
export const WINDOW_PAUSE_PREFIX = 'outside the rollout window';

const MINUTE = 60_000;
const DAY = 86_400_000;

/** `mon`, `Mon`, `monday`, `MONDAY` → `mon`; anything else → null. */
export function parseDay(s: string): Weekday | null {
  const w = s.trim().toLowerCase();
  const i = WEEKDAYS.indexOf(w as Weekday);
  if (i >= 0) return WEEKDAYS[i]!;
  const j = FULL_NAMES.indexOf(w);
  return j >= 0 ? WEEKDAYS[j]! : null;
}

/**
 * One entry of `days`: a day (`mon`, `monday`) or a range of days in week order (`mon-fri`,
 * `fri-mon` wraps over the weekend) → its days, or an error in words.
 */
export function parseDayEntry(s: string): Weekday[] | { error: string } {
  const parts = s.split('-');
  if (parts.length === 1) {
    const d = parseDay(s);
    return d ? [d] : { error: `${JSON.stringify(s)} is not a day: use mon, tue, wed, thu, fri, sat, sun (or the full English name), or a range like mon-fri` };
  }
  const [a, b] = parts.length === 2 ? [parseDay(parts[0]!), parseDay(parts[1]!)] : [null, null];
  if (!a || !b) return { error: `${JSON.stringify(s)} is not a range of days: write it as FIRST-LAST, like mon-fri` };
  const out: Weekday[] = [];
  for (let i = WEEKDAYS.indexOf(a); ; i = (i + 1) % 7) {
    out.push(WEEKDAYS[i]!);
    if (WEEKDAYS[i] === b) break;
  }
  return out;
}

/** `hours` read: minutes after midnight; `end` may be 1440 (`24:00`), and below `start` when it wraps past midnight. */
export interface Hours {
  start: number;
  end: number;
}

const HOURS_RE = /^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$/;

/** `09:00-17:00`, `22:00-06:00` (wraps past midnight), `18:00-24:00` → Hours, or an error in words. */
export function parseHours(s: string): Hours | { error: string } {
  const m = HOURS_RE.exec(s);
  const form = 'write it as HH:MM-HH:MM in the 24-hour clock, like "09:00-17:00" ("22:00-06:00" wraps past midnight)';
  if (!m) return { error: `${JSON.stringify(s)} is not a span of hours: ${form}` };
  const [h1, m1, h2, m2] = [m[1], m[2], m[3], m[4]].map(Number) as [number, number, number, number];
  if (h1 > 23 || m1 > 59) return { error: `${JSON.stringify(s)}: the start ${m[1]}:${m[2]} is not a time of day (00:00 to 23:59)` };
  if ((h2 > 23 || m2 > 59) && !(h2 === 24 && m2 === 0)) return { error: `${JSON.stringify(s)}: the end ${m[3]}:${m[4]} is not a time of day (00:00 to 24:00)` };
  const start = h1 * 60 + m1;
  const end = h2 * 60 + m2;
  if (start === 0 && end === 1440) return { error: `${JSON.stringify(s)} is the whole day: leave hours out` };
  if (start === end) return { error: `${JSON.stringify(s)} starts where it ends; for the whole day leave hours out` };
  return { start, end };
}

function hhmm(minutes: number): string {
  return `${String(Math.floor(minutes / 60)).padStart(2, '0')}:${String(minutes % 60).padStart(2, '0')}`;
}

/** Hours in their one written form, `09:00-17:00`. */
export function formatHours(h: Hours): string {
  return `${hhmm(h.start)}-${hhmm(h.end)}`;
}

/** The machine's time zone (TZ, else the system's), as Intl names it. */
export function machineTimeZone(): string {
  return new Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}

/**
 * A time zone name Intl knows, as written (`Asia/Kolkata`, which Intl calls `Asia/Calcutta`) or,
 * when only its case differs from Intl's name, as Intl writes it (`europe/berlin` →
 * `Europe/Berlin`); null when Intl does not know it. Offsets (`+01:00`) are refused: a window
 * follows a place's clocks.
 */
export function canonicalTimeZone(name: string): string | null {
  const n = name.trim();
  if (!/^[A-Za-z]/.test(n)) return null;
  try {
    const resolved = new Intl.DateTimeFormat('en-US', { timeZone: n }).resolvedOptions().timeZone;
    return resolved.toLowerCase() === n.toLowerCase() ? resolved : n;
  } catch {
    return null;
  }
}

/** Every time zone name Intl knows (for "did you mean"). */
export function timeZoneNames(): string[] {
  return ['UTC', ...Intl.supportedValuesOf('timeZone')];
}

// --- time-zone arithmetic ---

const formats = new Map<string, Intl.DateTimeFormat>();

function formatOf(tz: string): Intl.DateTimeFormat {
  let f = formats.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formats.set(tz, f);
  }
  return f;
}

/** What the wall clock of `tz` shows at instant `t`, as if it were UTC (ms; whole seconds). */
function wallAt(t: number, tz: string): number {
  const p: Record<string, number> = {};
  for (const part of formatOf(tz).formatToParts(new Date(t))) if (part.type !== 'literal') p[part.type] = Number(part.value);
  return Date.UTC(p.year!, p.month! - 1, p.day!, p.hour === 24 ? 0 : p.hour!, p.minute!, p.second!);
}

/** The offset of `tz` from UTC at instant `t` (ms). */
function offsetAt(t: number, tz: string): number {
  const s = Math.floor(t / 1000) * 1000;
  return wallAt(s, tz) - s;
}

/**
 * The first instant at which the wall clock of `tz` shows `wall` (a local time written as if it
 * were UTC) or later: the first of two when the clocks show it twice, the end of the jump when
 * they skip it.
 */
function instantOf(wall: number, tz: string): number {
  const before = offsetAt(wall - DAY, tz);
  const after = offsetAt(wall + DAY, tz);
  // no change of the clocks within a day of it (nearly always): one answer
  if (before === after && offsetAt(wall - before, tz) === before) return wall - before;
  let best: number | null = null;
  for (const o of new Set([before, after, offsetAt(wall, tz)])) {
    const t = wall - o;
    if (offsetAt(t, tz) === o && (best === null || t < best)) best = t;
  }
  if (best !== null) return best;
  // skipped by a jump forward: the first second whose wall clock is at `wall` or past it
  let lo = Math.floor((wall - Math.max(before, after)) / 1000);
  let hi = Math.ceil((wall - Math.min(before, after)) / 1000);
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (wallAt(mid * 1000, tz) >= wall) hi = mid;
    else lo = mid;
  }
  return hi * 1000;
}

/** Today's date in `tz` at instant `t`, as UTC midnight of that date (ms). */
function dateAt(t: number, tz: string): number {
  const w = wallAt(t, tz);
  return w - (((w % DAY) + DAY) % DAY);
}

/** `mon`…`sun` of a date given as UTC midnight. */
function weekdayOf(date: number): Weekday {
  return WEEKDAYS[(new Date(date).getUTCDay() + 6) % 7]!;
}

/** A window as the function takes it: the config's, each key optional (every day, the whole day, the machine's zone). */
export type WindowSpec = Partial<RolloutWindow>;

/** Open now (until `closesAt`; null: it never closes), or closed (until `opensAt`). */
export type WindowState = { open: true; closesAt: Date | null } | { open: false; opensAt: Date };

/** The window's intervals [start, end) in real time (ms), from the one opened on the day before `now`'s date in its zone on, empty ones left out. */
function* intervals(now: number, w: WindowSpec): Generator<[number, number]> {
  const tz = w.timezone ?? machineTimeZone();
  const days = new Set(w.days ?? WEEKDAYS);
  const hours = w.hours ? parseHours(w.hours) : null;
  if (hours && 'error' in hours) throw new Error(`execution.window.hours: ${hours.error}`);
  const { start, end } = hours ?? { start: 0, end: 1440 };
  const today = dateAt(now, tz);
  // a week and a day past today holds the next opening of any window with a day
  for (let k = -1; k <= 8; k++) {
    const date = today + k * DAY;
    if (!days.has(weekdayOf(date))) continue;
    const a = instantOf(date + start * MINUTE, tz);
    const b = instantOf(date + (end > start ? 0 : DAY) + end * MINUTE, tz);
    if (b > a) yield [a, b];
  }
}

/**
 * Whether window `w` is open at `now`: open, and when it closes (the end of the interval it is
 * in, or of the intervals that follow on without a gap; null when it never closes), or closed,
 * and when it next opens. A window with no day never opens: the validator refuses one.
 */
export function windowState(now: Date, w: WindowSpec): WindowState {
  const t = now.getTime();
  let end: number | null = null;
  for (const [a, b] of intervals(t, w)) {
    if (end !== null) {
      if (a > end) return { open: true, closesAt: new Date(end) };
      end = Math.max(end, b);
    } else if (a <= t && t < b) end = b;
    else if (a > t) return { open: false, opensAt: new Date(a) };
  }
  if (end !== null) return { open: true, closesAt: null };
  throw new Error('execution.window has no day: it never opens');
}

/** `mon-fri`, `sat, sun`, `mon, wed, fri`, `every day`. */
export function describeDays(days: readonly Weekday[]): string {
  const on = WEEKDAYS.map((d) => days.includes(d));
  if (on.every(Boolean)) return 'every day';
  const parts: string[] = [];
  for (let i = 0; i < 7; i++) {
    if (!on[i]) continue;
    let j = i;
    while (j + 1 < 7 && on[j + 1]) j++;
    if (j - i >= 2) parts.push(`${WEEKDAYS[i]}-${WEEKDAYS[j]}`);
    else for (let k = i; k <= j; k++) parts.push(WEEKDAYS[k]!);
    i = j;
  }
  return parts.join(', ');
}

/** `mon-fri 09:00-17:00 Europe/Berlin`, `every day 22:00-06:00 UTC`, `sat, sun all day Europe/Berlin`. */
export function describeWindow(w: WindowSpec): string {
  return `${describeDays(w.days ?? WEEKDAYS)} ${w.hours ?? 'all day'} ${w.timezone ?? machineTimeZone()}`;
}

/** `Mon 2025-01-06 09:00 Europe/Berlin`: an instant as the clocks of `tz` show it. */
export function formatInZone(d: Date, tz: string): string {
  const wall = wallAt(d.getTime(), tz);
  const date = new Date(wall).toISOString();
  const day = weekdayOf(wall - (((wall % DAY) + DAY) % DAY));
  return `${day[0]!.toUpperCase()}${day.slice(1)} ${date.slice(0, 10)} ${date.slice(11, 16)} ${tz}`;
}

/**
 * When the window opens, in its own zone and, when that is another, in `local` (this machine's):
 * `Mon 2025-01-06 09:00 Europe/Berlin (local time: Mon 2025-01-06 03:00 America/New_York)`.
 */
export function describeOpening(opensAt: Date, w: WindowSpec, local: string = machineTimeZone()): string {
  const tz = w.timezone ?? machineTimeZone();
  const there = formatInZone(opensAt, tz);
  return local === tz ? there : `${there} (local time: ${formatInZone(opensAt, local)})`;
}

/** The reason an update pauses with outside its window (starts with WINDOW_PAUSE_PREFIX). */
export function windowPauseReason(w: WindowSpec, opensAt: Date, local?: string): string {
  return `${WINDOW_PAUSE_PREFIX} (${describeWindow(w)}): it opens ${describeOpening(opensAt, w, local)}`;
}

/** Whether an update's pause reason is a pause for its window (`auto` resumes those it started, once the window is open). */
export function isWindowPause(reason: string | null | undefined): boolean {
  return reason?.startsWith(WINDOW_PAUSE_PREFIX) ?? false;
}
