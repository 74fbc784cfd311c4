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
