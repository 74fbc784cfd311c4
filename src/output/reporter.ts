import chalk from 'chalk';
import type { RolloutEvent } from '../rollout/events.js';
import { pausesOn } from '../rollout/hooks.js';
import type { Advice } from './advice.js';
import { formatDuration } from '../util/duration.js';
import { plural } from '../util/plural.js';
import { suggest } from '../util/suggest.js';
import { LiveArea, RANK, UpdateProgress, formatElapsed, formatEta, hostPort, overallParts } from './live.js';
import { displayWidth, fitParts, padTo, withSep, type Part, type Width } from './fit.js';
import { isClosed } from './closed.js';
import { colourStatus, short, someNames } from './text.js';
import { visibleLine } from './visible.js';

export interface ReporterOptions {
  /** where progress goes: stdout normally, stderr when stdout carries JSON */
  stream: NodeJS.WriteStream;
  /** only the outcome line of each update */
  quiet: boolean;
  /**
   * a live view redrawn in place at the bottom of the stream (a terminal that reports its
   * width); otherwise plain lines, each starting with a timestamp
   */
  live: boolean;
  /** several updates at once: prefix lines with the update's name, one live line per update */
  prefix: boolean;
  /** one line per remote command */
  verbose: boolean;
  /**
   * `--wide`: the live view's lines whole (the terminal wraps them); by default each is fitted to
   * the terminal, the step and what the server waits for kept (output/fit.ts)
   */
  wide?: boolean;
  /** the clock (ms since the epoch) for elapsed times, the ETA and timestamps; Date.now by default */
  now?: () => number;
  /** how often the live view redraws by itself (spinner, elapsed times), in ms; 0: only on events */
  tickMs?: number;
  /**
   * the warnings for an update that just stopped, read from what was recorded (output/advice.ts):
   * a rolled-back canary before a pause replaces the plain "continue with: resume" hint
   */
  advise?: (update: string) => Advice;
}

/** The agent.diagnose output of one server, as the run reported it (`diagnose` events). */
export interface Diagnosed {
  server: string;
  /** its outcome, once it finished (null: the run stopped before) */
  status: string | null;
  runs: Array<Extract<RolloutEvent, { type: 'diagnose' }>>;
}

/** Lines of each diagnose command's output in the end-of-run summary (its tail), and characters of each line. */
export const SUMMARY_DIAGNOSE_LINES = 10;
const SUMMARY_LINE_CHARS = 240;

/**
 * The end-of-run summary of what agent.diagnose found on each server that failed: per command,
 * how it ended and the last lines of its output (terminal-safe), then where the rest is.
 */
export function diagnosticsLines(update: string, servers: readonly Diagnosed[]): string[] {
  const out: string[] = [];
  for (const d of servers) {
    out.push(`diagnostics of ${chalk.bold(d.server)}${d.status ? ` (${colourStatus(d.status)})` : ''}, run after it failed (agent.diagnose):`);
    for (const r of d.runs) {
      const how = !r.ran ? visibleLine(r.error ?? 'not run') : r.code !== null ? `exit ${r.code}` : visibleLine(r.error ?? 'no exit status');
      out.push(`  $ ${visibleLine(r.command)}  ${chalk.dim(`→ ${how}`)}`);
      const lines = r.output === '' ? [] : r.output.split('\n');
      const shown = lines.length > SUMMARY_DIAGNOSE_LINES ? ['…', ...lines.slice(-SUMMARY_DIAGNOSE_LINES)] : lines;
      for (const l of shown) out.push(`    ${chalk.dim('|')} ${visibleLine(l.length > SUMMARY_LINE_CHARS ? `${l.slice(0, SUMMARY_LINE_CHARS)}…` : l)}`);
    }
    out.push(chalk.dim(`  the whole output: ${suggest(`logs ${update} --server ${d.server}`)}`));
  }
  return out;
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/** Without a terminal, a line about something still being waited for is repeated at most this often per server. */
export const PLAIN_REPEAT_MS = 10_000;

/** `2026-12-01T21:40:36Z`: the timestamp of a plain line (UTC, whole seconds). */
export function timestamp(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19) + 'Z';
}

/**
 * Turns engine events into what an operator reads. The engine itself never prints.
 *
 * In a terminal: the lines that stay (a server's outcome, an update's, warnings) scroll up above
 * a live area that is redrawn in place: the server in flight with its host:port, step and
 * elapsed time, and the progress line `k/N done · f failed · ETA 3m10s`; with several updates,
 * one line per update and an overall line. Without one (a pipe, CI): no redraws, every event
 * worth a line (steps, health waits at most every PLAIN_REPEAT_MS, outcomes) as a plain line
 * starting with a timestamp. Quiet: only the outcome line of each update, as it is.
 */
export class Reporter {
  private readonly now: () => number;
  private readonly area: LiveArea | null;
  /** by update, in the order they started */
  private readonly progress = new Map<string, UpdateProgress>();
  private timer: NodeJS.Timeout | null = null;
  private frame = 0;
  /** plain lines: when a repeated wait line was last printed, by update/server/kind */
  private readonly lastRepeat = new Map<string, number>();
  private readonly onResize = () => this.redraw();
  /** agent.diagnose output of this run, by update then server, for the end-of-run summary */
  private readonly diagnosed = new Map<string, Map<string, Diagnosed>>();

  constructor(private readonly o: ReporterOptions) {
    this.now = o.now ?? Date.now;
    this.area = o.live && !o.quiet ? new LiveArea(o.stream, Boolean(o.wide)) : null;
    if (this.area) o.stream.on('resize', this.onResize);
  }

  /** A line that stays: above the live area, or a plain line with its timestamp. */
  private line(text: string): void {
    if (this.o.quiet) return;
    if (this.area) this.area.above(text, this.frameLines());
    else this.o.stream.write(`${chalk.dim(timestamp(this.now()))} ${text}\n`);
  }

  /**
   * A message of the command's own (a Ctrl-C being handled) for stderr: above the live area when
   * there is one, so that area is not left half drawn on the same terminal; else on stderr as is
   * (also when the live area's stream was closed: output/closed.ts).
   */
  notice(text: string, stderr: NodeJS.WritableStream): void {
    if (this.area && !isClosed(this.o.stream)) this.area.above(text, this.frameLines());
    else stderr.write(`\n${text}\n`);
  }

  /** The one line a script needs: printed with --quiet too (then without a timestamp). */
  private outcome(text: string): void {
    if (this.o.quiet) this.o.stream.write(text + '\n');
    else this.line(text);
  }

  /** A plain line about a wait that goes on: the first one, then at most every PLAIN_REPEAT_MS. */
  private repeated(key: string, text: string): void {
    if (this.area) return;
    const now = this.now();
    const last = this.lastRepeat.get(key);
    if (last !== undefined && now - last < PLAIN_REPEAT_MS) return;
    this.lastRepeat.set(key, now);
    this.line(text);
  }

  private forgetRepeats(update: string, server: string): void {
    for (const k of this.lastRepeat.keys()) if (k.startsWith(`${update}\0${server}\0`)) this.lastRepeat.delete(k);
  }

  private tag(update: string): string {
    return this.o.prefix ? chalk.dim(`[${update}] `) : '';
  }

  /**
   * What the live area shows now: nothing once no update is running. Each line fitted to the
   * terminal (its width less one column, as the area cuts it): the parts that matter least give
   * way first (live.ts RANK), so a batch's line keeps its step and what its server waits for.
   */
  frameLines(): string[] {
    const all = [...this.progress.values()];
    const active = all.filter((p) => p.ended === null);
    if (active.length === 0) return [];
    const now = this.now();
    const width: Width = this.area && !this.o.wide ? this.area.columns - 1 : null;
    const spin: Part = { text: chalk.cyan(SPINNER[this.frame % SPINNER.length]) };
    if (!this.o.prefix) {
      const p = active[0]!;
      const server = p.serverParts(now);
      const summary = p.summaryParts(now);
      return server
        ? [fitParts([spin, ...withSep(server, ' ')], width), fitParts([{ text: ' ' }, ...withSep(summary, ' ')], width)]
        : [fitParts([spin, ...withSep(summary, ' ')], width)];
    }
    const label = plural(all.length, 'update');
    const nameWidth = Math.max(displayWidth(label), ...all.map((p) => displayWidth(p.update)));
    // the names padded to one column; on a narrow terminal the padding gives way (RANK.pad)
    const name = (s: string, shown: string): Part => ({ text: padTo(shown, nameWidth), sep: ' ', rank: RANK.pad, min: displayWidth(s), keep: true });
    const lines = active.map((p) => {
      const server = p.serverParts(now);
      return fitParts([spin, name(p.update, chalk.bold(p.update)), ...withSep(p.summaryParts(now), '  '), ...(server ? withSep(server, ' · ') : [])], width);
    });
    lines.push(fitParts([{ text: ' ' }, name(label, label), ...withSep(overallParts(all, now), '  ')], width));
    return lines;
  }

  /** Draw the live area again (the clock moved, or the terminal was resized); keeps the timer going while it shows anything. */
  redraw(): void {
    if (!this.area) return;
    const lines = this.frameLines();
    this.area.render(lines);
    const tick = this.o.tickMs ?? 100;
    if (lines.length > 0 && tick > 0 && !this.timer) {
      this.timer = setInterval(() => {
        this.frame++;
        this.redraw();
      }, tick);
      this.timer.unref();
    } else if (lines.length === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  readonly onEvent = (e: RolloutEvent): void => {
    const now = this.now();
    if (e.type === 'update-started' && !this.progress.has(e.update)) this.progress.set(e.update, new UpdateProgress(e.update));
    const p = this.progress.get(e.update);
    p?.apply(e, now);
    const t = this.tag(e.update);
    switch (e.type) {
      case 'probe':
        this.line(
          `${t}probe ${e.server}: ${colourStatus(e.status)}${e.commit ? ` at ${short(e.commit)}` : ''}${e.error ? ` — ${visibleLine(e.error)}` : ''}`,
        );
        break;
      case 'update-started':
        this.line(`${t}${e.takeover ? 'taking over' : e.resumed ? 'resuming' : 'starting'} ${chalk.bold(e.update)}: ${e.pending} of ${plural(e.total, 'server')} to go`);
        break;
      case 'takeover':
        this.line(`${t}${chalk.yellow('takeover')}: ${visibleLine(e.message)}`);
        break;
      case 'server-started':
        this.forgetRepeats(e.update, e.server);
        if (!this.area) this.line(`${t}[${e.index}/${e.total}] ${chalk.bold(e.server)} (${hostPort(e.host, e.port)})`);
        break;
      case 'server-step':
        this.forgetRepeats(e.update, e.server);
        if (!this.area) this.line(`${t}  ${e.server}: ${e.step}${e.hop !== undefined ? ` (hop ${e.hop}/${e.hops} → ${visibleLine(e.hopTo ?? '?')})` : ''}`);
        break;
      case 'reconnecting':
        if (e.attempt === 1) {
          this.line(`${t}  ${chalk.yellow('connection lost')} to ${e.server} (${visibleLine(e.error)}); reconnecting for up to ${formatDuration(e.limitMs)}`);
          this.lastRepeat.set(`${e.update}\0${e.server}\0reconnect`, now);
        } else {
          this.repeated(`${e.update}\0${e.server}\0reconnect`, `${t}  still reconnecting to ${e.server} (${formatElapsed(e.lostMs)}, try ${e.attempt})`);
        }
        break;
      case 'server-waiting':
        if (e.waitedMs === 0) {
          this.line(`${t}${chalk.yellow('waiting')} for ${chalk.bold(e.server)}: ${visibleLine(e.holder)} (at most ${formatDuration(e.limitMs)}, then this update pauses)`);
          this.lastRepeat.set(`${e.update}\0${e.server}\0busy`, now);
        } else {
          this.repeated(`${e.update}\0${e.server}\0busy`, `${t}  still waiting for ${e.server} (${formatElapsed(e.waitedMs)} of ${formatDuration(e.limitMs)})`);
        }
        break;
      case 'step-started':
        this.line(`${t}${chalk.bold(`step ${e.step} of ${e.steps}`)} begins: up to ${e.through} of ${plural(e.total, 'server')}`);
        break;
      case 'bake-started':
        // the live view counts it down; a plain line says it began
        if (!this.area) {
          const rest = e.leftMs < e.bakeMs ? ` (the rest of its ${formatDuration(e.bakeMs)})` : '';
          const which = e.servers.length === 0 ? 'no server' : someNames(e.servers);
          this.line(`${t}step ${e.step} of ${e.steps} done: baking ${formatEta(e.leftMs)}${rest}, re-checking ${which} every ${formatDuration(e.intervalMs)}`);
        }
        break;
      case 'bake-check':
        if (this.o.verbose && !this.area) this.line(`${t}  baking step ${e.step} of ${e.steps}: ${formatEta(e.leftMs)} left, every server healthy`);
        break;
      case 'step-promoted': {
        const by = e.by === 'bake' ? 'baked, every server still healthy' : e.by === 'resume' ? 'let go by resume' : 'done';
        this.line(`${t}step ${e.step} of ${e.steps} ${by}: step ${e.step + 1} next`);
        break;
      }
      case 'guard-tripped': {
        const who = e.source === 'guard' ? 'the guard' : `its step's bake`;
        const then = e.rollback ? 'rolling it back (guard.rollback)' : 'counted as failed, left as it is (guard.rollback is off)';
        this.line(`${t}${chalk.red(`${e.source === 'guard' ? 'guard' : 'bake'} tripped`)}: ${chalk.bold(e.server)} turned unhealthy after it passed verify (${who} re-checked it): ${visibleLine(e.output)}; ${then}`);
        break;
      }
      case 'guard-check':
        if (e.unhealthy.length > 0) this.line(`${t}${chalk.yellow('guard')}: unhealthy: ${someNames(e.unhealthy)} (${e.healthy} healthy)`);
        else if (this.o.verbose) this.line(`${t}  guard: ${e.healthy} healthy`);
        break;
      case 'window-waiting':
        this.line(`${t}${chalk.yellow('waiting')} ${visibleLine(e.message)}, in ${formatElapsed(e.waitMs)}; Ctrl-C pauses the update instead`);
        break;
      case 'health-waiting':
        this.repeated(
          `${e.update}\0${e.server}\0health`,
          e.stableMs !== undefined
            ? `${t}  ${e.server}: healthy, must stay so (${formatElapsed(e.stableMs)} of ${formatDuration(e.stableForMs ?? 0)})`
            : `${t}  ${e.server}: waiting for health (${formatElapsed(e.elapsedMs)}, try ${e.attempt}): ${visibleLine(e.output)}`,
        );
        break;
      case 'command':
        if (this.o.verbose) {
          this.line(`${t}  ${chalk.dim(`${e.server} [${e.phase}] $ ${visibleLine(e.command)} → ${e.code ?? visibleLine(e.error ?? '')}`)}`);
        }
        break;
      case 'diagnose': {
        const byServer = this.diagnosed.get(e.update) ?? new Map<string, Diagnosed>();
        this.diagnosed.set(e.update, byServer);
        const d = byServer.get(e.server) ?? { server: e.server, status: null, runs: [] };
        byServer.set(e.server, d);
        d.runs.push(e);
        if (!this.area) this.line(`${t}  ${e.server}: diagnose $ ${visibleLine(e.command)} → ${e.ran && e.code !== null ? `exit ${e.code}` : visibleLine(e.error ?? 'no exit status')}`);
        break;
      }
      case 'server-finished': {
        this.forgetRepeats(e.update, e.server);
        const d = this.diagnosed.get(e.update)?.get(e.server);
        if (d) d.status = e.status;
        const mark = e.status === 'success' || e.status === 'skipped' ? chalk.green('✓') : chalk.red('✗');
        const progress = p ? ` (${p.summary(now)})` : '';
        this.line(`${t}  ${mark} ${e.server} ${colourStatus(e.status)} in ${formatDuration(e.durationMs)}${progress}${e.error ? `: ${visibleLine(e.error)}` : ''}`);
        break;
      }
      case 'hook-failed': {
        const about = `${e.hookEvent}${e.server ? ` of ${e.server}` : ''}`;
        const consequence = e.required && pausesOn(e.event) ? ' (required: the update pauses)' : '';
        this.line(`${t}${chalk.yellow('hook failed')}: hooks[${e.hook}] (${visibleLine(e.target)}) on ${about}: ${visibleLine(e.error)}${consequence}`);
        break;
      }
      case 'update-finished': {
        const advice = this.o.advise?.(e.update) ?? { warnings: [], resumeHint: null };
        this.outcome(
          e.status !== 'paused'
            ? `${chalk.bold(e.update)} ${colourStatus(e.status)}: ${visibleLine(e.reason)}`
            : advice.resumeHint
              ? `${chalk.bold(e.update)} ${colourStatus(e.status)} (${visibleLine(e.reason)})`
              : `${chalk.bold(e.update)} ${colourStatus(e.status)} (${visibleLine(e.reason)}); continue with: ${suggest(`resume ${e.update}`)}`,
        );
        for (const w of advice.warnings) this.line(chalk.yellow(w));
        const diagnosed = this.diagnosed.get(e.update);
        this.diagnosed.delete(e.update);
        if (diagnosed) for (const l of diagnosticsLines(e.update, [...diagnosed.values()])) this.line(`${t}${l}`);
        // a line each (plain lines each start with their timestamp)
        if (advice.resumeHint) for (const l of advice.resumeHint.split('\n')) this.line(l);
        break;
      }
    }
    this.redraw();
  };

  /** Erase the live area (the lines that stay are left) and stop redrawing. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.area) {
      this.o.stream.removeListener('resize', this.onResize);
      for (const p of this.progress.values()) p.ended ??= 'stopped';
      this.area.clear();
    }
  }
}
