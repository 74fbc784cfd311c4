import { createRequire } from 'node:module';
import type Database from 'better-sqlite3';
import { UsageError } from '../../errors.js';
import { MIGRATIONS } from './schema.js';

/**
 * Open `path` as a plan database, WAL, `synchronous=FULL`, migrated to the latest schema; or
 * refuse it (exit 2) without having changed it.
 */
export function openDatabase(path: string): Database.Database {
  const db = openChecked(path);
  try {
    useWal(db);
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    migrate(db, path);
    return db;
  } catch (e) {
    db.close();
    throw e;
  }
}

/**
 * Open `path`, or refuse it (exit 2) without having changed it: a folder that does not exist, a
 * file that is not SQLite, or another program's SQLite database (which switching to WAL and
 * adding our tables would alter).
 */
function openChecked(path: string): Database.Database {
  let db: Database.Database;
  try {
    // Loaded here, not imported: `--help` and the commands that never open a database do not
    // pay for the module (cold start).
    const open = createRequire(import.meta.url)('better-sqlite3') as typeof Database;
    db = new open(path, { timeout: 10_000 });
  } catch (e) {
    throw new UsageError(`cannot open the plan database ${path}: ${(e as Error).message}`);
  }
  try {
    // One read transaction, so both come from the same snapshot: another process may be creating
    // the tables of this new database right now, and its version and tables land together.
    const { version, tables } = db.transaction(() => ({
      version: db.pragma('user_version', { simple: true }) as number,
      tables: db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all() as string[],
    }))();
    if (version === 0 && tables.length > 0) {
      throw new UsageError(
        `${path} is a SQLite database of something else (tables: ${tables.slice(0, 5).join(', ')}${tables.length > 5 ? ', …' : ''}), ` +
          'not an agent-update plan; pass --db a new or agent-update file',
      );
    }
    return db;
  } catch (e) {
    db.close();
    if (e instanceof UsageError) throw e;
    const code = (e as { code?: string }).code;
    if (code === 'SQLITE_NOTADB') throw new UsageError(`${path} is not a SQLite database, so not an agent-update plan; check --db`);
    throw new UsageError(`cannot read the plan database ${path}: ${(e as Error).message}`);
  }
}

/**
 * Switch to WAL, unless it is already. Changing the journal mode does not wait on SQLite's busy
 * timeout: two processes opening a new database at once can get SQLITE_BUSY from it, so it is
 * tried again for a while (the other one is switching it itself).
 */
function useWal(db: Database.Database): void {
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (let attempt = 0; ; attempt++) {
    try {
      if (String(db.pragma('journal_mode', { simple: true })).toLowerCase() === 'wal') return;
      db.pragma('journal_mode = WAL');
      return;
    } catch (e) {
      if ((e as { code?: string }).code !== 'SQLITE_BUSY' || attempt >= 400) throw e;
      Atomics.wait(pause, 0, 0, 25);
    }
  }
}

/**
 * Bring the schema up to date. The version is read inside the write transaction that applies
 * the migrations: two processes opening a new database at once then run them one after the
 * other, and the second finds nothing left to do (reading it before, both would create the
 * tables and one would fail).
 */
function migrate(db: Database.Database, path: string): void {
  const current = () => db.pragma('user_version', { simple: true }) as number;
  const tooNew = (version: number) =>
    new UsageError(`${path} was written by a newer agent-update (schema ${version}, this one knows ${MIGRATIONS.length}); upgrade agent-update`);
  // Up to date (the usual case): no write transaction, so readers never queue behind writers.
  const seen = current();
  if (seen > MIGRATIONS.length) throw tooNew(seen);
  if (seen === MIGRATIONS.length) return;
  db.transaction(() => {
    const version = current();
    if (version > MIGRATIONS.length) throw tooNew(version);
    for (let v = version; v < MIGRATIONS.length; v++) db.exec(MIGRATIONS[v]!);
    db.pragma(`user_version = ${MIGRATIONS.length}`);
  }).immediate();
}

/** This database's identity, named in the locks it puts on servers (migration 2 made it). */
export function readDbId(db: Database.Database): string {
  return db.prepare("SELECT value FROM meta WHERE key = 'db_id'").pluck().get() as string;
}
