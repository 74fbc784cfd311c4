/**
 * Counted nouns for messages: `plural(1, 'server')` → "1 server", `plural(3, 'server')` →
 * "3 servers"; irregular forms are passed in: `plural(2, 'batch', 'batches')`.
 */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** The noun alone, for "3 of 4 servers": `noun(4, 'server')` → "servers". */
export function noun(n: number, one: string, many = `${one}s`): string {
  return n === 1 ? one : many;
}

/** "it is paused", but "it has ended (success)" for an update that cannot change any more. */
export function itIs(status: string): string {
  return ['success', 'partial-success', 'failure', 'cancelled'].includes(status) ? `it has ended (${status})` : `it is ${status}`;
}
