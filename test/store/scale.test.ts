/**
 * A big update read cheaply and correctly: `status --json`, `status` and `logs` of a synthetic
 * 10,000-server update (bench/synthetic.ts, written straight into the Store, no sshd), and the
 * hot queries using their indexes (EXPLAIN QUERY PLAN of the SQL the Store really runs). No
 * timing is asserted here: `npm run bench` (d) measures it.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { statusOf, SYNTH_FROM, SYNTH_TO, writeSyntheticUpdate } from '../../bench/synthetic.js';
import { cli, cliStatusJson } from '../helpers/cli.js';
import { tempDirFor } from '../helpers/tmp.js';
import { openStore, withSqliteFile } from '../helpers/db.js';

const N = 10_000;
const nameOf = (i: number) => `web-${String(i + 1).padStart(5, '0')}`;

function expectedCounts(n: number): Record<string, number> {
  const counts: Record<string, number> = { total: n };
  for (let i = 0; i < n; i++) counts[statusOf(i, n)] = (counts[statusOf(i, n)] ?? 0) + 1;
  return counts;
}

test('status --json, status and logs of a 10,000-server update: every count, a sample of servers, one server\'s journal', async (t) => {
  const db = join(tempDirFor(t, 'agent-update-scale-'), 'big.db');
  const store = openStore(db);
  await writeSyntheticUpdate(store, 'big', N);
  await writeSyntheticUpdate(store, 'small', 7, { journal: false });
  await store.close();

  const doc = await cliStatusJson(db, 'big');
  assert.deepEqual(doc.counts, expectedCounts(N));
  assert.equal(doc.servers.length, N);
  assert.deepEqual(doc.servers.map((s) => s.name), Array.from({ length: N }, (_, i) => nameOf(i)), 'every server, in plan order');
  for (const i of [0, 3, 5, 7, 11, 5999, 6000, 6001, N - 1]) {
    const s = doc.servers[i]!;
    assert.equal(s.status, statusOf(i, N), `${s.name}'s status`);
    assert.equal(s.toCommit, ['success', 'skipped', 'running'].includes(s.status) ? SYNTH_TO : null, `${s.name}'s toCommit`);
    assert.equal(s.fromCommit, s.status === 'unreachable' ? null : SYNTH_FROM, `${s.name}'s fromCommit`);
  }
  assert.match(doc.servers[7]!.error ?? '', /rolled back/);
  assert.equal(doc.servers[6000]!.step, 'verify');
  // The budget counts the rolled-back and failed servers of the whole update.
  const counts = expectedCounts(N);
  assert.equal(doc.budget?.used, (counts['rolled-back'] ?? 0) + (counts.failed ?? 0));
  assert.equal(doc.budget?.total, N);

  // The list: each update's counts (from SQL), the same as its own document's.
  const list = await cli(['status', '--json'], { db });
  assert.equal(list.code, 0, list.stderr);
  const listed = (JSON.parse(list.stdout) as { updates: Array<{ name: string; counts: Record<string, number>; servers?: unknown }> }).updates;
  assert.deepEqual(listed.map((u) => u.name), ['big', 'small']);
  assert.deepEqual(listed[0]!.counts, doc.counts);
  assert.deepEqual(listed[1]!.counts, expectedCounts(7));
  assert.equal(listed[0]!.servers, undefined, 'the list carries no servers');
  const text = await cli(['status', '--no-color'], { db });
  const line = (c: Record<string, number>) =>
    `${c.total} servers: ` + Object.entries(c).filter(([k]) => k !== 'total').map(([k, v]) => `${v} ${k}`).join(', ');
  assert.ok(text.stdout.includes(line(doc.counts)), `${text.stdout}\n--- has no ${line(doc.counts)}`);

  // The table: one row per server.
  const table = await cli(['status', 'big', '--no-color'], { db });
  assert.equal(table.code, 0, table.stderr);
  assert.equal(table.stdout.split('\n').filter((l) => /^web-\d{5} /.test(l)).length, N);

  // logs: every server's block, each with its own steps only.
  const logs = await cli(['logs', 'big', '--no-color'], { db });
  assert.equal(logs.code, 0, logs.stderr);
  const blocks = logs.stdout.split(/^== /m).slice(1);
  assert.equal(blocks.length, N);
  assert.match(blocks[7]!, /^web-00008 \(deploy@10\.0\.0\.7:22\) rolled-back/);
  assert.equal((blocks[7]!.match(/^-- /gm) ?? []).length, 7, blocks[7]);
  assert.equal((blocks[N - 1]!.match(/^-- /gm) ?? []).length, 0, 'a pending server ran nothing');
  const one = await cli(['logs', 'big', '--server', nameOf(7), '--json'], { db });
  const server = (JSON.parse(one.stdout) as { servers: Array<{ name: string; steps: Array<{ phase: string }> }> }).servers;
  assert.deepEqual(server.map((s) => s.name), [nameOf(7)]);
  assert.deepEqual(server[0]!.steps.map((s) => s.phase), ['probe', 'lock', 'update', 'update', 'restart', 'health', 'health']);
});

test('the Store\'s queries of an update, its servers, journal and events use indexes, not a scan of the table', async (t) => {
  const db = join(tempDirFor(t, 'agent-update-scale-'), 'q.db');
  const store = openStore(db);
  await writeSyntheticUpdate(store, 'a', 50);
  await writeSyntheticUpdate(store, 'b', 50);
  // What status, logs and a rollout ask; then every statement the Store compiled (these and the
  // ones writing the updates above) is explained on a connection of its own.
  const u = await store.getUpdate('a');
  const servers = await store.getServers('a');
  await store.getServer(servers[3]!.id);
  await store.getJournal('a');
  await store.getJournal('a', servers[7]!.name);
  await store.getEvents('a');
  await store.budgetUse(u);
  await store.busyAccount(servers[0]!);
  await store.countsByUpdate();
  await store.findServers(servers[0]!.name);
  await store.setServerStatus(servers[40]!.id, 'running', { step: 'update' }); // pending → running
  await store.endCommand(await store.beginCommand(servers[0]!, 'update', 'true'), { code: 0, stdout: '', stderr: '', error: null });
  const seen = store.compiledStatements();
  assert.ok(seen.length >= 10, `${seen.length} statements seen`);

  const scans: string[] = [];
  withSqliteFile(db, (d) => {
    for (const sql of seen) {
      const args = (sql.match(/\?/g) ?? []).map(() => 'a');
      const plan = (d.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...args) as Array<{ detail: string }>).map((r) => r.detail);
      // A scan of a table is refused; a scan of an index (every group's counts) is not.
      for (const p of plan) if (/^SCAN (steps|servers|events|updates)\b/.test(p) && !/USING (COVERING )?INDEX/.test(p)) scans.push(`${p}   <- ${sql.replace(/\s+/g, ' ')}`);
    }
  }, { readonly: true });
  await store.close();
  assert.deepEqual(scans, []);
});
