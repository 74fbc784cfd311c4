/**
 * A node:test reporter that prints only what failed, with the error and its cause, once the run
 * is over. `npm test` runs it next to TAP (stdout) on stderr, so the end of a long CI log says
 * why a test failed, including a failed `before` hook (whose tests TAP only lists as cancelled).
 */

interface FailEvent {
  type: 'test:fail';
  data: { name: string; nesting: number; file?: string; details: { error?: unknown } };
}
interface OtherEvent {
  type: string;
  data?: unknown;
}

const MAX_LISTED = 40;

function describeError(err: unknown, depth = 0): string[] {
  if (depth > 3 || err === undefined || err === null) return [];
  if (!(err instanceof Error)) return [String(err)];
  const e = err as Error & { failureType?: string; code?: string };
  // ERR_TEST_FAILURE wraps the real error in `cause`; say that one, not the wrapper.
  if (e.code === 'ERR_TEST_FAILURE' && e.cause !== undefined && e.failureType !== 'cancelledByParent') {
    return [`(${e.failureType ?? 'failure'})`, ...describeError(e.cause, depth + 1)];
  }
  // the message, then the stack frames of our own code (not Node's internals), a few of them
  const lines = (e.stack ?? `${e.name}: ${e.message}`)
    .split('\n')
    .filter((line) => !/^\s+at .*\(?node:/.test(line))
    .slice(0, 8);
  if (e.cause !== undefined) lines.push('caused by:', ...describeError(e.cause, depth + 1));
  return lines;
}

export default async function* failuresReporter(source: AsyncIterable<FailEvent | OtherEvent>): AsyncGenerator<string> {
  const failures: FailEvent['data'][] = [];
  let cancelled = 0;
  for await (const event of source) {
    if (event.type !== 'test:fail') continue;
    const data = (event as FailEvent).data;
    const err = data.details.error as { failureType?: string } | undefined;
    if (err?.failureType === 'cancelledByParent') {
      cancelled++; // its parent's failure (listed) says why
      continue;
    }
    failures.push(data);
  }
  if (failures.length === 0 && cancelled === 0) return;
  yield `\n==== ${failures.length} failed` + (cancelled ? `, ${cancelled} cancelled because their suite failed` : '') + ' ====\n';
  for (const f of failures.slice(0, MAX_LISTED)) {
    yield `\n✖ ${f.name}${f.file ? `  (${f.file})` : ''}\n`;
    for (const line of describeError(f.details.error)) yield `    ${line}\n`;
  }
  if (failures.length > MAX_LISTED) yield `\n… and ${failures.length - MAX_LISTED} more (see the TAP output above)\n`;
}
