import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { selfCommand } from '../../src/util/invocation.js';
import { SqliteStore } from '../../src/store/sqlite/store.js';
import { systemClock } from '../../src/clock.js';
import { BIN, cli, ROOT } from '../helpers/cli.js';

test('selfCommand: the way it was run: npx under npx, agent-update when that on the PATH is this binary, else its path', (t) => {
  const bin = mkdtempSync(join(tmpdir(), 'au-path-'));
  t.after(() => rmSync(bin, { recursive: true, force: true }));
  symlinkSync(BIN, join(bin, 'agent-update'));
  const path = BIN.replace(/\/+/g, '/');
  // npm link / npm install -g: the PATH's agent-update is this file
  assert.equal(selfCommand({ PATH: `/nonexistent:${bin}` }, '/', BIN), 'agent-update');
  assert.equal(selfCommand({ PATH: `/nonexistent:${bin}` }, '/', join(bin, 'agent-update')), 'agent-update', 'run from the PATH by name');
  // not on the PATH: the binary itself, relative inside the project (it is executable: no `node`)
  assert.equal(selfCommand({ PATH: '/nonexistent' }, ROOT, BIN), './bin/agent-update.js');
  assert.equal(selfCommand({ PATH: '/nonexistent' }, join(ROOT, 'src'), BIN), path, 'from a folder of the project: the full path');
  assert.equal(selfCommand({ PATH: '' }, '/', BIN), path);
  // another agent-update on the PATH (another version, another checkout) is not the one that ran
  const other = mkdtempSync(join(tmpdir(), 'au-other-'));
  t.after(() => rmSync(other, { recursive: true, force: true }));
  copyFileSync(BIN, join(other, 'agent-update'));
  chmodSync(join(other, 'agent-update'), 0o755);
  assert.equal(selfCommand({ PATH: other }, ROOT, BIN), './bin/agent-update.js');
  // under npx the person typed npx: the hints say so
  const npmBin = join(bin, 'node_modules', '.bin');
  mkdirSync(npmBin, { recursive: true });
  symlinkSync(BIN, join(npmBin, 'agent-update'));
  assert.equal(selfCommand({ PATH: npmBin, npm_command: 'exec' }, ROOT, join(npmBin, 'agent-update')), 'npx agent-update');
  // under npm run, npm's node_modules/.bin in front of the PATH is not the person's PATH
  assert.equal(selfCommand({ PATH: npmBin, npm_command: 'run-script' }, ROOT, BIN), './bin/agent-update.js');
  assert.equal(selfCommand({ PATH: npmBin }, ROOT, BIN), 'agent-update', 'outside npm, a node_modules/.bin the person put on PATH counts');
  assert.equal(selfCommand({ PATH: `${npmBin}:${bin}`, npm_command: 'run-script' }, ROOT, BIN), 'agent-update', 'a real one behind it still counts');
});

test('start, resume and auto say on stderr when they were run through npx, whose Ctrl-C and kill do not behave as documented', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'au-npx-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const db = join(dir, 'plan.db');
  await new SqliteStore(db, { clock: systemClock }).close();
  const underNpx = await cli(['start', 'no-such-update'], { db, env: { npm_command: 'exec' } });
  assert.equal(underNpx.code, 2, underNpx.stderr);
  assert.match(underNpx.stderr, /^note: run through npx: npm reports a Ctrl-C as exit 130.*`npm link`/m);
  assert.match(underNpx.stderr, /npx agent-update/, 'and its hints are written the way it was run');
  const direct = await cli(['start', 'no-such-update'], { db });
  assert.doesNotMatch(direct.stderr, /run through npx/);
  const quiet = await cli(['-q', 'start', 'no-such-update'], { db, env: { npm_command: 'exec' } });
  assert.doesNotMatch(quiet.stderr, /run through npx/, 'not with -q');
});
