/**
 * The name rules, one definition each: what may name an update (the config's `name:`, `--name`
 * of plan, retry and undo), a server (`servers[].name`, an inventory's hosts), a restart (the
 * keys of `agent.restart`) and an environment variable (`ssh.passphrase_env`, `${VAR}` in an
 * ssh config). Each caller words its own message.
 */

/** Letters, digits, '.', '_' and '-', starting with a letter or digit. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** An update: a name (NAME) of at most 100 characters. */
export function isUpdateName(s: string): boolean {
  return s.length <= 100 && NAME.test(s);
}

/** A server: a name (NAME) of any length. */
export function isServerName(s: string): boolean {
  return NAME.test(s);
}

/** A restart, a key of `agent.restart`: a name (NAME) of any length. */
export function isRestartName(s: string): boolean {
  return NAME.test(s);
}

/** An environment variable: letters, digits and '_', not starting with a digit. */
export function isEnvVarName(s: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(s);
}

/**
 * The update name a plan takes when none is given: `<branch>-<YYYY-MM-DD>`, the characters of
 * the branch a name may not have made '-' and those before its first letter or digit dropped.
 */
export function datedName(branch: string, now: Date): string {
  return `${branch.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '')}-${now.toISOString().slice(0, 10)}`;
}

/** `base`, else `base-2`, `base-3`…: the first that is not `taken` (asked of the store). */
export async function freeName(base: string, taken: (name: string) => Promise<boolean>): Promise<string> {
  if (!(await taken(base))) return base;
  for (let i = 2; ; i++) if (!(await taken(`${base}-${i}`))) return `${base}-${i}`;
}
