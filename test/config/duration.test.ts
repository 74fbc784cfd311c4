import { test } from 'node:test';
import assert from 'node:assert/strict';
import { durationMs, formatDuration, MAX_DURATION_MS, parseDuration } from '../../src/util/duration.js';

test('parseDuration accepts units, combinations and bare seconds', () => {
  const cases: [unknown, number][] = [
    ['500ms', 500],
    ['30s', 30_000],
    ['10m', 600_000],
    ['1h', 3_600_000],
    ['1m30s', 90_000],
    ['1h30m', 5_400_000],
    ['2.5s', 2_500],
    ['0.5h', 1_800_000],
    [' 15s ', 15_000],
    ['0s', 0],
    [30, 30_000],
    [1.5, 1_500],
    [0, 0],
    ['45', 45_000],
    ['0.25', 250],
    ['1.0005', 1_001],
  ];
  for (const [input, ms] of cases) {
    const r = parseDuration(input);
    assert.deepEqual(r, { ok: true, ms }, `parseDuration(${JSON.stringify(input)})`);
  }
});

test('parseDuration rejects everything else with a reason', () => {
  const cases: [unknown, RegExp][] = [
    ['', /empty/],
    ['abc', /not a duration/],
    ['10 minutes', /not a duration/],
    ['10x', /not a duration/],
    ['-5s', /not a duration/],
    ['1.s', /not a duration/],
    ['s', /not a duration/],
    ['30s10m', /largest to smallest/],
    ['1s1s', /largest to smallest/],
    [-1, /negative/],
    [Number.NaN, /finite/],
    [Number.POSITIVE_INFINITY, /finite/],
    [null, /got nothing/],
    [undefined, /got nothing/],
    [true, /got true/],
    [[1], /got a list/],
    [{ s: 1 }, /got a mapping/],
    ['1000h', /too long/],
    [3e9, /too long/],
  ];
  for (const [input, re] of cases) {
    const r = parseDuration(input);
    assert.equal(r.ok, false, `parseDuration(${String(input)}) should fail`);
    if (!r.ok) assert.match(r.error, re, `parseDuration(${String(input)})`);
  }
});

test('durationMs throws on bad input and returns ms on good', () => {
  assert.equal(durationMs('2s'), 2000);
  assert.throws(() => durationMs('2 s'), /not a duration/);
  assert.equal(durationMs(MAX_DURATION_MS / 1000), MAX_DURATION_MS);
});

test('formatDuration', () => {
  const cases: [number, string][] = [
    [0, '0ms'],
    [500, '500ms'],
    [999, '999ms'],
    [1000, '1s'],
    [2500, '2.5s'],
    [1050, '1.05s'],
    [60_000, '1m'],
    [90_000, '1m30s'],
    [3_600_000, '1h'],
    [3_605_000, '1h5s'],
    [5_400_000, '1h30m'],
    [-1500, '-1.5s'],
  ];
  for (const [ms, s] of cases) assert.equal(formatDuration(ms), s, `formatDuration(${ms})`);
});

test('formatDuration output parses back to the same value', () => {
  for (const ms of [500, 1000, 2500, 90_000, 5_400_000, 3_605_000, 61_250]) {
    assert.deepEqual(parseDuration(formatDuration(ms)), { ok: true, ms });
  }
});
