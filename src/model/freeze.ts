/**
 * Deploy freezes (`freeze -c FILE --reason TEXT`, `unfreeze -c FILE`; issue 25): the rules, pure.
 *
 * A freeze is of a source repo, in one plan store: every update whose `source.repo` is that repo
 * (planned from any config, retries and undos included) is refused by `start`, `resume` and `auto`
 * (exit 3) while it lasts, and a rollout already running pauses before its next server. The repo
 * is compared by `repoKey`, so the forms of one URL a team writes (`https://host/org/agent.git`,
 * `git@host:org/agent`, `ssh://git@host:22/org/agent/`) are one freeze.
 */
import type { FreezeRecord } from './records.js';

/** What a pause for a freeze writes first in its reason (and `auto` looks for: isFreezePause). */
export const FREEZE_PAUSE_PREFIX = 'deploys are frozen';

/**
 * The key a freeze matches updates by: the repo with its scheme, user, password and port left
 * out, the host in lower case, and a trailing `/` and `.git` dropped (`github.com/org/agent`). A
 * local path (or `file://` URL) is the path, without a trailing `/` or `.git`.
 */
export function repoKey(repo: string): string {
  const r = repo.trim();
  const tidy = (p: string) => {
    let s = p.replace(/\/+$/, '');
    if (s.endsWith('.git')) s = s.slice(0, -4);
    return s.replace(/\/+$/, '');
  };
  const url = /^([a-z][a-z0-9+.-]*):\/\/([^/]*)(\/.*)?$/i.exec(r);
  if (url) {
    const scheme = url[1]!.toLowerCase();
    const path = url[3] ?? '';
    if (scheme === 'file') return tidy(path) || '/';
    // authority: [user[:password]@]host[:port], host possibly [v6]
    const authority = url[2]!.replace(/^.*@/, '');
    const host = authority.startsWith('[') ? authority.replace(/\](:\d*)?$/, ']') : authority.replace(/:\d*$/, '');
    return `${host.toLowerCase()}/${tidy(path.replace(/^\/+/, ''))}`;
  }
  // scp-like: [user@]host:path (a colon before any slash; not a Windows drive)
  const scp = /^(?:[^@/]+@)?([^:/]+):(?!\/\/)(.*)$/.exec(r);
  if (scp && scp[1]!.length > 1) return `${scp[1]!.toLowerCase()}/${tidy(scp[2]!.replace(/^\/+/, ''))}`;
  return tidy(r) || r;
}

/** `alice@laptop at 2026-03-01T10:00:00.000Z: incident 42`: who froze, when and why. */
export function describeFreeze(f: Pick<FreezeRecord, 'frozenBy' | 'frozenAt' | 'reason'>): string {
  return `by ${f.frozenBy} at ${f.frozenAt}: ${f.reason}`;
}

/** The reason an update pauses with when a freeze of its repo is found before its next server. */
export function freezePauseReason(f: Pick<FreezeRecord, 'repo' | 'frozenBy' | 'frozenAt' | 'reason'>): string {
  return `${FREEZE_PAUSE_PREFIX} (${f.repo}) ${describeFreeze(f)}`;
}

/** Whether an update's pause reason is a pause for a freeze (`auto` resumes those once the freeze is lifted). */
export function isFreezePause(reason: string | null | undefined): boolean {
  return reason?.startsWith(FREEZE_PAUSE_PREFIX) ?? false;
}

/**
 * A deploy freeze (`freeze`, `unfreeze`, `status`, `history --json`): the repo as the config that
 * froze it wrote it and the key updates are matched by, who froze it, when and why, and who lifted
 * it and when (null while it is in force).
 */
export interface FreezeJson {
  repo: string;
  repoKey: string;
  configFile: string | null;
  reason: string;
  frozenBy: string;
  frozenAt: string;
  unfrozenBy: string | null;
  unfrozenAt: string | null;
}

export function freezeJson(f: FreezeRecord): FreezeJson {
  return {
    repo: f.repo,
    repoKey: f.repoKey,
    configFile: f.configFile,
    reason: f.reason,
    frozenBy: f.frozenBy,
    frozenAt: f.frozenAt,
    unfrozenBy: f.unfrozenBy,
    unfrozenAt: f.unfrozenAt,
  };
}
