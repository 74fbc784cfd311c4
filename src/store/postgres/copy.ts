/** `db copy` on PostgreSQL: the whole store read in one transaction, or written into an empty one in one transaction (store/copy.ts). */
import { checkDump, COPY_ORDER, COPY_TABLES, ID_TABLES, insertRows, notEmpty, plainRow, selectAll, valuesOf, type CopyTable, type StoreDump, type TableCounts } from '../copy.js';
import type { Q } from './conn.js';

/** At most this many parameters in one INSERT (the protocol allows 65,535). */
const MAX_PARAMS = 30_000;

/**
 * Every row of every table and the identity, in one transaction under the store's write lock:
 * every writing transaction of every process takes that lock first, so none commits between the
 * reads and the tables agree with each other.
 */
export function exportAll(q: Q): Promise<StoreDump> {
  return q.atomic(async (t) => {
    const tables = {} as StoreDump['tables'];
    for (const table of COPY_ORDER) tables[table] = (await t.rows(selectAll(table))).map((r) => plainRow(table, r));
    const [id] = await t.rows("SELECT value FROM meta WHERE key = 'db_id'");
    return { dbId: id!.value as string, tables };
  });
}

/** How many rows each table holds. */
export async function tableCounts(q: Q): Promise<TableCounts> {
  const counts = {} as TableCounts;
  for (const t of COPY_ORDER) counts[t] = Number((await q.rows(`SELECT COUNT(*) AS n FROM ${t}`))[0]!.n);
  return counts;
}

/**
 * `dump` written into this store, which must hold no row yet (a UsageError, exit 2, otherwise),
 * ids as they are, and its identity made the dump's: one transaction, all or nothing. Each
 * identity column then continues after the largest id written, so the rows inserted later do not
 * collide with the copied ones.
 */
export function importAll(q: Q, dump: StoreDump): Promise<void> {
  checkDump(dump);
  return q.atomic(async (t) => {
    const refused = notEmpty(t.location, await tableCounts(t));
    if (refused) throw refused;
    for (const table of COPY_ORDER) await insertAll(t, table, dump.tables[table]);
    await t.run("INSERT INTO meta (key, value) VALUES ('db_id', ?) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", [dump.dbId]);
    for (const table of ID_TABLES) {
      await t.rows(`SELECT setval(pg_get_serial_sequence('${table}', 'id'), COALESCE(MAX(id), 0) + 1, false) FROM ${table}`);
    }
  });
}

/** The rows of `table`, many to an INSERT. */
async function insertAll(q: Q, table: CopyTable, rows: StoreDump['tables'][CopyTable]): Promise<void> {
  const per = Math.max(1, Math.floor(MAX_PARAMS / COPY_TABLES[table].length));
  for (let i = 0; i < rows.length; i += per) {
    const chunk = rows.slice(i, i + per);
    await q.run(insertRows(table, chunk.length), chunk.flatMap((r) => valuesOf(table, r)));
  }
}
