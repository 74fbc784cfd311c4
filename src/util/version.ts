/**
 * An agent version as the config and the servers write it: strict semver, one leading `v`
 * allowed; the config checker and the plan's probe read versions with it.
 */
import semver from 'semver';

/** The version in `text` (normal form), or null when it is not one. */
export function parseVersion(text: string): string | null {
  let t = text.trim();
  if (t.startsWith('v') || t.startsWith('V')) t = t.slice(1);
  // semver.valid would also take a leading '=' or inner spaces: only a digit may start it
  if (!/^[0-9]/.test(t) || /\s/.test(t)) return null;
  return semver.valid(t);
}
