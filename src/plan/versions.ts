/**
 * Agent versions (issue 14, items 1–3): reading a server's version, classing it against the
 * target, and the control plane's ceiling. Pure: no I/O.
 *
 * - A version is strict semver (`semver.valid`) after trimming and dropping ONE leading `v` or
 *   `V` (`v1.3.0` is 1.3.0); nothing else is coerced: `1.3`, `1.3.0.1`, `release-1.3.0` or two
 *   lines are not versions. What a server prints that is not a version makes it `excluded`,
 *   never a guess. Build metadata (`+b5`) is accepted and dropped, as semver compares without it.
 * - Classes (target = `source.version`): below `source.min_compatible` → `required`, else below
 *   the target → `recommended`, else `current` (at or above the target).
 * - The ceiling: a target above `source.max_compatible` is refused at plan time.
 * - Paths (pathFor): below `source.min_version` a server walks the stepping stones above its
 *   version, then the target; with none, or one it may not reach, it has no path.
 *
 * The probe reads the version in the same remote command as the commit (probeScript): the
 * version command, a marker line carrying its exit status (on stdout and on stderr), then the
 * semver command; splitProbe() cuts the output at the markers.
 */
import { randomBytes } from 'node:crypto';
import semver from 'semver';
import type { VersionBounds, VersionClass } from '../config/types.js';
import { UsageError } from '../errors.js';
import type { PathStop } from '../model/records.js';
import { parseVersion } from '../util/version.js';

/** What a server's semver_command printed, as a version or as the reason it is not one. */
export function readVersion(r: { code: number | null; stdout: string; stderr: string; error?: string | null }): { version: string } | { error: string } {
  if (r.code !== 0) {
    const why = r.code === null ? `failed: ${r.error ?? 'no exit status'}` : `exited ${r.code}: ${lastLine(r.stderr || r.stdout)}`;
    return { error: `version unreadable: semver_command ${why}` };
  }
  const out = r.stdout.trim();
  const v = parseVersion(out);
  if (v === null) {
    return { error: `version unreadable: semver_command printed ${JSON.stringify(out.slice(0, 80))}${out.length > 80 ? '…' : ''}, not a version (semver, e.g. 1.3.0)` };
  }
  return { version: v };
}

function lastLine(s: string): string {
  return JSON.stringify(s.trim().split('\n').pop()?.trim().slice(0, 80) ?? '');
}

/** The class of a server at `version`; null when there is no target version to class by. */
export function classOf(version: string, bounds: VersionBounds): VersionClass | null {
  if (!bounds.version) return null;
  if (bounds.minCompatible && semver.lt(version, bounds.minCompatible)) return 'required';
  if (semver.lt(version, bounds.version)) return 'recommended';
  return 'current';
}

/** Throws a UsageError (exit 2) when the target is above the control plane's ceiling. */
export function checkCeiling(file: string, bounds: VersionBounds): void {
  if (bounds.version && bounds.maxCompatible && semver.gt(bounds.version, bounds.maxCompatible)) {
    throw new UsageError(
      `${file}: the target's version ${bounds.version} (source.version) is above ${bounds.maxCompatible} (source.max_compatible), ` +
        `the newest agent the control plane supports: refused, nothing was planned or run`,
    );
  }
}

/** What pathFor decides for one server. */
export type PathVerdict =
  /** at or above source.min_version (or no bound): one hop, straight to the target */
  | { kind: 'direct' }
  /** the stepping stones it passes through, then the target, in order */
  | { kind: 'path'; hops: PathStop[] }
  /** below min_version with no way up: excluded, never touched */
  | { kind: 'none'; reason: string };

/**
 * The hops a server at `version` walks to the target (issue 14, item 4). At or above
 * `min_version` it upgrades directly. Below it, every stepping stone above its version is a
 * release it must pass through, in order (as "agents older than 1.3.0 go to 1.3.0 first"), and
 * then the target; a stone with its own `min_version` can only be reached from that version or
 * newer, so a server below it has no path. Stones are sorted and at least one is at or above
^ * min_version (config/check-source.ts checks both), so the last hop to the target is always allowed.
 */
export function pathFor(version: string, bounds: VersionBounds, target: string): PathVerdict {
  const { version: to, minVersion, steppingStones: stones = [] } = bounds;
  if (!to || !minVersion || !semver.lt(version, minVersion)) return { kind: 'direct' };
  const above = stones.filter((s) => semver.gt(s.version, version));
  const below = `agent ${version} is below source.min_version ${minVersion}, the oldest that upgrades directly to ${to}`;
  if (above.length === 0 || semver.lt(above.at(-1)!.version, minVersion)) {
    return { kind: 'none', reason: `${below}, and no stepping stone leads there from it: no path, never touched` };
  }
  let at = version;
  for (const s of above) {
    if (s.minVersion !== null && semver.lt(at, s.minVersion)) {
      return {
        kind: 'none',
        reason: `${below}, and ${at} is below ${s.minVersion}, the oldest that can upgrade to the stepping stone ${s.version}: no path, never touched`,
      };
    }
    at = s.version;
  }
  return { kind: 'path', hops: [...above.map((s) => ({ commit: s.commit, version: s.version })), { commit: target, version: to }] };
}

/** `1.0.0 → 1.1.0 → 1.3.0`: a path as an operator reads it. */
export function describePath(from: string | null, hops: readonly PathStop[]): string {
  return [from ?? '?', ...hops.map((h) => h.version ?? h.commit.slice(0, 12))].join(' → ');
}

/** `plan --only CLASS`: the class, checked (exit 2 when wrong). */
export function parseOnly(v: string | undefined): VersionClass | null {
  if (v === undefined) return null;
  if (v === 'required' || v === 'recommended') return v;
  throw new UsageError(`--only: ${JSON.stringify(v)} is not a class to plan; use --only required or --only recommended`);
}

export interface ProbeScript {
  /** what is sent, after the lock script */
  script: string;
  /** the marker line between the two commands' output */
  marker: string;
}

/**
 * The remote command that reads the commit and the version in one round trip. Each command runs
 * in a subshell of its own (an `exit` in one cannot skip the other), on lines of its own (a
 * trailing comment cannot swallow what follows). The marker carries a random word, so no output
 * of the agent can be taken for it, and starts on a new line when the output did not end with one.
 */
export function probeScript(versionCommand: string, semverCommand: string, nonce = randomBytes(6).toString('hex')): ProbeScript {
  const marker = `agent-update-semver-${nonce}`;
  const script = [
    '(',
    versionCommand,
    ')',
    `agent_update_vc=$?`,
    `printf '\\n%s %s\\n' '${marker}' "$agent_update_vc"`,
    `printf '\\n%s\\n' '${marker}' >&2`,
    '(',
    semverCommand,
    ')',
  ].join('\n');
  return { script, marker };
}

export interface ProbeParts {
  commit: { code: number | null; stdout: string; stderr: string; error: string | null };
  version: { code: number | null; stdout: string; stderr: string; error: string | null };
}

/**
 * Split what probeScript printed into the version command's result and the semver command's.
 * Without the marker (the connection was cut, or the lock script stopped it) the whole result is
 * the version command's and the version's is a failure.
 */
export function splitProbe(r: { code: number | null; stdout: string; stderr: string; error: string | null }, marker: string): ProbeParts {
  const out = cutAt(r.stdout, marker);
  const err = cutAt(r.stderr, marker);
  if (out === null) {
    return { commit: r, version: { code: null, stdout: '', stderr: '', error: r.error ?? 'the version command did not finish' } };
  }
  const code = /^\s*(\d+)/.exec(out.tail)?.[1];
  // the tail's first line is the version command's exit status; what follows is the semver command's
  const nl = out.tail.indexOf('\n');
  const versionOut = nl < 0 ? '' : out.tail.slice(nl + 1);
  return {
    commit: { code: code === undefined ? null : Number(code), stdout: out.head, stderr: err?.head ?? r.stderr, error: code === undefined ? 'no exit status' : null },
    version: { code: r.code, stdout: versionOut, stderr: err?.tail.replace(/^\n/, '') ?? '', error: r.error },
  };
}

/** `s` cut at the line `marker…` (the newline put before it dropped), or null when it has none. */
function cutAt(s: string, marker: string): { head: string; tail: string } | null {
  const at = s.indexOf(`\n${marker}`);
  if (at < 0) return null;
  const head = s.slice(0, at);
  const rest = s.slice(at + 1 + marker.length);
  return { head, tail: rest.replace(/^ /, '') };
}
