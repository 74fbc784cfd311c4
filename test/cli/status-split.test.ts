/**
 * `status PARENT` after a split shows the whole rollout (issue 25 §3): every batch with its
 * status and counts, the totals of all of them, and every batch's servers (a BATCH column); in
 * `--json`, `batches` and `rollout` beside the update's own `counts` and `servers`, which stay
 * as they were. `status BATCH` is unchanged. In a terminal the view fits its width; `--wide`
 * shows it whole. The real status command on a real plan database; no server is reached.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { CliContext, type GlobalOptions } from '../../src/cli/context.js';
import { statusCommand } from '../../src/cli/control.js';
import { splitUpdate } from '../../src/rollout/split.js';
import { displayWidth, stripAnsi } from '../../src/output/fit.js';
import type { UpdateJson } from '../../src/output/status-json.js';
import { NEW, fakeSettings } from '../support/fake-settings.js';
import { openStore } from '../helpers/db.js';
import { testTmpRoot } from '../helpers/tmp.js';

/** stdout as the status command sees it: a pipe, or a terminal of `columns`. */
function output(columns?: number): { stream: NodeJS.WriteStream; text: () => string } {
  const out = new PassThrough();
  let text = '';
  out.on('data', (d: Buffer) => (text += d.toString()));
  if (columns !== undefined) Object.assign(out, { isTTY: true, columns });
  return { stream: out as unknown as NodeJS.WriteStream, text: () => text };
}

async function status(db: string, name: string, opts: GlobalOptions & { columns?: number } = {}): Promise<string> {
  const { columns, ...global } = opts;
  const out = output(columns);
  const ctx = new CliContext({ db, ...global }, out.stream, output().stream);
  try {
    assert.equal(await statusCommand(ctx, name, { wide: global.wide }), 0);
  } finally {
    await ctx.close();
  }
  return stripAnsi(out.text());
}

/** u with five servers: s1 unreachable (it stays with u), the four pending split in two; s4 of u.2 done. */
async function splitPlan(t: TestContext): Promise<string> {
  const dir = mkdtempSync(join(testTmpRoot(), 'agent-update-status-split-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const db = join(dir, 'p.db');
  const store = openStore(db);
  try {
    await store.createUpdate({
      name: 'u', repo: '/r', branch: 'master', commit: NEW, configFile: null, settings: fakeSettings, testStopAfter: 0,
      servers: ['s1', 's2', 's3', 's4', 's5'].map((name, i) => ({ name, host: `10.0.0.${i + 1}`, port: 22, user: 'x', type: 'app' })),
    });
    const s1 = (await store.getServers('u'))[0]!;
    await store.setServerStatus(s1.id, 'unreachable', { error: 'cannot connect to 10.0.0.1:22: connection refused\nis sshd running there?' });
    await store.setUpdateStatus('u', 'pending');
    assert.deepEqual(await splitUpdate(store, 'u', 2), ['u', 'u.2']);
    const s4 = (await store.getServers('u.2'))[0]!;
    await store.setServerStatus(s4.id, 'running', { step: 'update' });
    await store.setServerStatus(s4.id, 'success', { step: null });
  } finally {
    await store.close();
  }
  return db;
}

test('status PARENT after a split: every batch with its counts, the totals, and every batch\'s servers; status BATCH as it was', async (t) => {
  const db = await splitPlan(t);
  const text = await status(db, 'u');
  const lines = text.split('\n');
  assert.match(text, /^ {2}split {4}into 2 batches, each one server at a time:$/m);
  assert.match(text, /^ {11}u \(this one\) +pending +3 servers: 1 unreachable, 2 pending$/m);
  assert.match(text, /^ {11}u\.2 +pending +2 servers: 1 success, 1 pending$/m);
  assert.match(text, /^ {2}in all {3}5 servers: 1 unreachable, 3 pending, 1 success$/m);
  const head = lines.findIndex((l) => l.startsWith('SERVER '));
  assert.deepEqual(lines[head]!.split(/ +/), ['SERVER', 'BATCH', 'HOST', 'TYPE', 'STATUS', 'FROM', 'TO', 'DETAIL']);
  const rows = lines.slice(head + 1, -1).map((l) => l.split(/ +/).slice(0, 2));
  assert.deepEqual(rows, [['s1', 'u'], ['s2', 'u'], ['s3', 'u'], ['s4', 'u.2'], ['s5', 'u.2']], text);
  // not a terminal: whole, the error's newline escaped as it always was
  assert.match(text, /connection refused\\nis sshd running there\?$/m);

  const batch = await status(db, 'u.2');
  assert.match(batch, /^ {2}batch of u$/m);
  assert.match(batch, /^ {2}2 servers: 1 success, 1 pending$/m);
  assert.doesNotMatch(batch, /split|in all|BATCH|s1|s2|s3/);
});

test('status PARENT --json: batches and rollout beside the update\'s own counts and servers; null for an update never split', async (t) => {
  const db = await splitPlan(t);
  const doc = JSON.parse(await status(db, 'u', { json: true })) as UpdateJson;
  assert.deepEqual(doc.counts, { total: 3, unreachable: 1, pending: 2 }, 'its own, as before');
  assert.deepEqual(doc.servers.map((s) => s.name), ['s1', 's2', 's3']);
  assert.deepEqual(
    doc.batches!.map((b) => [b.name, b.status, b.batchOf, b.counts]),
    [
      ['u', 'pending', null, { total: 3, unreachable: 1, pending: 2 }],
      ['u.2', 'pending', 'u', { total: 2, success: 1, pending: 1 }],
    ],
  );
  assert.deepEqual(doc.rollout!.counts, { total: 5, unreachable: 1, pending: 3, success: 1 });
  assert.deepEqual(doc.rollout!.servers.map((s) => [s.name, s.batch, s.status]), [
    ['s1', 'u', 'unreachable'], ['s2', 'u', 'pending'], ['s3', 'u', 'pending'], ['s4', 'u.2', 'success'], ['s5', 'u.2', 'pending'],
  ]);
  assert.deepEqual(Object.keys(doc).slice(-5), ['batches', 'rollout', 'steps', 'bake', 'guard']);
  const batch = JSON.parse(await status(db, 'u.2', { json: true })) as UpdateJson;
  assert.equal(batch.batches, null);
  assert.equal(batch.rollout, null);
  assert.deepEqual(batch.counts, { total: 2, success: 1, pending: 1 });
});

test('status in a terminal of 60 columns fits it (the error on one line, cut); --wide prints it whole', async (t) => {
  const db = await splitPlan(t);
  const fitted = await status(db, 'u', { columns: 60 });
  const lines = fitted.split('\n');
  const table = lines.slice(lines.findIndex((l) => l.startsWith('SERVER ')));
  for (const l of table) assert.ok(displayWidth(l) <= 60, `${JSON.stringify(l)} is ${displayWidth(l)} wide`);
  assert.match(table[0]!, /^SERVER +BATCH +.*STATUS +.*DETAIL$/);
  assert.match(table[1]!, /^s1 +u +.*unreachable +.*cannot connect to .*…$/);
  const wide = await status(db, 'u', { columns: 60, wide: true });
  assert.match(wide, /connection refused\\nis sshd running there\?$/m);
});
