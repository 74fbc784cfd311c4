/**
 * A hook's `url:` is a template: `${NAME}` stands for the environment variable NAME of the
 * process that calls the hook, read at each call. A webhook's secret (Slack and Discord put it
 * in the path, others in the query or the userinfo) can so stay in the environment, out of the
 * config and of the plan database. The URL is never shown whole: messages, the journal and
 * `plan --show-commands` name it by its scheme and host alone (shownUrl).
 */

/** `${NAME}` in a url template. */
const VAR_RE = /\$\{([^}]*)\}/g;

/** The names of the `${…}` references of a template, as written (checked by the validator). */
export function urlVars(template: string): string[] {
  return [...template.matchAll(VAR_RE)].map((m) => m[1]!);
}

/** The template with each `${NAME}` replaced by its value in `env`; the first name not set when one is not. */
export function expandUrl(template: string, env: NodeJS.ProcessEnv): { url: string } | { missing: string } {
  for (const name of urlVars(template)) {
    const value = env[name];
    if (value === undefined || value === '') return { missing: name };
  }
  return { url: template.replace(VAR_RE, (_, name: string) => env[name]!) };
}

/**
 * A url (or a template) as it may be shown: its scheme and host (the port too), then `/…` when
 * there is more. The userinfo, path and query, where webhooks keep their secrets, are left out.
 */
export function shownUrl(url: string): string {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/)(?:[^@/?#]*@)?([^/?#]*)(.*)$/s.exec(url);
  if (!m) return '<url>';
  return `${m[1]}${m[2]}${m[3] !== '' && m[3] !== '/' ? '/…' : m[3]}`;
}
