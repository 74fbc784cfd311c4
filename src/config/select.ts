/**
 * Which servers an update covers: `server_types` (a server is in when any of its types is
 * listed), then `include` (kept when its name matches any include pattern), then `exclude`
 * (dropped when its name matches any exclude pattern). Patterns are globs on server names,
 * matched by picomatch: `*`, `?`, `[0-9]`, `{web,app}*`, `!(db*)`; case-sensitive.
 */
import picomatch from 'picomatch';
import type { ServerSpec } from './types.js';

export interface Selection {
  serverTypes: string[] | null;
  include: string[] | null;
  exclude: string[] | null;
}

/** A matcher for one pattern. */
export function globMatcher(pattern: string): (name: string) => boolean {
  return picomatch(pattern, { dot: true });
}

/** The reason a pattern cannot be used, or null. */
export function patternProblem(pattern: string): string | null {
  if (pattern.trim() === '') return 'must not be empty';
  // Ansible's ranges are not globs: in a glob [01:03] is one character out of 0, 1, : and 3
  const range = /\[[A-Za-z0-9]+:[A-Za-z0-9]+(?::\d+)?\]/.exec(pattern);
  if (range) {
    return (
      `${JSON.stringify(pattern)}: ${range[0]} is an inventory range, not a glob (in a glob it is one character of ${range[0]}); ` +
      'use a character class such as web0[1-3] or a brace list such as web{01,02,03}'
    );
  }
  try {
    picomatch.makeRe(pattern);
  } catch (e) {
    return `${JSON.stringify(pattern)} is not a valid glob: ${(e as Error).message}`;
  }
  return null;
}

/** The servers `server_types` covers, in config order. */
export function byTypes(servers: readonly ServerSpec[], types: readonly string[] | null): ServerSpec[] {
  return types ? servers.filter((s) => s.types.some((t) => types.includes(t))) : [...servers];
}

export interface SelectResult {
  servers: ServerSpec[];
  /** after server_types, before include/exclude */
  ofTypes: ServerSpec[];
  /** the include patterns (their indexes) that match none of `ofTypes` */
  unmatchedInclude: number[];
}

export function select(servers: readonly ServerSpec[], sel: Selection): SelectResult {
  const ofTypes = byTypes(servers, sel.serverTypes);
  let out = ofTypes;
  const unmatchedInclude: number[] = [];
  if (sel.include) {
    const matchers = sel.include.map(globMatcher);
    matchers.forEach((m, i) => {
      if (!ofTypes.some((s) => m(s.name))) unmatchedInclude.push(i);
    });
    out = out.filter((s) => matchers.some((m) => m(s.name)));
  }
  if (sel.exclude) {
    const matchers = sel.exclude.map(globMatcher);
    out = out.filter((s) => !matchers.some((m) => m(s.name)));
  }
  return { servers: out, ofTypes, unmatchedInclude };
}
