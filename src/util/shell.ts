/**
 * Shell quoting and placeholder expansion for the commands run on servers (SPEC.md "Config":
 * placeholders `{repo}`, `{branch}`, `{commit}`, `{previous_commit}`, each value shell-quoted).
 *
 * Commands run through the remote user's login shell, which we assume is POSIX-compatible (sh,
 * bash, dash, zsh, ksh).
 */

export const PLACEHOLDERS = ['repo', 'branch', 'commit', 'previous_commit'] as const;
export type Placeholder = (typeof PLACEHOLDERS)[number];
export type PlaceholderValues = Partial<Record<Placeholder, string | null>>;

/**
 * A placeholder is `{name}` with name made of lower-case letters and `_`, not preceded by `$`
 * (so `${HOME}` and awk's `'{ print $1 }'` are left alone).
 */
const PLACEHOLDER_RE = /(?<!\$)\{([a-z_]+)\}/g;

/** Characters that need no quoting anywhere in a word in any POSIX shell (nor zsh). */
const SAFE_WORD = /^[A-Za-z0-9_@%+:,./-]+$/;

/**
 * Quote `s` as exactly one POSIX shell word. Words made only of harmless characters are returned
 * as they are (so logs stay readable: `git fetch https://example.com/agent master`); everything
 * else is wrapped in single quotes, with each `'` written as `'\''`. The empty string becomes
 * `''`. Throws on a NUL character, which no shell argument can carry.
 */
export function shellQuote(s: string): string {
  if (s.includes('\0')) throw new Error('cannot pass a NUL character in a shell argument');
  if (s === '') return "''";
  if (SAFE_WORD.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function isPlaceholder(name: string): name is Placeholder {
  return (PLACEHOLDERS as readonly string[]).includes(name);
}

function substitute(template: string, values: PlaceholderValues, quote: (s: string) => string): string {
  // one pass: a value that itself contains `{commit}` is never expanded again
  return template.replace(PLACEHOLDER_RE, (whole, name: string) => {
    if (!isPlaceholder(name)) return whole;
    const v = values[name];
    if (v === null || v === undefined) {
      throw new Error(`placeholder {${name}} has no value here`);
    }
    return quote(v);
  });
}

/**
 * Replace `{repo}`, `{branch}`, `{commit}` and `{previous_commit}` in a command with the
 * shell-quoted value. Other `{word}`s are left as they are (validation rejects them in config
 * commands). Throws an Error naming the placeholder when a used placeholder has no value.
 */
export function expandCommand(template: string, values: PlaceholderValues): string {
  return substitute(template, values, shellQuote);
}

/** Like expandCommand but without quoting: for text that is not a command (`agent.health.expect`). */
export function expandText(template: string, values: PlaceholderValues): string {
  return substitute(template, values, (s) => s);
}

/** Every placeholder-shaped `{name}` in a template, known or not, in order of appearance (unique). */
export function findPlaceholders(template: string): string[] {
  const out: string[] = [];
  for (const m of template.matchAll(PLACEHOLDER_RE)) {
    const name = m[1] as string;
    if (!out.includes(name)) out.push(name);
  }
  return out;
}

/** The placeholder-shaped names in a template that are not known placeholders. */
export function unknownPlaceholders(template: string): string[] {
  return findPlaceholders(template).filter((n) => !isPlaceholder(n));
}
