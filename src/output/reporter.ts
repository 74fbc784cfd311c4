import chalk from 'chalk';
import type { Ora } from 'ora';
import type { RolloutEvent } from '../rollout/events.js';
import { formatDuration } from '../util/duration.js';
import { colourStatus, short } from './text.js';
import { visibleLine } from './visible.js';

export interface ReporterOptions {
  /** where progress goes: stdout normally, stderr when stdout carries JSON */
  stream: NodeJS.WriteStream;
  quiet: boolean;
  /** makes the spinner for the server in flight; null for none (the stream is not a terminal) */
  spinner: ((stream: NodeJS.WriteStream) => Ora) | null;
  /** prefix lines with the update's name (several updates at once) */
  prefix: boolean;
  /** one line per remote command */
  verbose: boolean;
}

/** Turns engine events into what an operator reads. The engine itself never prints. */
export class Reporter {
  private spin: Ora | null = null;
  private readonly inFlight = new Map<string, string>();

  constructor(private readonly o: ReporterOptions) {}

  private line(text: string): void {
    if (this.o.quiet) return;
    const wasSpinning = this.spin?.isSpinning;
    if (wasSpinning) this.spin!.clear();
    this.o.stream.write(text + '\n');
    if (wasSpinning) this.spin!.render();
  }

  private status(text: string | null): void {
    if (this.o.quiet || !this.o.spinner) return;
    if (text === null) {
      this.spin?.stop();
      return;
    }
    this.spin ??= this.o.spinner(this.o.stream);
    this.spin.text = text;
    if (!this.spin.isSpinning) this.spin.start();
  }

  private refresh(): void {
    const parts = [...this.inFlight.values()];
    this.status(parts.length ? parts.join('  |  ') : null);
  }

  private tag(update: string): string {
    return this.o.prefix ? chalk.dim(`[${update}] `) : '';
  }

  readonly onEvent = (e: RolloutEvent): void => {
    const t = this.tag(e.update);
    switch (e.type) {
      case 'probe':
        this.line(
          `${t}probe ${e.server}: ${colourStatus(e.status)}${e.commit ? ` at ${short(e.commit)}` : ''}${e.error ? ` — ${visibleLine(e.error)}` : ''}`,
        );
        break;
      case 'update-started':
        this.line(`${t}${e.takeover ? 'taking over' : e.resumed ? 'resuming' : 'starting'} ${chalk.bold(e.update)}: ${e.pending} of ${e.total} servers to go`);
        break;
      case 'takeover':
        this.line(`${t}${chalk.yellow('takeover')}: ${visibleLine(e.message)}`);
        break;
      case 'server-started':
        this.inFlight.set(e.update, `${t}${e.server} update`);
        this.line(`${t}[${e.index}/${e.total}] ${chalk.bold(e.server)} (${e.host})`);
        this.refresh();
        break;
      case 'server-step':
        this.inFlight.set(e.update, `${t}${e.server} ${e.step}`);
        if (!this.o.spinner) this.line(`${t}  ${e.server}: ${e.step}`);
        this.refresh();
        break;
      case 'reconnecting':
        if (e.attempt === 1) this.line(`${t}  ${chalk.yellow('connection lost')} to ${e.server} (${e.error}); reconnecting for up to ${formatDuration(e.limitMs)}`);
        this.inFlight.set(e.update, `${t}${e.server} reconnecting (${formatDuration(e.lostMs)}, try ${e.attempt})`);
        this.refresh();
        break;
      case 'server-waiting':
        if (e.waitedMs === 0) {
          this.line(`${t}${chalk.yellow('waiting')} for ${chalk.bold(e.server)}: ${e.holder} (at most ${formatDuration(e.limitMs)}, then this update pauses)`);
        }
        this.inFlight.set(e.update, `${t}${e.server} waiting for the other update (${formatDuration(e.waitedMs)})`);
        this.refresh();
        break;
      case 'health-waiting':
        this.inFlight.set(
          e.update,
          e.stableMs !== undefined
            ? `${t}${e.server} healthy, must stay so (${formatDuration(e.stableMs)} of ${formatDuration(e.stableForMs ?? 0)})`
            : `${t}${e.server} waiting for health (${formatDuration(e.elapsedMs)}, try ${e.attempt})`,
        );
        this.refresh();
        break;
      case 'command':
        if (this.o.verbose) {
          this.line(`${t}  ${chalk.dim(`${e.server} [${e.phase}] $ ${visibleLine(e.command)} → ${e.code ?? visibleLine(e.error ?? '')}`)}`);
        }
        break;
      case 'server-finished': {
        this.inFlight.delete(e.update);
        this.refresh();
        const mark = e.status === 'success' || e.status === 'skipped' ? chalk.green('✓') : chalk.red('✗');
        this.line(`${t}  ${mark} ${e.server} ${colourStatus(e.status)} in ${formatDuration(e.durationMs)}${e.error ? `: ${visibleLine(e.error)}` : ''}`);
        break;
      }
      case 'update-finished':
        this.inFlight.delete(e.update);
        this.refresh();
        this.line(`${t}${chalk.bold(e.update)} ${colourStatus(e.status)}: ${visibleLine(e.reason)}`);
        break;
    }
  };

  stop(): void {
    this.spin?.stop();
  }
}
