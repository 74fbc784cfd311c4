import type Database from 'better-sqlite3';
import type { Clock } from '../../clock.js';

/**
 * One open plan database, as the per-area modules of the SQLite store use it: the connection, its
 * compiled statements and the clock every time it writes comes from. Private to src/store/sqlite.
 */
export class Db {
  private readonly statements = new Map<string, Database.Statement>();

  constructor(
    readonly conn: Database.Database,
    /** the file, as messages name it */
    readonly path: string,
    private readonly clock: Pick<Clock, 'now'>,
  ) {}

  /**
   * The prepared statement for `sql`, compiled once per connection: a rollout journals every
   * command and a plan every probe, and a status of a big update runs the same few queries.
   */
  stmt(sql: string): Database.Statement {
    let found = this.statements.get(sql);
    if (found === undefined) {
      found = this.conn.prepare(sql);
      this.statements.set(sql, found);
    }
    return found;
  }

  /** The SQL compiled so far, each statement once (test/store/scale.test.ts explains each). */
  compiled(): string[] {
    return [...this.statements.keys()];
  }

  /** Now, as every time this store writes is stamped. */
  iso(): string {
    return this.clock.now().toISOString();
  }

  /**
   * `fn` in one IMMEDIATE transaction (the write lock taken up front: no upgrade deadlocks), or
   * in a savepoint of the one already open.
   */
  tx<T>(fn: () => T): T {
    return this.conn.transaction(fn).immediate();
  }
}
