/**
 * The command lines agent-update suggests ("continue with: agent-update resume NAME"). They must
 * work when pasted, so they carry the `--db` the invocation used: the CLI sets the prefix once,
 * and every message (the engine's, the store's, the state table's) builds its suggestions here.
 */
let prefix = 'agent-update';

/** Set by the CLI from its global options, e.g. `agent-update --db /srv/plans.db`. */
export function setSuggestPrefix(p: string): void {
  prefix = p;
}

/** `agent-update [--db X] <rest>` */
export function suggest(rest: string): string {
  return `${prefix} ${rest}`;
}
