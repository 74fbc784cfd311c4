/**
 * The PostgreSQL client library (`pg`), loaded once for src/store/postgres. On Node 20, where
 * `navigator` does not exist, loading it asks whether this is a Cloudflare Worker by building a
 * fetch `Response`, which loads Node's whole fetch implementation: about 20 ms of every command's
 * start on a PostgreSQL plan. A `navigator` that says Node.js (as Node 21 and later have) is
 * there while it loads, and only then; nothing else sees it.
 */
import { createRequire } from 'node:module';
import type pgModule from 'pg';

const require = createRequire(import.meta.url);

function load(): typeof pgModule {
  if ('navigator' in globalThis) return require('pg') as typeof pgModule;
  Object.defineProperty(globalThis, 'navigator', { value: { userAgent: 'Node.js' }, configurable: true, writable: true });
  try {
    return require('pg') as typeof pgModule;
  } finally {
    delete (globalThis as { navigator?: unknown }).navigator;
  }
}

const pg = load();
export default pg;
