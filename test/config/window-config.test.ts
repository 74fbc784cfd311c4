/**
 * `execution.window` in a config file: what it reads as (the defaults, the forms a day or the
 * hours may take, the time zone's spelling), and every problem named by file, line and key path,
 * in the config and in the site defaults.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { loadConfigText } from '../../src/config/load.js';
import { configError } from './helpers.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-update-window-'));
fs.mkdirSync(path.join(dir, '.ssh'));
fs.writeFileSync(path.join(dir, '.ssh', 'known_hosts'), '');
test.after(() => fs.rmSync(dir, { recursive: true, force: true }));
const FILE = path.join(dir, 'fleet.yaml');

const HEAD = `source:
  repo: https://github.com/example/agent
  branch: master
servers:
  - { name: app1, host: 10.0.0.11 }
agent:
  version_command: git rev-parse HEAD
  update: [git fetch]
  health:
    command: curl -fsS http://127.0.0.1/version
execution:
  busy_wait: 1m
`; // the window begins on line 13

function load(window: string, defaults: string | null = null) {
  let d: string | null = null;
  if (defaults !== null) {
    d = path.join(dir, 'defaults.yaml');
    fs.writeFileSync(d, defaults);
  }
  return loadConfigText(`${HEAD}${window}`, FILE, { defaults: d, env: { HOME: dir, USER: 'op' }, home: dir, cwd: dir });
}

function problems(window: string, defaults: string | null = null): string[] {
  return configError(() => load(window, defaults)).message.split('\n');
}

test('no window: none stored (every day, any hour)', () => {
  assert.equal(load('').execution.window, undefined);
});

test('a window as written: days in week order, hours in one form, the time zone checked', () => {
  const w = load('  window:\n    days: [fri, Mon, tuesday, WED, thu]\n    hours: "9:00-17:00"\n    timezone: europe/berlin\n').execution.window;
  assert.deepEqual(w, { days: ['mon', 'tue', 'wed', 'thu', 'fri'], hours: '09:00-17:00', timezone: 'Europe/Berlin' });
  // a range, alone or in a list; hours past midnight; YAML reads 22:00-06:00 unquoted as a string
  assert.deepEqual(load('  window:\n    days: mon-fri\n    hours: 22:00-06:00\n    timezone: UTC\n').execution.window, {
    days: ['mon', 'tue', 'wed', 'thu', 'fri'],
    hours: '22:00-06:00',
    timezone: 'UTC',
  });
  assert.deepEqual(load('  window:\n    days: [sat-mon, wed]\n    timezone: Asia/Kolkata\n').execution.window, {
    days: ['mon', 'wed', 'sat', 'sun'],
    hours: null,
    timezone: 'Asia/Kolkata',
  });
});

test('each key is optional: every day, the whole day, the machine\'s time zone (as planned)', (t) => {
  const before = process.env.TZ;
  t.after(() => {
    if (before === undefined) delete process.env.TZ;
    else process.env.TZ = before;
  });
  process.env.TZ = 'America/New_York';
  assert.deepEqual(load('  window:\n    hours: 09:00-17:00\n').execution.window, {
    days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'],
    hours: '09:00-17:00',
    timezone: 'America/New_York',
  });
  assert.deepEqual(load('  window: {}\n').execution.window?.days.length, 7);
});

type Case = [what: string, window: string, problem: RegExp];

const CASES: Case[] = [
  ['not a mapping', '  window: weekdays\n', /fleet\.yaml:13: execution\.window: must be a mapping of keys \(days, hours, timezone\), got the string "weekdays"/],
  ['an unknown key', '  window:\n    day: [mon]\n', /fleet\.yaml:14: execution\.window\.day: unknown key; did you mean days\?/],
  ['days not a list', '  window:\n    days: 5\n', /fleet\.yaml:14: execution\.window\.days: must be a list of days \(\[mon, tue, wed, thu, fri\]\) or a range \("mon-fri"\), got the number 5/],
  ['days empty', '  window:\n    days: []\n', /fleet\.yaml:14: execution\.window\.days: is empty: the window would never open/],
  ['a day misspelt', '  window:\n    days:\n      - mon\n      - tues\n', /fleet\.yaml:16: execution\.window\.days\[1\]: "tues" is not a day: use mon, tue, wed, thu, fri, sat, sun/],
  ['a day not a string', '  window:\n    days: [mon, 3]\n', /fleet\.yaml:14: execution\.window\.days\[1\]: must be a day \(mon … sun\) or a range of days \(mon-fri\), got the number 3/],
  ['a bad range', '  window:\n    days: mon-', /fleet\.yaml:14: execution\.window\.days: "mon-" is not a range of days/],
  ['hours not HH:MM-HH:MM', '  window:\n    hours: 9-17\n', /fleet\.yaml:14: execution\.window\.hours: "9-17" is not a span of hours: write it as HH:MM-HH:MM/],
  ['hours past 24:00', '  window:\n    hours: "09:00-25:00"\n', /fleet\.yaml:14: execution\.window\.hours: "09:00-25:00": the end 25:00 is not a time of day/],
  ['hours empty', '  window:\n    hours: "10:00-10:00"\n', /fleet\.yaml:14: execution\.window\.hours: "10:00-10:00" starts where it ends/],
  ['hours a number', '  window:\n    hours: 9\n', /fleet\.yaml:14: execution\.window\.hours: must be a span of hours like "09:00-17:00"; YAML read it as the number 9, so put it in quotes/],
  ['timezone misspelt', '  window:\n    timezone: Europe/Berlni\n', /fleet\.yaml:14: execution\.window\.timezone: "Europe\/Berlni" is not a time zone; did you mean Europe\/Berlin\?/],
  ['timezone an offset', '  window:\n    timezone: "+01:00"\n', /fleet\.yaml:14: execution\.window\.timezone: "\+01:00" is not a time zone: use an IANA name like "Europe\/Berlin"/],
  ['timezone a list', '  window:\n    timezone: [UTC]\n', /fleet\.yaml:14: execution\.window\.timezone: must be a time zone name like "Europe\/Berlin", got a list/],
];

for (const [what, window, problem] of CASES) {
  test(`execution.window: ${what} → file, line and key path`, () => {
    const all = problems(window);
    assert.ok(all.some((l) => problem.test(l)), `expected ${problem} among:\n${all.join('\n')}`);
  });
}

test('every problem of a window at once', () => {
  const all = problems('  window:\n    days: [mon, fir]\n    hours: "9 to 5"\n    timezone: Mars/Olympus\n');
  assert.deepEqual(
    all.map((l) => l.replace(/: .*/, '')),
    [`${FILE}:14`, `${FILE}:15`, `${FILE}:16`].map((f) => f),
    all.join('\n'),
  );
  assert.match(all[0]!, /execution\.window\.days\[1\]: "fir" is not a day/);
});

test('a window key at the top of the config, or under execution, is placed for the reader', () => {
  const all = configError(() => loadConfigText(`${HEAD}timezone: UTC\n`, FILE, { defaults: null, env: { HOME: dir, USER: 'op' }, home: dir, cwd: dir })).message;
  assert.match(all, /fleet\.yaml:13: timezone: unknown key; timezone belongs under execution\.window:/);
  assert.match(problems('  hours: 09:00-17:00\n').join('\n'), /fleet\.yaml:13: execution\.hours: unknown key/);
});

test('a window in the site defaults: merged key by key, its problems named in that file', () => {
  const w = load('  window:\n    hours: 09:00-17:00\n', 'execution:\n  window:\n    days: mon-fri\n    timezone: Europe/Berlin\n').execution.window;
  assert.deepEqual(w, { days: ['mon', 'tue', 'wed', 'thu', 'fri'], hours: '09:00-17:00', timezone: 'Europe/Berlin' });
  const all = problems('', 'execution:\n  window:\n    days: [mon, someday]\n').join('\n');
  assert.match(all, /defaults\.yaml:3: execution\.window\.days\[1\]: "someday" is not a day/);
});
