/**
 * A PostgreSQL plan database as the user names it: `postgres://` or `postgresql://` URL, whose
 * `schema` option chooses the schema (default `agent_update`). Passwords (in the URL or its
 * `password` option) are never shown: messages name the URL without them, suggested command lines
 * carry it without them (the password comes from PGPASSWORD or ~/.pgpass, as psql's does).
 */
import { UsageError } from '../../errors.js';

export const DEFAULT_SCHEMA = 'agent_update';

/** Whether `db` (a --db value) names a PostgreSQL database rather than a SQLite file. */
export function isPostgresUrl(db: string): boolean {
  return /^postgres(ql)?:\/\//i.test(db);
}

export interface PgTarget {
  /** the URL given to the client library: the user's, without our own `schema` option */
  url: string;
  schema: string;
  /** the URL as a suggested command line may carry it: everything but the password */
  shown: string;
  /** where the plan store is, as messages name it: no password, no query string */
  location: string;
}

/** `db` taken apart, or a UsageError (exit 2) that does not repeat the password. */
export function parsePgUrl(db: string): PgTarget {
  let u: URL;
  try {
    u = new URL(db);
  } catch {
    throw new UsageError(`--db: ${JSON.stringify(db.replace(/:[^:@/]*@/, ':***@'))} is not a valid postgres:// URL`);
  }
  const schema = u.searchParams.get('schema') ?? DEFAULT_SCHEMA;
  checkSchemaName(schema);
  const client = new URL(u.toString());
  client.searchParams.delete('schema');
  const shown = new URL(u.toString());
  shown.password = '';
  shown.searchParams.delete('password');
  return { url: client.toString(), schema, shown: shown.toString(), location: `${redactUrl(db)} (schema ${schema})` };
}

export function checkSchemaName(schema: string): void {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
    throw new UsageError(`the PostgreSQL schema name ${JSON.stringify(schema)} is not a plain lower-case name (letters, digits, _; at most 63)`);
  }
}

/** `url` as messages may name it: no password, no query string (which may carry one). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.password = '';
    u.search = '';
    return u.toString();
  } catch {
    return 'postgres://(an unreadable URL)';
  }
}

/** `message` with the URL's password taken out, wherever the client library repeated it. */
export function scrub(message: string, url: string): string {
  const secrets: string[] = [];
  try {
    const u = new URL(url);
    if (u.password) secrets.push(decodeURIComponent(u.password), u.password);
    const p = u.searchParams.get('password');
    if (p) secrets.push(p);
  } catch {
    // nothing to take out
  }
  let out = message;
  for (const s of secrets) if (s) out = out.split(s).join('***');
  return out;
}
