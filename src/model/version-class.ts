/**
 * How many servers are in each class of agent version against the target (plan/versions.ts
 * classes them), as `status` shows them. Apart from plan/versions.ts so that reading a plan does not
 * load semver (a few milliseconds of every `status`).
 */
import type { VersionClass } from '../config/types.js';

/** Counts per class (every class present, 0 when none). */
export function classCounts(servers: ReadonlyArray<{ versionClass?: VersionClass | null }>): Record<VersionClass, number> {
  const out: Record<VersionClass, number> = { required: 0, recommended: 0, current: 0 };
  for (const s of servers) if (s.versionClass != null) out[s.versionClass] += 1;
  return out;
}
