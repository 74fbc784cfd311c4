/**
 * An undo's target line (issue 25): its commit is what most of its servers ran before the update
 * it undoes, not the tip of that update's branch, so `status` and the new plan must not show it
 * as `C (BRANCH of REPO)` (`f2fa2cab… (good2 …)` where f2fa2cab was master's commit).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { updateText } from '../../src/output/text.js';
import { fakeSettings } from '../support/fake-settings.js';
import { tempDirFor } from '../helpers/tmp.js';
import { openStore } from '../helpers/db.js';

test('the target of an undo names the update it undoes, not that update’s branch; a plan’s names its branch', async (t) => {
  const store = openStore(join(tempDirFor(t, 'undo-target-'), 'plan.db'));
  t.after(() => store.close());
  const before = 'b'.repeat(40);
  const servers = [{ name: 's1', host: 'h1', port: 22, user: 'u', type: 'app', path: [{ commit: before, version: null }] }];
  const base = { repo: '/src/agent.git', configFile: null, settings: fakeSettings, testStopAfter: 0, servers };
  await store.createUpdate({ ...base, name: 'a', branch: 'good2', commit: 'a'.repeat(40) });
  await store.createUpdate({ ...base, name: 'a-undo', branch: 'good2', commit: before, undoOf: 'a' });
  const plain = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, ''); // eslint-disable-line no-control-regex
  const a = plain(updateText(await store.getUpdate('a'), await store.getServers('a')));
  assert.match(a, new RegExp(`^  target   ${'a'.repeat(40)} \\(good2 of /src/agent\\.git\\)$`, 'm'));
  const undo = plain(updateText(await store.getUpdate('a-undo'), await store.getServers('a-undo')));
  const line = undo.split('\n').find((l) => l.startsWith('  target '));
  assert.equal(line, `  target   ${before} (what most of its servers ran before a, in /src/agent.git; each goes back to its own: its TO)`);
  assert.doesNotMatch(line!, /good2/, 'not the branch of the update it undoes');
});
