/** `db copy` on SQLite: the whole store read in one snapshot, or written into an empty one in one transaction (store/copy.ts). */
import { checkDump, COPY_ORDER, insertRows, notEmpty, plainRow, selectAll, valuesOf, type StoreDump, type TableCounts } from '../copy.js';
import type { Db } from './db.js';
import { readDbId } from './open.js';

/** Every row of every table and the identity, from one read transaction (one snapshot: a writer's commit is all in or all out). */
export function exportAll(db: Db): StoreDump {
  return db.conn.transaction(() => {
    const tables = {} as StoreDump['tables'];
    for (const t of COPY_ORDER) tables[t] = (db.conn.prepare(selectAll(t)).all() as Array<Record<string, unknown>>).map((r) => plainRow(t, r));
    return { dbId: readDbId(db.conn), tables };
  }).deferred();
}

/** How many rows each table holds. */
export function tableCounts(db: Db): TableCounts {
  const counts = {} as TableCounts;
  for (const t of COPY_ORDER) counts[t] = db.conn.prepare(`SELECT COUNT(*) FROM ${t}`).pluck().get() as number;
  return counts;
}

/**
 * `dump` written into this store, which must hold no row yet (a UsageError, exit 2, otherwise),
 * ids as they are, and its identity made the dump's: one IMMEDIATE transaction, all or nothing.
 */
export function importAll(db: Db, dump: StoreDump): void {
  checkDump(dump);
  db.tx(() => {
    const refused = notEmpty(db.path, tableCounts(db));
    if (refused) throw refused;
    for (const t of COPY_ORDER) {
      const insert = db.conn.prepare(insertRows(t, 1));
      for (const row of dump.tables[t]) insert.run(valuesOf(t, row));
    }
    db.conn.prepare("INSERT INTO meta (key, value) VALUES ('db_id', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value").run(dump.dbId);
  });
}
