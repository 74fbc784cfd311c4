import { existsSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import chalk from 'chalk';
import { systemClock, type Clock } from '../clock.js';
import { systemLiveness, type Liveness } from '../liveness.js';
import { UsageError } from '../errors.js';
import { formatDuration, parseDuration } from '../util/duration.js';
import { shellQuote } from '../util/shell.js';
import { NPX_NOTE, runThroughNpx, selfCommand } from '../util/invocation.js';
import { setSuggestPrefix, suggest } from '../util/suggest.js';
import type { Advice } from '../output/advice.js';
import { Reporter } from '../output/reporter.js';
import type { Width } from '../output/fit.js';
import { terminalSafeJson } from '../output/visible.js';
import type { Transport } from '../ssh/transport.js';
import type { Store } from '../store/port.js';
import { SqliteStore } from '../store/sqlite/store.js';
import { isPostgresUrl, parsePgUrl, type PgTarget } from '../store/postgres/url.js';

export interface GlobalOptions {
  db?: string;
  json?: boolean;
  color?: boolean;
  quiet?: boolean;
  verbose?: boolean;
  /** `--wide` of plan, status, start and resume (a command's own option, seen here through optsWithGlobals) */
  wide?: boolean;
}

/** What every command needs; built once per invocation, closed at the end. */
export class CliContext {
  private store_: Store | null = null;
  private transport_: Transport | null = null;
  private dbChoice_: DbChoice | null = null;
  private announced = false;
  readonly clock: Clock = systemClock;
  readonly liveness: Liveness = systemLiveness;
  /** A line for the person at the terminal that may come at any time (on stderr; `start` puts it above its live view). */
  notify: (text: string) => void = (text) => this.err.write(`${text}\n`);
  /** What goes on when stdout is closed under the command (`| head`): said on stderr then (main.ts guardStdio). */
  goesOn = 'the command goes on to its end';

  constructor(
    readonly opts: GlobalOptions,
    readonly out: NodeJS.WriteStream = process.stdout,
    readonly err: NodeJS.WriteStream = process.stderr,
  ) {
    if (opts.color === false || !out.isTTY || process.env.NO_COLOR) chalk.level = 0;
    // Every suggested command line (the engine's too) carries the --db of this invocation.
    // It starts the way this agent-update was run (util/invocation.ts selfCommand).
    // A postgres:// URL is repeated without its password (which PGPASSWORD or ~/.pgpass then supply).
    const db = opts.db === undefined ? undefined : isPostgresUrl(opts.db) ? parsePgUrl(opts.db).shown : opts.db;
    setSuggestPrefix(`${selfCommand()}${db !== undefined ? ` --db ${shellQuote(db)}` : ''}`);
  }

  /** Where the plan database is and what chose it (see defaultDb). */
  get dbChoice(): DbChoice {
    this.dbChoice_ ??= chooseDb(this.opts.db, process.env);
    return this.dbChoice_;
  }

  /**
   * The plan database; `create` only for `plan`, so a typo in --db never leaves an empty file.
   * `plan` also makes the per-user directory (0700) when the default database is new.
   */
  async store(create = false): Promise<Store> {
    if (!this.store_) {
      const choice = this.dbChoice;
      if (choice.kind === 'postgres') {
        // loaded only for a PostgreSQL plan: the commands on a file do not pay for the client library
        const { PgStore } = await import('../store/postgres/store.js');
        const where = choice.target.location;
        this.store_ = await PgStore.open(choice.target.url, {
          clock: this.clock,
          schema: choice.target.schema,
          create,
          retryForMs: dbRetryOf(process.env),
          notice: (n) =>
            this.notify(
              n.kind === 'unreachable'
                ? `plan database ${where} unreachable (${n.error}): nothing is sent to a server until it answers; retrying for up to ${formatDuration(n.retryForMs)} ($AGENT_UPDATE_DB_RETRY)`
                : `plan database ${where} reachable again after ${formatDuration(Math.round(n.afterMs / 100) * 100)}; going on`,
            ),
        });
        return this.store_;
      }
      const { path, source } = choice;
      if (!create && !existsSync(path)) {
        throw new UsageError(
          `no plan database at ${path} (${describeDbSource(source)}): run \`${suggest(`plan -c FILE`)}\` first, ` +
            `or pass --db PATH (or set $AGENT_UPDATE_DB) to use another`,
        );
      }
      if (create && source !== '--db' && source !== '$AGENT_UPDATE_DB') mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      this.store_ = new SqliteStore(path, { clock: this.clock });
    }
    return this.store_;
  }

  /**
   * For a command that writes: one line on stderr saying which database it wrote to (stdout
   * stays the command's own output, pure JSON with --json). Once per invocation; not with -q.
   */
  announceDb(): void {
    if (this.announced || this.opts.quiet) return;
    this.announced = true;
    const choice = this.dbChoice;
    this.err.write(`database: ${dbDisplay(choice)}${choice.source === '--db' ? '' : ` (${describeDbSource(choice.source)})`}\n`);
  }

  /** Whether the plan database exists already (a file, or a schema that holds a plan store), without creating it. */
  async dbExists(): Promise<boolean> {
    const choice = this.dbChoice;
    if (choice.kind === 'sqlite') return existsSync(choice.path);
    if (this.store_) return true;
    try {
      await this.store(false);
      return true;
    } catch (e) {
      if (e instanceof UsageError && /^no plan store at /.test(e.message)) return false;
      throw e;
    }
  }

  /**
   * For a command that runs a rollout (start, resume, auto): one line on stderr when it was run
   * through npx, which stands between the person and this process (util/invocation.ts). Not with -q.
   */
  warnIfUnderNpx(): void {
    if (this.opts.quiet || !runThroughNpx()) return;
    this.err.write(`note: ${NPX_NOTE}\n`);
  }

  /**
   * The SSH transport, its modules loaded on first use: the commands that never connect (status,
   * logs, pause, history) do not load them.
   */
  async transport(): Promise<Transport> {
    if (this.transport_ === null) {
      const { Ssh2Transport } = await import('../ssh/ssh2-transport.js');
      this.transport_ ??= new Ssh2Transport();
    }
    return this.transport_;
  }

  /**
   * Progress for humans: on stdout, or on stderr when stdout carries JSON. A live view redrawn in
   * place when that stream is a terminal that reports its width (script(1) and some CI runners
   * report 0 columns) and TERM is not `dumb`; plain lines with timestamps otherwise.
   */
  async reporter(prefix: boolean, advise?: (update: string) => Advice): Promise<Reporter> {
    const stream = this.opts.json ? this.err : this.out;
    const live = Boolean(stream.isTTY) && (stream.columns ?? 0) > 0 && process.env.TERM !== 'dumb' && !this.opts.quiet;
    return Promise.resolve(
      new Reporter({
        stream,
        quiet: Boolean(this.opts.quiet),
        live,
        prefix,
        verbose: Boolean(this.opts.verbose),
        wide: Boolean(this.opts.wide),
        advise,
      }),
    );
  }

  /**
   * The columns the tables of plan and status are fitted to (output/fit.ts): stdout's width when
   * it is a terminal that reports one; null (every cell whole) with --wide or --json, or when
   * stdout is a pipe or a file. Read at each call: a watch follows a resize.
   */
  width(): Width {
    if (this.opts.wide || this.opts.json || !this.out.isTTY) return null;
    return this.out.columns && this.out.columns > 0 ? this.out.columns : null;
  }

  /** A command line to suggest, with the --db this invocation used so it works when pasted. */
  cmd(rest: string): string {
    return suggest(rest);
  }

  /**
   * The one line a script needs from a command run with -q (the update's name from `plan`, the
   * outcome from `start`): printed only with -q, since without it the normal output says the same.
   */
  result(line: string): void {
    if (this.opts.quiet && !this.opts.json) this.out.write(line + '\n');
  }

  print(text: string): void {
    if (!this.opts.quiet) this.out.write(text + '\n');
  }

  /** JSON on stdout; the few characters JSON leaves raw that a terminal acts on are \u-escaped. */
  printJson(value: unknown): void {
    this.out.write(terminalSafeJson(JSON.stringify(value, null, 2)) + '\n');
  }

  /** The transport, then the store once every call made on it has ended. */
  async close(): Promise<void> {
    this.transport_?.close();
    await this.store_?.close();
  }
}

export type DbSource = '--db' | '$AGENT_UPDATE_DB' | '$XDG_STATE_HOME' | 'home';

export type DbChoice = { kind: 'sqlite'; path: string; source: DbSource } | { kind: 'postgres'; target: PgTarget; source: DbSource };

/** The database as a person reads it: the file's path, or the URL without its password and the schema. */
export function dbDisplay(choice: DbChoice): string {
  return choice.kind === 'sqlite' ? choice.path : choice.target.location;
}

/**
 * The plan database: `--db`, else `$AGENT_UPDATE_DB`, else one per user in the XDG state
 * directory, `$XDG_STATE_HOME/agent-update/agent-update.db`, or `~/.local/state/…` when
 * XDG_STATE_HOME is unset, empty or relative (the XDG spec says to ignore a relative one).
 * The same from any directory, so `pause` and `status` find what `plan` wrote.
 */
export function chooseDb(db: string | undefined, env: NodeJS.ProcessEnv): DbChoice {
  const given = (value: string, source: DbSource): DbChoice =>
    isPostgresUrl(value) ? { kind: 'postgres', target: parsePgUrl(value), source } : { kind: 'sqlite', path: resolve(value), source };
  if (db !== undefined) return given(db, '--db');
  if (env.AGENT_UPDATE_DB) return given(env.AGENT_UPDATE_DB, '$AGENT_UPDATE_DB');
  const xdg = env.XDG_STATE_HOME;
  if (xdg && isAbsolute(xdg)) return { kind: 'sqlite', path: join(xdg, 'agent-update', 'agent-update.db'), source: '$XDG_STATE_HOME' };
  return { kind: 'sqlite', path: join(homedir(), '.local', 'state', 'agent-update', 'agent-update.db'), source: 'home' };
}

/**
 * How long a command waits for a PostgreSQL plan database that stopped answering before it gives
 * up (exit 1): `$AGENT_UPDATE_DB_RETRY`, a duration (`90s`, `2m`, or seconds), else the store's
 * default (60 s). 0: not at all.
 */
export function dbRetryOf(env: NodeJS.ProcessEnv): number | undefined {
  const value = env.AGENT_UPDATE_DB_RETRY;
  if (value === undefined || value === '') return undefined;
  const d = parseDuration(value);
  if (!d.ok) throw new UsageError(`$AGENT_UPDATE_DB_RETRY: ${d.error}`);
  return d.ms;
}

export function describeDbSource(source: DbSource): string {
  switch (source) {
    case '--db':
      return 'from --db';
    case '$AGENT_UPDATE_DB':
      return 'from $AGENT_UPDATE_DB';
    case '$XDG_STATE_HOME':
      return 'the per-user default, in $XDG_STATE_HOME';
    case 'home':
      return 'the per-user default, in ~/.local/state';
  }
}

export function parseCount(flag: string, value: string | undefined, min = 0): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < min) {
    throw new UsageError(`${flag} must be a whole number${min > 0 ? ` of at least ${min}` : ''}, not ${JSON.stringify(value)}`);
  }
  return Number(value);
}
