import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { selfCommand } from '../../src/util/invocation.js';
import { BIN, ROOT } from '../helpers/cli.js';

test('selfCommand: agent-update when on the PATH, npx inside the project, else node and the full path', (t) => {
  const bin = mkdtempSync(join(tmpdir(), 'au-path-'));
  t.after(() => rmSync(bin, { recursive: true, force: true }));
  symlinkSync(BIN, join(bin, 'agent-update'));
  assert.equal(selfCommand({ PATH: `/nonexistent:${bin}` }, '/'), 'agent-update');
  assert.equal(selfCommand({ PATH: '/nonexistent' }, ROOT), 'npx agent-update');
  assert.equal(selfCommand({ PATH: '/nonexistent' }, join(ROOT, 'src')), 'npx agent-update', 'in a folder of the project too');
  assert.equal(selfCommand({ PATH: '' }, '/'), `node ${BIN.replace(/\/+/g, '/')}`);
  // under npx or npm run, npm's node_modules/.bin in front of the PATH is not the person's PATH
  const npmBin = join(bin, 'node_modules', '.bin');
  mkdirSync(npmBin, { recursive: true });
  symlinkSync(BIN, join(npmBin, 'agent-update'));
  assert.equal(selfCommand({ PATH: npmBin, npm_command: 'exec' }, ROOT), 'npx agent-update');
  assert.equal(selfCommand({ PATH: npmBin }, ROOT), 'agent-update', 'outside npm, a node_modules/.bin the person put on PATH counts');
  assert.equal(selfCommand({ PATH: `${npmBin}:${bin}`, npm_command: 'run-script' }, ROOT), 'agent-update', 'a real one behind it still counts');
});
