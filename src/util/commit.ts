/**
 * A full commit id as git prints it: 40 lower-case hex digits. What the plan stores as the
 * target and rollback commits, what `version_command` must print, what git's own output lines
 * are checked for. (An abbreviated commit in a config, 7 to 40 hex in either case, is the
 * config's own rule: Checker.commit.)
 */
export function isFullCommit(s: string | undefined): boolean {
  return s !== undefined && /^[0-9a-f]{40}$/.test(s);
}
