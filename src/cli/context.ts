import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import chalk from 'chalk';
import { systemClock, type Clock } from '../clock.js';
import { UsageError } from '../errors.js';
import { shellQuote } from '../util/shell.js';
import { setSuggestPrefix, suggest } from '../util/suggest.js';
import { Reporter } from '../output/reporter.js';
import { terminalSafeJson } from '../output/visible.js';
import { Ssh2Transport } from '../ssh/ssh2-transport.js';
import type { Transport } from '../ssh/transport.js';
import { Store } from '../store/store.js';

export interface GlobalOptions {
  db?: string;
  json?: boolean;
  color?: boolean;
  quiet?: boolean;
  verbose?: boolean;
}

/** What every command needs; built once per invocation, closed at the end. */
export class CliContext {
  private store_: Store | null = null;
  private transport_: Transport | null = null;
  readonly clock: Clock = systemClock;

  constructor(
    readonly opts: GlobalOptions,
    readonly out: NodeJS.WriteStream = process.stdout,
    readonly err: NodeJS.WriteStream = process.stderr,
  ) {
    if (opts.color === false || !out.isTTY || process.env.NO_COLOR) chalk.level = 0;
    // Every suggested command line (the engine's too) carries the --db of this invocation.
    setSuggestPrefix(`agent-update${opts.db !== undefined ? ` --db ${shellQuote(opts.db)}` : ''}`);
  }

  get dbPath(): string {
    return resolve(this.opts.db ?? process.env.AGENT_UPDATE_DB ?? 'agent-update.db');
  }

  /** The plan database; `create` only for `plan`, so a typo in --db never leaves an empty file. */
  store(create = false): Store {
    if (!this.store_) {
      if (!create && !existsSync(this.dbPath)) {
        throw new UsageError(`no plan database at ${this.dbPath}: run \`${suggest(`plan -c FILE`)}\` first, or pass --db PATH`);
      }
      this.store_ = new Store(this.dbPath);
    }
    return this.store_;
  }

  transport(): Transport {
    this.transport_ ??= new Ssh2Transport();
    return this.transport_;
  }

  /**
   * Progress for humans: on stdout, or on stderr when stdout carries JSON. A live view redrawn in
   * place when that stream is a terminal that reports its width (script(1) and some CI runners
   * report 0 columns) and TERM is not `dumb`; plain lines with timestamps otherwise.
   */
  async reporter(prefix: boolean): Promise<Reporter> {
    const stream = this.opts.json ? this.err : this.out;
    const live = Boolean(stream.isTTY) && (stream.columns ?? 0) > 0 && process.env.TERM !== 'dumb' && !this.opts.quiet;
    return Promise.resolve(
      new Reporter({
        stream,
        quiet: Boolean(this.opts.quiet),
        live,
        prefix,
        verbose: Boolean(this.opts.verbose),
      }),
    );
  }

  /** A command line to suggest, with the --db this invocation used so it works when pasted. */
  cmd(rest: string): string {
    return suggest(rest);
  }

  print(text: string): void {
    if (!this.opts.quiet) this.out.write(text + '\n');
  }

  /** JSON on stdout; the few characters JSON leaves raw that a terminal acts on are \u-escaped. */
  printJson(value: unknown): void {
    this.out.write(terminalSafeJson(JSON.stringify(value, null, 2)) + '\n');
  }

  close(): void {
    this.transport_?.close();
    this.store_?.close();
  }
}

export function parseCount(flag: string, value: string | undefined, min = 0): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < min) {
    throw new UsageError(`${flag} must be a whole number${min > 0 ? ` of at least ${min}` : ''}, not ${JSON.stringify(value)}`);
  }
  return Number(value);
}
