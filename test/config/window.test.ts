/**
 * Rollout windows (config/window.ts), pure: windowState over a table of instants (days, hours
 * past midnight, both changes of the clocks in Europe/Berlin and America/New_York, a zone with a
 * half-hour offset, the machine's zone when none is given), and the parsers and texts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Weekday } from '../../src/config/types.js';
import {
  canonicalTimeZone,
  describeDays,
  describeOpening,
  describeWindow,
  formatInZone,
  isWindowPause,
  parseDayEntry,
  parseHours,
  windowPauseReason,
  windowState,
  type WindowSpec,
} from '../../src/config/window.js';

const WEEK: Weekday[] = ['mon', 'tue', 'wed', 'thu', 'fri'];
const BERLIN_OFFICE: WindowSpec = { days: WEEK, hours: '09:00-17:00', timezone: 'Europe/Berlin' };
const FRIDAY_NIGHT: WindowSpec = { days: ['fri'], hours: '22:00-06:00', timezone: 'Europe/Berlin' };

/** [what, window, now (UTC), open: when it closes (null: never) | closed: when it opens] */
type Row = [string, WindowSpec, string, { closes: string | null } | { opens: string }];

const ROWS: Row[] = [
  // office hours, Berlin in winter (CET, UTC+1)
  ['Monday 10:00 CET: open until 17:00', BERLIN_OFFICE, '2025-01-06T09:00:00Z', { closes: '2025-01-06T16:00:00Z' }],
  ['Monday 08:59 CET: opens at 09:00', BERLIN_OFFICE, '2025-01-06T07:59:00Z', { opens: '2025-01-06T08:00:00Z' }],
  ['Monday 09:00 CET sharp: open (the start is in)', BERLIN_OFFICE, '2025-01-06T08:00:00Z', { closes: '2025-01-06T16:00:00Z' }],
  ['Friday 17:00 CET sharp: closed (the end is out), opens Monday', BERLIN_OFFICE, '2025-01-10T16:00:00Z', { opens: '2025-01-13T08:00:00Z' }],
  ['Sunday 03:00 CET: no rollout on a Sunday night, opens Monday', BERLIN_OFFICE, '2025-01-12T02:00:00Z', { opens: '2025-01-13T08:00:00Z' }],
  ['Saturday noon: opens Monday', BERLIN_OFFICE, '2025-01-11T12:00:00Z', { opens: '2025-01-13T08:00:00Z' }],
  // summer (CEST, UTC+2)
  ['Wednesday 10:30 CEST: open until 17:00 CEST', BERLIN_OFFICE, '2025-07-02T08:30:00Z', { closes: '2025-07-02T15:00:00Z' }],
  // over the weekends the clocks change
  ['Friday evening before the spring change: opens Monday 09:00 CEST', BERLIN_OFFICE, '2025-03-28T17:00:00Z', { opens: '2025-03-31T07:00:00Z' }],
  ['Friday evening before the autumn change: opens Monday 09:00 CET', BERLIN_OFFICE, '2025-10-24T16:00:00Z', { opens: '2025-10-27T08:00:00Z' }],
  ['Sunday of the spring change, 04:00 CEST: opens Monday 09:00 CEST', BERLIN_OFFICE, '2025-03-30T02:00:00Z', { opens: '2025-03-31T07:00:00Z' }],

  // hours past midnight: the days name the day the window opens
  ['Friday 22:00 CET: Friday night opens', FRIDAY_NIGHT, '2025-01-10T21:00:00Z', { closes: '2025-01-11T05:00:00Z' }],
  ['Saturday 03:00 CET: still Friday night', FRIDAY_NIGHT, '2025-01-11T02:00:00Z', { closes: '2025-01-11T05:00:00Z' }],
  ['Saturday 06:00 CET: Friday night is over, next Friday', FRIDAY_NIGHT, '2025-01-11T05:00:00Z', { opens: '2025-01-17T21:00:00Z' }],
  ['Saturday 22:00 CET: not a Friday', FRIDAY_NIGHT, '2025-01-11T21:00:00Z', { opens: '2025-01-17T21:00:00Z' }],
  ['Thursday 23:00 CET: not a Friday', FRIDAY_NIGHT, '2025-01-09T22:00:00Z', { opens: '2025-01-10T21:00:00Z' }],
  ['Friday 21:59 CET: opens in a minute', FRIDAY_NIGHT, '2025-01-10T20:59:00Z', { opens: '2025-01-10T21:00:00Z' }],

  // a night over a change of the clocks: 22:00 on one clock, 06:00 on the other
  ['Saturday night of the spring change: 22:00 CET to 06:00 CEST (7 hours)', { ...FRIDAY_NIGHT, days: ['sat'] }, '2025-03-30T03:30:00Z', { closes: '2025-03-30T04:00:00Z' }],
  ['it opened at 22:00 CET', { ...FRIDAY_NIGHT, days: ['sat'] }, '2025-03-29T20:59:00Z', { opens: '2025-03-29T21:00:00Z' }],
  ['Saturday night of the autumn change: 22:00 CEST to 06:00 CET (9 hours)', { ...FRIDAY_NIGHT, days: ['sat'] }, '2025-10-25T20:00:00Z', { closes: '2025-10-26T05:00:00Z' }],

  // hours the clocks skip (02:00 CET → 03:00 CEST on 2025-03-30) or show twice (03:00 CEST → 02:00 CET on 2025-10-26)
  ['a window wholly in the skipped hour does not open that day', { days: ['sun'], hours: '02:00-02:30', timezone: 'Europe/Berlin' }, '2025-03-30T00:00:00Z', { opens: '2025-04-06T00:00:00Z' }],
  ['a start in the skipped hour: opens as the clocks jump (03:00 CEST)', { days: ['sun'], hours: '02:30-04:00', timezone: 'Europe/Berlin' }, '2025-03-30T00:30:00Z', { opens: '2025-03-30T01:00:00Z' }],
  ['… and closes at 04:00 CEST', { days: ['sun'], hours: '02:30-04:00', timezone: 'Europe/Berlin' }, '2025-03-30T01:00:00Z', { closes: '2025-03-30T02:00:00Z' }],
  ['the hour shown twice: opens at the first 02:30 (CEST)', { days: ['sun'], hours: '02:30-03:30', timezone: 'Europe/Berlin' }, '2025-10-26T00:15:00Z', { opens: '2025-10-26T00:30:00Z' }],
  ['… stays open through the second 02:30 (CET), never cut in two', { days: ['sun'], hours: '02:30-03:30', timezone: 'Europe/Berlin' }, '2025-10-26T01:10:00Z', { closes: '2025-10-26T02:30:00Z' }],
  ['… and at the second 02:45 (CET)', { days: ['sun'], hours: '02:30-03:30', timezone: 'Europe/Berlin' }, '2025-10-26T01:45:00Z', { closes: '2025-10-26T02:30:00Z' }],

  // America/New_York changes on other dates (2025-03-09, 2025-11-02)
  ['New York, Monday after its spring change: 09:00 EDT', { days: WEEK, hours: '09:00-17:00', timezone: 'America/New_York' }, '2025-03-08T12:00:00Z', { opens: '2025-03-10T13:00:00Z' }],
  ['New York, Monday after its autumn change: 09:00 EST', { days: WEEK, hours: '09:00-17:00', timezone: 'America/New_York' }, '2025-11-01T12:00:00Z', { opens: '2025-11-03T14:00:00Z' }],
  ['Berlin office hours seen from a New York Sunday evening', BERLIN_OFFICE, '2025-01-12T23:00:00Z', { opens: '2025-01-13T08:00:00Z' }],
  // a half-hour offset, no changes
  ['Kolkata (UTC+05:30)', { hours: '09:00-17:00', timezone: 'Asia/Kolkata' }, '2025-06-01T02:00:00Z', { opens: '2025-06-01T03:30:00Z' }],

  // days alone, hours alone, nothing
  ['weekends only, the whole day: Friday noon → Saturday 00:00', { days: ['sat', 'sun'], timezone: 'UTC' }, '2025-01-10T12:00:00Z', { opens: '2025-01-11T00:00:00Z' }],
  ['weekends only: Saturday and Sunday are one stretch, closes Monday 00:00', { days: ['sat', 'sun'], timezone: 'UTC' }, '2025-01-11T12:00:00Z', { closes: '2025-01-13T00:00:00Z' }],
  ['every day, the whole day: never closes', { timezone: 'UTC' }, '2025-01-11T12:00:00Z', { closes: null }],
  ['hours alone: every day', { hours: '01:00-02:00', timezone: 'UTC' }, '2025-01-11T12:00:00Z', { opens: '2025-01-12T01:00:00Z' }],
  ['hours to midnight (24:00)', { days: ['fri'], hours: '18:00-24:00', timezone: 'UTC' }, '2025-01-10T23:59:00Z', { closes: '2025-01-11T00:00:00Z' }],
  ['every day over midnight: each night its own stretch', { hours: '22:00-06:00', timezone: 'UTC' }, '2025-01-11T23:00:00Z', { closes: '2025-01-12T06:00:00Z' }],
  ['the whole day on days in a row: one stretch to the first day off', { days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat'], timezone: 'UTC' }, '2025-01-07T12:00:00Z', { closes: '2025-01-12T00:00:00Z' }],
];

for (const [what, w, now, want] of ROWS) {
  test(`windowState: ${what}`, () => {
    const got = windowState(new Date(now), w);
    if ('opens' in want) {
      assert.deepEqual(got, { open: false, opensAt: new Date(want.opens) });
    } else {
      assert.deepEqual(got, { open: true, closesAt: want.closes === null ? null : new Date(want.closes) });
    }
  });
}

test('windowState: without a timezone, the machine\'s (TZ)', (t) => {
  const before = process.env.TZ;
  t.after(() => {
    if (before === undefined) delete process.env.TZ;
    else process.env.TZ = before;
  });
  const w: WindowSpec = { days: ['mon'], hours: '09:00-10:00' };
  process.env.TZ = 'America/New_York';
  assert.deepEqual(windowState(new Date('2025-01-06T00:00:00Z'), w), { open: false, opensAt: new Date('2025-01-06T14:00:00Z') });
  assert.equal(describeWindow(w), 'mon 09:00-10:00 America/New_York');
  process.env.TZ = 'Asia/Tokyo';
  assert.deepEqual(windowState(new Date('2025-01-06T00:00:00Z'), w), { open: true, closesAt: new Date('2025-01-06T01:00:00Z') });
  process.env.TZ = 'UTC';
  assert.deepEqual(windowState(new Date('2025-01-06T00:00:00Z'), w), { open: false, opensAt: new Date('2025-01-06T09:00:00Z') });
});

test('windowState: every hour of 2025 in Berlin agrees with the wall clock (both changes of the clocks included)', () => {
  // walk 2025 in Berlin, an hour at a time: open exactly when the wall clock says Mon-Fri 09:00-17:00
  const wall = new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Berlin', weekday: 'short', hour: '2-digit', hourCycle: 'h23' });
  for (let t = Date.UTC(2025, 0, 1); t < Date.UTC(2026, 0, 1); t += 3_600_000) {
    const parts = Object.fromEntries(wall.formatToParts(new Date(t)).map((p) => [p.type, p.value]));
    const h = Number(parts.hour);
    const want = !['Sat', 'Sun'].includes(parts.weekday!) && h >= 9 && h < 17;
    const s = windowState(new Date(t), BERLIN_OFFICE);
    assert.equal(s.open, want, new Date(t).toISOString());
    if (s.open) assert.ok(s.closesAt! > new Date(t) && s.closesAt!.getTime() - t <= 8 * 3_600_000);
    else assert.ok(s.opensAt > new Date(t) && s.opensAt.getTime() - t <= 3 * 86_400_000 + 16 * 3_600_000);
  }
});

test('days: names, full names, any case, ranges (wrapping over the weekend)', () => {
  assert.deepEqual(parseDayEntry('mon'), ['mon']);
  assert.deepEqual(parseDayEntry('Monday'), ['mon']);
  assert.deepEqual(parseDayEntry('SUN'), ['sun']);
  assert.deepEqual(parseDayEntry('mon-fri'), ['mon', 'tue', 'wed', 'thu', 'fri']);
  assert.deepEqual(parseDayEntry('Fri-Mon'), ['fri', 'sat', 'sun', 'mon']);
  assert.deepEqual(parseDayEntry('wed-wed'), ['wed']);
  assert.match((parseDayEntry('mo') as { error: string }).error, /"mo" is not a day: use mon, tue/);
  assert.match((parseDayEntry('mon-') as { error: string }).error, /not a range of days/);
  assert.match((parseDayEntry('mon-tue-wed') as { error: string }).error, /not a range of days/);
});

test('hours: HH:MM-HH:MM, 24:00 as the end, refusals', () => {
  assert.deepEqual(parseHours('09:00-17:00'), { start: 540, end: 1020 });
  assert.deepEqual(parseHours('9:00 - 17:30'), { start: 540, end: 1050 });
  assert.deepEqual(parseHours('22:00-06:00'), { start: 1320, end: 360 });
  assert.deepEqual(parseHours('18:00-24:00'), { start: 1080, end: 1440 });
  const error = (s: string) => (parseHours(s) as { error: string }).error;
  assert.match(error('9-17'), /is not a span of hours: write it as HH:MM-HH:MM/);
  assert.match(error('24:00-06:00'), /the start 24:00 is not a time of day/);
  assert.match(error('09:00-24:30'), /the end 24:30 is not a time of day/);
  assert.match(error('09:60-10:00'), /the start 09:60/);
  assert.match(error('09:00-09:00'), /starts where it ends; for the whole day leave hours out/);
  assert.match(error('00:00-24:00'), /is the whole day: leave hours out/);
});

test('timezone: names Intl knows, as written or with Intl\'s case; offsets and unknown names refused', () => {
  assert.equal(canonicalTimeZone('Europe/Berlin'), 'Europe/Berlin');
  assert.equal(canonicalTimeZone('europe/berlin'), 'Europe/Berlin');
  assert.equal(canonicalTimeZone('Asia/Kolkata'), 'Asia/Kolkata');
  assert.equal(canonicalTimeZone('UTC'), 'UTC');
  assert.equal(canonicalTimeZone('Europe/Berlni'), null);
  assert.equal(canonicalTimeZone('+01:00'), null);
  assert.equal(canonicalTimeZone(''), null);
});

test('the texts: days, the window, an instant in a zone, the pause reason', () => {
  assert.equal(describeDays(['mon', 'tue', 'wed', 'thu', 'fri']), 'mon-fri');
  assert.equal(describeDays(['sat', 'sun']), 'sat, sun');
  assert.equal(describeDays(['mon', 'wed', 'fri']), 'mon, wed, fri');
  assert.equal(describeDays(['mon', 'tue', 'wed', 'fri', 'sat', 'sun']), 'mon-wed, fri-sun');
  assert.equal(describeDays(['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun']), 'every day');
  assert.equal(describeWindow(BERLIN_OFFICE), 'mon-fri 09:00-17:00 Europe/Berlin');
  assert.equal(describeWindow({ days: ['sat', 'sun'], timezone: 'UTC' }), 'sat, sun all day UTC');
  const at = new Date('2025-01-13T08:00:00Z');
  assert.equal(formatInZone(at, 'Europe/Berlin'), 'Mon 2025-01-13 09:00 Europe/Berlin');
  assert.equal(formatInZone(at, 'America/New_York'), 'Mon 2025-01-13 03:00 America/New_York');
  assert.equal(formatInZone(at, 'Pacific/Honolulu'), 'Sun 2025-01-12 22:00 Pacific/Honolulu');
  assert.equal(describeOpening(at, BERLIN_OFFICE, 'Europe/Berlin'), 'Mon 2025-01-13 09:00 Europe/Berlin');
  assert.equal(describeOpening(at, BERLIN_OFFICE, 'UTC'), 'Mon 2025-01-13 09:00 Europe/Berlin (local time: Mon 2025-01-13 08:00 UTC)');
  const reason = windowPauseReason(BERLIN_OFFICE, at, 'America/New_York');
  assert.equal(reason, 'outside the rollout window (mon-fri 09:00-17:00 Europe/Berlin): it opens Mon 2025-01-13 09:00 Europe/Berlin (local time: Mon 2025-01-13 03:00 America/New_York)');
  assert.ok(isWindowPause(reason));
  assert.ok(!isWindowPause('pause requested by op@host'));
  assert.ok(!isWindowPause(null));
});
