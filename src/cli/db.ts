/**
 * `db copy FROM TO`: a whole plan store moved between a SQLite file and a PostgreSQL schema (either
 * way, or file to file, schema to schema), every row with its id and the store's identity, so
 * `status`, `logs` and `history` read the same on both and the copy recognises the locks its
 * original's executors left on servers (store/copy.ts says why the identity goes with it).
 *
 * Every check comes before TO is created: FROM exists and is a plan store; nobody is at work on
 * it (an executor holding an update's lease, an `auto` planning); TO is new or holds nothing
 * (never a merge). The rows are then written in one transaction on TO: a failure leaves it empty
 * (a new SQLite file is removed again). FROM is only read (and brought to this version's schema,
 * as every command does).
 */
import { existsSync, rmSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { AppError, EXIT, UsageError } from '../errors.js';
import { autoRunIsDead } from '../rollout/lease.js';
import { describeLiveHolder, holderIsDead } from '../rollout/lease.js';
import { countsOf, type StoreDump } from '../store/copy.js';
import type { Store } from '../store/port.js';
import { scrub } from '../store/postgres/url.js';
import { toAutoRun, toUpdate } from '../store/rows.js';
import { SqliteStore } from '../store/sqlite/store.js';
import { selfCommand } from '../util/invocation.js';
import { plural } from '../util/plural.js';
import { shellQuote } from '../util/shell.js';
import { chooseDb, dbDisplay, type CliContext, type DbChoice } from './context.js';

type Which = 'FROM' | 'TO';

/** `db copy FROM TO [--json]`. */
export async function dbCopyCommand(ctx: CliContext, from: string, to: string): Promise<number> {
  if (ctx.opts.db !== undefined) throw new UsageError('db copy names both plan databases itself (FROM TO): leave out --db');
  const source = target(from, 'FROM');
  const dest = target(to, 'TO');
  if (sameStore(source, dest)) throw new UsageError(`FROM and TO are the same plan store (${dbDisplay(source)}); nothing was written`);

  const dump = await readSource(ctx, source);
  refuseWorkInProgress(ctx, dump, source);
  await writeTarget(ctx, dest, dump);

  const n = countsOf(dump);
  ctx.result(`copied ${plural(n.updates, 'update')} to ${dbDisplay(dest)}`);
  if (ctx.opts.json) {
    ctx.printJson({ from: dbDisplay(source), to: dbDisplay(dest), dbId: dump.dbId, ...n });
    return EXIT.ok;
  }
  ctx.print(
    `copied ${plural(n.updates, 'update')}, ${plural(n.servers, 'server row')}, ${plural(n.journal, 'journal entry', 'journal entries')}, ` +
      `${plural(n.events, 'event')}${n.freezes > 0 ? `, ${plural(n.autoRuns, 'auto run')} and ${plural(n.freezes, 'freeze')}` : ` and ${plural(n.autoRuns, 'auto run')}`} from ${dbDisplay(source)} to ${dbDisplay(dest)}, with its identity ${dump.dbId}`,
  );
  ctx.print(`from now on use only the copy (FROM is left as it was): ${commandOn(dest, 'status')}`);
  return EXIT.ok;
}

/** FROM or TO as --db reads it (a postgres:// URL or a file path), or a UsageError naming which. */
function target(arg: string, which: Which): DbChoice {
  if (arg === '') throw new UsageError(`${which} is empty: give a file path or a postgres:// URL`);
  try {
    return chooseDb(arg, {});
  } catch (e) {
    if (e instanceof UsageError) throw new UsageError(`${which}: ${e.message.replace(/^--db: /, '')}`);
    throw e;
  }
}

/** The same file, or the same schema of the same database (whoever logs in). */
function sameStore(a: DbChoice, b: DbChoice): boolean {
  if (a.kind === 'sqlite' && b.kind === 'sqlite') return a.path === b.path;
  if (a.kind === 'postgres' && b.kind === 'postgres') {
    const where = (c: typeof a) => {
      const u = new URL(c.target.url);
      return `${u.hostname.toLowerCase()}:${u.port || '5432'}${decodeURIComponent(u.pathname)}#${c.target.schema}`;
    };
    return where(a) === where(b);
  }
  return false;
}

/** `agent-update --db DB rest`, the password left out. */
function commandOn(c: DbChoice, rest: string): string {
  return `${selfCommand()} --db ${shellQuote(c.kind === 'sqlite' ? c.path : c.target.shown)} ${rest}`;
}

/** Open an existing plan store (a UsageError naming `which` when there is none); `create` makes it. */
async function open(ctx: CliContext, c: DbChoice, which: Which, create = false): Promise<Store> {
  if (c.kind === 'sqlite') {
    if (!create && !existsSync(c.path)) throw new UsageError(`${which}: no plan database at ${c.path}; nothing was written`);
    return new SqliteStore(c.path, { clock: ctx.clock });
  }
  const { PgStore } = await import('../store/postgres/store.js');
  try {
    return await PgStore.open(c.target.url, { clock: ctx.clock, schema: c.target.schema, create });
  } catch (e) {
    if (e instanceof UsageError && /^no plan store at /.test(e.message)) throw new UsageError(`${which}: no plan store at ${c.target.location}; nothing was written`);
    throw e;
  }
}

/** Every row of FROM, in one snapshot. */
async function readSource(ctx: CliContext, source: DbChoice): Promise<StoreDump> {
  const store = await open(ctx, source, 'FROM');
  try {
    return await store.exportAll();
  } finally {
    await store.close();
  }
}

/**
 * Refused while anyone is at work on FROM, as the copy saw it: an update whose lease a live
 * executor holds (what it does after the copy would be in FROM only), or an `auto` planning.
 */
function refuseWorkInProgress(ctx: CliContext, dump: StoreDump, source: DbChoice): void {
  const now = ctx.clock.now();
  for (const u of dump.tables.updates.map(toUpdate)) {
    if (u.lease && !holderIsDead(u.lease, now, ctx.liveness)) {
      throw new UsageError(
        `update ${u.name} in ${dbDisplay(source)} is ${u.status}, executed by ${describeLiveHolder(u.lease, now, ctx.liveness)}: ` +
          `pause it first (\`${commandOn(source, `pause ${u.name}`)}\`) and wait until it has stopped, or wait until it ends, then copy; nothing was written`,
      );
    }
  }
  for (const r of dump.tables.auto_runs.map(toAutoRun)) {
    if (r.endedAt === null && !autoRunIsDead(r, now, ctx.liveness)) {
      throw new UsageError(
        `an auto of ${r.configFile} is at work on ${dbDisplay(source)} (pid ${r.pid} on ${r.host}, since ${r.startedAt}): wait until it ends, then copy; nothing was written`,
      );
    }
  }
}

/**
 * TO checked (new, or a plan store that holds nothing), then created and `dump` written into it
 * in one transaction. A failure leaves it empty; a SQLite file made here is removed again.
 */
async function writeTarget(ctx: CliContext, dest: DbChoice, dump: StoreDump): Promise<void> {
  const existed = await checkTarget(ctx, dest);
  const store = await open(ctx, dest, 'TO', true);
  try {
    await store.importAll(dump);
  } catch (e) {
    await store.close().catch(() => undefined);
    // a file made here that another process did not write into meanwhile (that is the refusal's UsageError): gone again
    if (dest.kind === 'sqlite' && !existed && !(e instanceof UsageError)) {
      for (const f of [dest.path, `${dest.path}-wal`, `${dest.path}-shm`, `${dest.path}-journal`]) rmSync(f, { force: true });
    }
    if (e instanceof AppError) throw e;
    const why = dest.kind === 'postgres' ? scrub((e as Error).message, dest.target.url) : (e as Error).message;
    throw new AppError(`copying into ${dbDisplay(dest)} failed: ${why}; nothing was written to it`, EXIT.failure);
  }
  await store.close();
}

/** Whether TO exists already (a file, or a schema holding a plan store); refused when it holds anything. */
async function checkTarget(ctx: CliContext, dest: DbChoice): Promise<boolean> {
  if (dest.kind === 'sqlite') {
    if (!existsSync(dest.path)) {
      const dir = dirname(dest.path);
      if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`TO: the folder ${dir} does not exist; nothing was written`);
      return false;
    }
  }
  let store: Store;
  try {
    store = await open(ctx, dest, 'TO');
  } catch (e) {
    if (dest.kind === 'postgres' && e instanceof UsageError && /^TO: no plan store at /.test(e.message)) return false;
    throw e;
  }
  try {
    const updates = (await store.listUpdates()).length;
    const autoRuns = (await store.autoRuns()).length;
    const freezes = (await store.freezes()).length;
    if (updates > 0 || autoRuns > 0 || freezes > 0) {
      const what = updates > 0 ? plural(updates, 'update') : autoRuns > 0 ? plural(autoRuns, 'auto run') : plural(freezes, 'freeze');
      throw new UsageError(`TO: ${dbDisplay(dest)} already holds a plan store with ${what}: db copy writes only into a new or empty one (it never merges); nothing was written`);
    }
    return true;
  } finally {
    await store.close();
  }
}
