/**
 * The event stream of `start`/`resume --json` (docs/reference/events.md): one JSON object
 * per line, written as things happen, each with the schema version `v`, its `type`, a timestamp
 * `at` (ISO 8601, UTC) and the `update` (and `server`) it concerns. The last line is a `result`
 * (or an `error`): a script can read only that one.
 *
 * The `v` rule: fields may be added within v1; removing a field or changing what one means
 * bumps `v`. Text that came from a server is cut to a bounded size, and every line is
 * terminal-safe (terminalSafeJson): a `tail -f` of the stream cannot drive a terminal.
 */
import { ConfigError, type ConfigProblem } from '../errors.js';
import type { RolloutEvent, ServerCounts } from '../rollout/events.js';
import type { UpdateJson } from './status-json.js';
import { terminalSafeJson } from './visible.js';

export const NDJSON_VERSION = 1;

/** The most characters of one text field in an event (a command, an error, health output). */
export const MAX_FIELD = 2000;

/** `text`, or its head and tail around a marker saying how much was cut, at most about `max` characters. */
export function clip(text: string, max = MAX_FIELD): string {
  if (text.length <= max) return text;
  const keep = Math.max(0, max - 40);
  const head = Math.ceil(keep / 2);
  const tail = keep - head;
  return `${text.slice(0, head)}…[${text.length - keep} characters cut]…${tail > 0 ? text.slice(-tail) : ''}`;
}

/** One object as one line of NDJSON: compact, terminal-safe, newline-terminated. */
export function ndjsonLine(value: unknown): string {
  return terminalSafeJson(JSON.stringify(value)) + '\n';
}

/** Text fields an event may carry, cut to MAX_FIELD (the rest are numbers, names, commits). */
const TEXT_FIELDS = ['command', 'error', 'output', 'message', 'holder', 'target'] as const;

/** An engine event as its NDJSON object: `v`, `type`, `at`, `update`, `server` first, then the rest. */
export function eventObject(e: RolloutEvent, at: Date): Record<string, unknown> {
  const { type, update, ...rest } = e as RolloutEvent & { server?: string | null };
  const server = rest.server;
  delete rest.server;
  const fields: Record<string, unknown> = { ...rest };
  for (const k of TEXT_FIELDS) {
    const value = fields[k];
    if (typeof value === 'string') fields[k] = clip(value);
  }
  return { v: NDJSON_VERSION, type, at: at.toISOString(), update, ...(server != null ? { server } : {}), ...fields };
}

/** How an update ended when the command could not finish it itself (busy, interrupted, …). */
export interface UpdateError {
  update: string;
  error: string;
  exitCode: number;
}

/**
 * The last line of `start`/`resume --json`. `exitCode` is the command's; `updates` the status
 * document of each update named (as `status NAME --json` shows it). With one update its `update`,
 * `status`, `reason` and `counts` are at the top level too; with several, `counts` adds theirs up.
 */
/** A server that ended failed, rolled-back or fatal in the run (`failedInRun` of the result line: why exit 5). */
export interface FailedInRun {
  update: string;
  server: string;
  status: string;
}

export interface ResultExtra {
  errors?: UpdateError[];
  notStarted?: string[];
  warnings?: string[];
  failedInRun?: FailedInRun[];
}

export function resultObject(at: Date, exitCode: number, updates: UpdateJson[], extra: ResultExtra = {}): Record<string, unknown> {
  const one = updates.length === 1 ? updates[0]! : null;
  const counts: ServerCounts = one ? one.counts : sumCounts(updates.map((u) => u.counts));
  const errors = (extra.errors ?? []).map((e) => ({ ...e, error: clip(e.error) }));
  return {
    v: NDJSON_VERSION,
    type: 'result',
    at: at.toISOString(),
    ...(one ? { update: one.name, status: one.status, reason: one.reason } : {}),
    exitCode,
    counts,
    ...(one && errors[0] ? { error: errors[0].error } : {}),
    ...(errors.length ? { errors } : {}),
    ...(extra.notStarted?.length ? { notStarted: extra.notStarted } : {}),
    ...(extra.warnings?.length ? { warnings: extra.warnings.map((w) => clip(w)) } : {}),
    ...(extra.failedInRun?.length ? { failedInRun: extra.failedInRun } : {}),
    updates,
  };
}

function sumCounts(all: ServerCounts[]): ServerCounts {
  const sum: ServerCounts = { total: 0 };
  for (const c of all) for (const [k, n] of Object.entries(c)) sum[k] = (sum[k] ?? 0) + n;
  return sum;
}

/**
 * The error that ended a command, as `--json` prints it on stdout (the text goes to stderr too):
 * `{"v":1,"type":"error","at":…,"error":"…","exitCode":N}`, plus `problems` for a config error.
 * `message` is the text without the `agent-update: ` prefix and without a stack trace.
 */
export function errorObject(e: unknown, exitCode: number, message: string, at: Date): Record<string, unknown> {
  const problems: ConfigProblem[] | null = e instanceof ConfigError ? e.problems : null;
  return {
    v: NDJSON_VERSION,
    type: 'error',
    at: at.toISOString(),
    error: clip(message, 8 * MAX_FIELD),
    exitCode,
    ...(problems ? { problems: problems.map((p) => ({ file: p.file ?? (e as ConfigError).file, line: p.line ?? null, path: p.path, message: p.message })) } : {}),
  };
}

/**
 * Writes the stream: one write per line, so each line reaches a pipe whole, as it happens. A
 * reader that goes away (`| head -1`: EPIPE) stops the stream, never the rollout under it
 * (the listener stays: an EPIPE can arrive after the last write).
 */
export class NdjsonWriter {
  private gone = false;
  private readonly onError = () => {
    this.gone = true;
  };

  constructor(
    private readonly out: NodeJS.WritableStream,
    private readonly now: () => Date,
  ) {
    out.on('error', this.onError);
  }

  private write(line: string): void {
    if (this.gone) return;
    try {
      this.out.write(line);
    } catch {
      this.gone = true;
    }
  }

  /** `at`: when it happened (default now), given when the same event goes elsewhere too (hooks) */
  event(e: RolloutEvent, at: Date = this.now()): void {
    this.write(ndjsonLine(eventObject(e, at)));
  }

  result(exitCode: number, updates: UpdateJson[], extra?: ResultExtra): void {
    this.write(ndjsonLine(resultObject(this.now(), exitCode, updates, extra)));
  }
}
