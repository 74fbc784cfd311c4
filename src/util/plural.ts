/** `1 server`, `2 servers`, `0 servers` (`many` for words that do not just take an s). */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}
