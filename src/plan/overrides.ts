/**
 * `--limit`, `--branch`, `--commit`, `--version` of `plan` and `auto` (`--limit` of `restart`
 * too), issue 25: the config as the command line changes it for one update. The result is a
 * Config like any other (its `source` replaced, `overrides` saying what was changed), so the rest
 * of planning (selectServers, resolveTarget, settingsOf, which records `overrides`) needs nothing
 * else.
 *
 * The source, as `kamal deploy --version` does for an image:
 * - `--commit C`: the target is C (7 to 40 hex; an abbreviation must be a commit on the branch),
 *   instead of source.commit or the branch tip;
 * - `--version V` (without --commit): the target is the commit of the tag `vV` (or `V`), and V
 *   is the target's version (source.version: what servers are classed against and the ceiling
 *   checks); with --commit, V is only that commit's version;
 * - `--branch B`: `{branch}` is B, and without --commit or --version the target is B's tip (the
 *   config's source.commit was a commit of its own branch, so it is not kept).
 * A config that states its target's version (source.version) must be told the version of an
 * overridden commit or branch (`--version`): its version bounds, stepping stones and ceiling
 * compare with it, and the config's version would be a wrong one.
 * Every value is checked as the config's is (exit 2, nothing written, nothing run remotely).
 */
import semver from 'semver';
import { branchNameProblems } from '../config/check-source.js';
import { checkLimit, parseLimit } from '../config/limit.js';
import { select } from '../config/select.js';
import type { Config, Overrides } from '../config/types.js';
import { UsageError } from '../errors.js';
import { parseVersion } from '../util/version.js';

/** The options as commander gives them (`--limit` may be repeated). */
export interface OverrideFlags {
  limit?: string[];
  branch?: string;
  commit?: string;
  version?: string;
}

/** Whether any of the options was given. */
export function anyOverride(flags: OverrideFlags): boolean {
  return (flags.limit?.length ?? 0) > 0 || flags.branch !== undefined || flags.commit !== undefined || flags.version !== undefined;
}

/** The options a command that takes none of them refuses by name (exit 2), e.g. `plan --refresh NAME`. */
export function refuseOverrides(flags: OverrideFlags, why: string): void {
  const given = [
    ...((flags.limit?.length ?? 0) > 0 ? ['--limit'] : []),
    ...(flags.branch !== undefined ? ['--branch'] : []),
    ...(flags.commit !== undefined ? ['--commit'] : []),
    ...(flags.version !== undefined ? ['--version'] : []),
  ];
  if (given.length > 0) throw new UsageError(`${given.join(', ')}: ${why}`);
}

/**
 * The shapes of --branch, --commit, --version (no I/O): the normalised commit (lower case) and
 * version (semver normal form, one leading v dropped). Throws a UsageError naming each bad one.
 */
export function checkSourceFlags(flags: OverrideFlags): { branch?: string; commit?: string; version?: string } {
  const problems: string[] = [];
  const out: { branch?: string; commit?: string; version?: string } = {};
  if (flags.branch !== undefined) {
    const why = branchNameProblems(flags.branch);
    if (why.length > 0) problems.push(`--branch ${JSON.stringify(flags.branch)} is not a valid branch name: it ${why.join('; it ')}`);
    else out.branch = flags.branch;
  }
  if (flags.commit !== undefined) {
    if (!/^[0-9a-fA-F]{7,40}$/.test(flags.commit)) problems.push(`--commit ${JSON.stringify(flags.commit)} is not a commit hash (7 to 40 hex digits)`);
    else out.commit = flags.commit.toLowerCase();
  }
  if (flags.version !== undefined) {
    const v = parseVersion(flags.version);
    if (v === null) problems.push(`--version ${JSON.stringify(flags.version)} is not a version (semver, e.g. 1.4.0 or v1.4.0)`);
    else out.version = v;
  }
  if (problems.length > 0) throw new UsageError(problems.join('; '));
  return out;
}

/**
 * The config with the options applied (see the module's comment), checked without I/O (the
 * shapes, the limit against the selected servers, the version against the config's bounds; an
 * `@FILE` of --limit is read). The commit of `--version`'s tag is read with the target, by
 * resolveTarget (plan/source.ts). Without any option: the config itself.
 */
export function withOverrides(config: Config, flags: OverrideFlags, opts: { cwd?: string } = {}): Config {
  if (!anyOverride(flags)) return config;
  const given = checkSourceFlags(flags);
  const overrides: Overrides = {};
  if ((flags.limit?.length ?? 0) > 0) {
    const patterns = parseLimit(flags.limit!, opts.cwd);
    const selected = select(config.servers, config).servers;
    if (selected.length === 0) throw new UsageError(`${config.file}: server_types, include and exclude select no server`);
    checkLimit(patterns, selected, config.servers);
    overrides.limit = { patterns: patterns.map((p) => p.text), selected: selected.length };
  }
  let source = config.source;
  if (given.branch !== undefined || given.commit !== undefined || given.version !== undefined) {
    overrides.source = {
      ...(flags.branch !== undefined ? { branch: flags.branch } : {}),
      ...(flags.commit !== undefined ? { commit: flags.commit } : {}),
      ...(flags.version !== undefined ? { version: flags.version } : {}),
    };
    if (config.source.version && given.version === undefined) {
      throw new UsageError(
        `${given.commit !== undefined ? '--commit' : '--branch'} replaces the target of ${config.file}, whose source.version (${config.source.version}) says what version its own target is: ` +
          `give the version of the new target with --version (the version bounds, stepping stones and source.max_compatible compare with it)`,
      );
    }
    const version = given.version ?? (given.branch !== undefined || given.commit !== undefined ? null : (config.source.version ?? null));
    if (given.version !== undefined) checkVersionBounds(config, given.version);
    source = {
      ...config.source,
      branch: given.branch ?? config.source.branch,
      // --branch alone: its tip (the config's commit belonged to its own branch); --version
      // alone: its tag's commit, read by resolveTarget
      commit: given.commit ?? (given.version !== undefined || given.branch !== undefined ? null : config.source.commit),
      version,
    };
  }
  return { ...config, source, overrides };
}

/** `--version V` against the config's other version keys, as source.version is checked (exit 2). */
function checkVersionBounds(config: Config, v: string): void {
  const { minCompatible, minVersion, steppingStones } = config.source;
  const problems: string[] = [];
  if (minCompatible && semver.gt(minCompatible, v)) {
    problems.push(`it is below source.min_compatible ${minCompatible}: servers updated to it would still be below it`);
  }
  if (minVersion && semver.gt(minVersion, v)) problems.push(`it is below source.min_version ${minVersion}: no server could upgrade directly to it`);
  const above = (steppingStones ?? []).filter((st) => !semver.lt(st.version, v));
  if (above.length > 0) problems.push(`the stepping stone${above.length > 1 ? 's' : ''} ${above.map((st) => st.version).join(', ')} of the config ${above.length > 1 ? 'are' : 'is'} not below it`);
  if (problems.length > 0) throw new UsageError(`--version ${v}: ${problems.join('; ')} (${config.file})`);
}
