/**
 * A node:test reporter that prints, once the run is over, how long each test file took: the sum
 * of its top-level tests' durations (a file runs its tests one after the other), slowest first,
 * and the slowest tests. For finding where the suite's time goes:
 *
 *     npm run build && node --test --test-concurrency=2 \
 *       --test-reporter=./dist/test/support/durations-reporter.js dist/test/\*\/\*.test.js
 */

interface TestEvent {
  type: string;
  data?: { name?: string; nesting?: number; file?: string; details?: { duration_ms?: number } };
}

export default async function* durationsReporter(source: AsyncIterable<TestEvent>): AsyncGenerator<string> {
  const files = new Map<string, { ms: number; tests: number }>();
  const tests: Array<{ name: string; file: string; ms: number }> = [];
  const began = Date.now();
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const d = event.data;
    if (d?.nesting !== 0 || d.file === undefined) continue;
    const ms = d.details?.duration_ms ?? 0;
    const file = d.file.replace(/^.*\/dist\//, 'dist/');
    const entry = files.get(file) ?? { ms: 0, tests: 0 };
    entry.ms += ms;
    entry.tests += 1;
    files.set(file, entry);
    tests.push({ name: d.name ?? '?', file, ms });
  }
  const s = (ms: number) => `${(ms / 1000).toFixed(1).padStart(6)} s`;
  yield `\nper file (sum of its top-level tests), wall ${s(Date.now() - began)} in all:\n`;
  for (const [file, e] of [...files].sort((a, b) => b[1].ms - a[1].ms)) {
    yield `${s(e.ms)}  ${String(e.tests).padStart(3)} tests  ${file}\n`;
  }
  yield '\nslowest tests:\n';
  for (const t of tests.sort((a, b) => b.ms - a.ms).slice(0, 15)) yield `${s(t.ms)}  ${t.file}: ${t.name}\n`;
}
