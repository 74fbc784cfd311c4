import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
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
});
