/**
 * Durations in the config (SPEC.md "Config"): `500ms`, `30s`, `10m`, `1h`, combinations in
 * descending order such as `1h30m` or `1m30s` (what formatDuration prints), or a bare number of
 * seconds (a YAML number or a numeric string, may be fractional). Values are milliseconds,
 * rounded to the nearest integer.
 */

/** Largest duration we accept: the longest delay Node's timers can wait (2^31-1 ms, ~24.8 days). */
export const MAX_DURATION_MS = 2_147_483_647;

export type DurationResult = { ok: true; ms: number } | { ok: false; error: string };

const UNIT_MS = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1 } as const;
type Unit = keyof typeof UNIT_MS;
const UNIT_ORDER: Unit[] = ['h', 'm', 's', 'ms'];

const NUMBER = /^\d+(?:\.\d+)?$/;
const PART = /(\d+(?:\.\d+)?)(ms|h|m|s)/y;

const HINT = 'expected a duration such as 500ms, 30s, 10m, 1h, 1m30s or a number of seconds';

function describe(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

function finish(ms: number, shown: string): DurationResult {
  if (!Number.isFinite(ms)) return { ok: false, error: `${shown} is not a finite duration` };
  const rounded = Math.round(ms);
  if (rounded > MAX_DURATION_MS) {
    return { ok: false, error: `${shown} is too long: at most ${formatDuration(MAX_DURATION_MS)}` };
  }
  return { ok: true, ms: rounded };
}

/** Parse a config duration; never throws. */
export function parseDuration(v: unknown): DurationResult {
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) return { ok: false, error: `${describe(v)} is not a finite number of seconds` };
    if (v < 0) return { ok: false, error: `${v} is negative; ${HINT}` };
    return finish(v * 1000, String(v));
  }
  if (typeof v !== 'string') return { ok: false, error: `got ${describe(v)}; ${HINT}` };
  const s = v.trim();
  if (s === '') return { ok: false, error: `got an empty string; ${HINT}` };
  if (NUMBER.test(s)) return finish(Number(s) * 1000, JSON.stringify(v));
  let ms = 0;
  let pos = 0;
  let lastUnit = -1;
  while (pos < s.length) {
    PART.lastIndex = pos;
    const m = PART.exec(s);
    if (!m) return { ok: false, error: `${JSON.stringify(v)} is not a duration; ${HINT}` };
    const unit = m[2] as Unit;
    const idx = UNIT_ORDER.indexOf(unit);
    if (idx <= lastUnit) {
      return { ok: false, error: `${JSON.stringify(v)} is not a duration: units must go from largest to smallest, each once (e.g. 1h30m)` };
    }
    lastUnit = idx;
    ms += Number(m[1]) * UNIT_MS[unit];
    pos = PART.lastIndex;
  }
  return finish(ms, JSON.stringify(v));
}

/** Parse a duration or throw an Error with the reason. */
export function durationMs(v: unknown): number {
  const r = parseDuration(v);
  if (!r.ok) throw new Error(r.error);
  return r.ms;
}

/**
 * Human form for messages: `500ms`, `2.5s`, `1m30s`, `1h`, `1h0m5s`-style gaps are dropped
 * (`1h5s`). Sub-second remainders above one second are shown as a decimal of the seconds part.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  const sign = ms < 0 ? '-' : '';
  let rest = Math.round(Math.abs(ms));
  if (rest < 1000) return `${sign}${rest}ms`;
  const h = Math.floor(rest / 3_600_000);
  rest -= h * 3_600_000;
  const m = Math.floor(rest / 60_000);
  rest -= m * 60_000;
  let out = sign;
  if (h) out += `${h}h`;
  if (m) out += `${m}m`;
  if (rest) {
    // up to millisecond precision, without trailing zeros: 1500 -> 1.5s, 1050 -> 1.05s
    const secs = (rest / 1000).toFixed(3).replace(/\.?0+$/, '');
    out += `${secs}s`;
  }
  return out;
}
