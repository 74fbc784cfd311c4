/**
 * The pieces of the live view (output/reporter.ts puts them together): what one update's
 * progress is (UpdateProgress: k/N done, failures, ETA, the server in flight; as parts that
 * output/fit.ts fits to the terminal, the step and the health text kept), and the area at the
 * bottom of the terminal that is redrawn in place (LiveArea). Nothing here reads a clock: the
 * time is passed in, so the maths is tested with a fake one.
 */
import type { RolloutEvent } from '../rollout/events.js';
import { formatDuration } from '../util/duration.js';
import { visibleLine } from './visible.js';
import { displayWidth, fitParts, truncate, type Part } from './fit.js';

/** `host:port`, with an IPv6 address in brackets. */
export function hostPort(host: string, port: number | null): string {
  if (port === null) return host;
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** A running time in whole seconds: `0s`, `42s`, `3m10s`. */
export function formatElapsed(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  return s === 0 ? '0s' : formatDuration(s * 1000);
}

/** An estimate, rounded up to whole seconds: `ETA 3m10s`. */
export function formatEta(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return s === 0 ? '0s' : formatDuration(s * 1000);
}

/** The server an update is working on now, as the live view shows it. */
export interface InFlight {
  server: string;
  host: string;
  port: number | null;
  /** the step, or what it does before the first one (connecting, re-checking) */
  step: string;
  /** when the live view first saw it (ms) */
  since: number;
  /** health waiting, reconnecting, waiting for another update */
  note: string | null;
}

const FAILED = new Set(['rolled-back', 'failed', 'fatal', 'unreachable']);
const WORKED = ['success', 'rolled-back', 'failed', 'fatal'];

/**
 * One update's progress, from its events. `total` counts only the servers the update works on
 * (model/lifecycle.ts `worksOn`): those skipped or unreachable at plan time are not in it, and a
 * server found at the target when re-checked leaves it, so `done` never jumps over one.
 */
export class UpdateProgress {
  total = 0;
  done = 0;
  failed = 0;
  /** durations of the servers finished in this run (ms), for the ETA */
  readonly durations: number[] = [];
  inFlight: InFlight | null = null;
  /** test mode pauses once this many are done (update-started's pausesAt): the ETA is to there */
  pausesAt: number | null = null;
  /** set by update-finished */
  ended: string | null = null;
  /** waiting for execution.window to open (a window-waiting event), until the next server starts */
  window: { opensAt: number; window: string } | null = null;
  /** the step it is in (execution.steps: step-started, bake-started, step-promoted), of how many */
  step: { step: number; steps: number } | null = null;
  /**
   * a step's bake (bake-started, each bake-check setting its end again from the time left): when
   * it ends (ms) and the servers it re-checks, until it ends, the step is let go or the update stops
   */
  bake: { step: number; steps: number; endsAt: number; servers: string[] } | null = null;

  constructor(readonly update: string) {}

  apply(e: RolloutEvent, now: number): void {
    switch (e.type) {
      case 'update-started': {
        const worked = WORKED.reduce((n, k) => n + (e.counts[k] ?? 0), 0);
        this.done = worked;
        this.failed = (e.counts['rolled-back'] ?? 0) + (e.counts.failed ?? 0) + (e.counts.fatal ?? 0);
        this.total = e.pending + worked;
        this.pausesAt = e.pausesAt ?? null;
        this.ended = null;
        break;
      }
      case 'window-waiting':
        this.window = { opensAt: Date.parse(e.opensAt), window: e.window };
        break;
      case 'step-started':
        this.step = { step: e.step, steps: e.steps };
        this.bake = null;
        break;
      case 'bake-started':
        this.step = { step: e.step, steps: e.steps };
        this.bake = { step: e.step, steps: e.steps, endsAt: now + e.leftMs, servers: e.servers };
        break;
      case 'bake-check':
        // the engine's own count of what is left: the countdown follows it at each round
        this.bake = { step: e.step, steps: e.steps, endsAt: now + e.leftMs, servers: this.bake?.servers ?? [] };
        break;
      case 'bake-ended':
        this.bake = null;
        break;
      case 'step-promoted':
        this.bake = null;
        this.step = e.step < e.steps ? { step: e.step + 1, steps: e.steps } : this.step;
        break;
      case 'server-started':
        this.window = null;
        this.bake = null;
        // index counts the servers worked on before this one: all of them are done
        this.total = e.total;
        this.done = e.index - 1;
        this.inFlight = { server: e.server, host: e.host, port: e.port, step: 'connecting', since: now, note: null };
        break;
      case 'server-step':
        this.flight(e.server, now).step = e.hop !== undefined ? `${e.step}, hop ${e.hop}/${e.hops} → ${visibleLine(e.hopTo ?? '?')}` : e.step;
        this.inFlight!.note = null;
        break;
      case 'takeover':
        if (e.server !== null) this.flight(e.server, now).step = 're-checking';
        break;
      case 'health-waiting':
        this.flight(e.server, now).note =
          e.stableMs !== undefined
            ? `healthy, must stay so (${formatElapsed(e.stableMs)} of ${formatDuration(e.stableForMs ?? 0)})`
            : `waiting for health (try ${e.attempt})`;
        break;
      case 'reconnecting':
        this.flight(e.server, now).note = `reconnecting (${formatElapsed(e.lostMs)}, try ${e.attempt})`;
        break;
      case 'server-waiting':
        this.flight(e.server, now).note = `waiting for the other update (${formatElapsed(e.waitedMs)} of ${formatDuration(e.limitMs)})`;
        break;
      case 'server-finished':
        this.inFlight = null;
        if (e.status === 'skipped') {
          // found at the target when re-checked: not a server this update works on after all
          this.total = Math.max(this.done, this.total - 1);
          break;
        }
        this.done++;
        if (this.done > this.total) this.total = this.done;
        if (FAILED.has(e.status)) this.failed++;
        this.durations.push(e.durationMs);
        break;
      case 'update-finished':
        this.inFlight = null;
        this.window = null;
        this.bake = null;
        this.ended = e.status;
        break;
      default:
        break;
    }
  }

  private flight(server: string, now: number): InFlight {
    if (this.inFlight?.server !== server) this.inFlight = { server, host: '', port: null, step: 'waiting', since: now, note: null };
    return this.inFlight;
  }

  /** Mean duration of the servers finished in this run, or null before the first one. */
  meanMs(): number | null {
    if (this.durations.length === 0) return null;
    return this.durations.reduce((a, b) => a + b, 0) / this.durations.length;
  }

  /**
   * Time left: the mean per finished server × the servers left, less what the one in flight has
   * already spent (never below zero for it). Null before the first server finishes.
   */
  etaMs(now: number): number | null {
    const mean = this.meanMs();
    if (mean === null) return null;
    // test mode's pause comes first: the time to it, and none once it is reached (it pauses next)
    const pause = this.pausesAt !== null && this.pausesAt < this.total ? this.pausesAt : null;
    const left = Math.max(0, (pause ?? this.total) - this.done);
    if (left === 0) return pause !== null ? null : 0;
    if (this.inFlight) return Math.max(0, mean - (now - this.inFlight.since)) + mean * (left - 1);
    return mean * left;
  }

  /**
   * `2/5 done · 1 failed · ETA 3m10s` (no ETA before the first server finishes); with steps,
   * `step 2/4 · ` before it.
   */
  summary(now: number): string {
    return fitParts(this.summaryParts(now), null);
  }

  /** summary() as parts: on a narrow terminal the ETA gives way; the step and the counts stay. */
  summaryParts(now: number): Part[] {
    const step: Part[] = this.step && this.step.steps > 1 ? [{ text: `step ${this.step.step}/${this.step.steps}` }] : [];
    return [...step, ...progressParts(this.done, this.total, this.failed, this.etaMs(now))].map((p, i) => (i === 0 ? p : { ...p, sep: ' · ' }));
  }

  /**
   * `s2 10.0.0.2:22 verify 12s · waiting for health (try 4)`; between servers, a step's bake or
   * the wait for execution.window (each a countdown), else null.
   */
  serverText(now: number): string | null {
    const parts = this.serverParts(now);
    return parts ? fitParts(parts, null) : null;
  }

  /**
   * serverText() as parts. On a narrow terminal the host:port gives way first, then the time in
   * flight, then the server's name is cut and last what it waits for (health, a reconnect); its
   * step stays whole. A bake's list of servers gives way before its countdown.
   */
  serverParts(now: number): Part[] | null {
    const f = this.inFlight;
    if (!f && this.bake) return bakeParts(this.bake, now);
    if (!f && this.window) return [{ text: `waiting for the rollout window (${this.window.window}): opens in ${formatEta(this.window.opensAt - now)}` }];
    if (!f) return null;
    return [
      { text: f.server, rank: RANK.serverName, min: 8, keep: true },
      ...(f.host ? [{ text: hostPort(f.host, f.port), sep: ' ', rank: RANK.host }] : []),
      { text: f.step, sep: ' ' },
      { text: formatElapsed(now - f.since), sep: ' ', rank: RANK.elapsed },
      ...(f.note ? [{ text: f.note, sep: ' · ', rank: RANK.note, min: 24, keep: true }] : []),
    ];
  }
}

/**
 * The order in which the parts of a live line give way on a narrow terminal (output/fit.ts
 * fitParts), the least needed first: what it waits for and the step are what an operator reads.
 * `0 failed` gives way too (a count of failures other than 0 stays).
 */
export const RANK = { host: 1, bakeServers: 1, elapsed: 2, pad: 3, eta: 4, noFailure: 5, serverName: 6, note: 7 } as const;

/** `baking step 1 of 3: 4m12s left · re-checking s1`: the countdown of a bake (never below 0s). */
export function bakeText(b: { step: number; steps: number; endsAt: number; servers: readonly string[] }, now: number): string {
  return fitParts(bakeParts(b, now), null);
}

function bakeParts(b: { step: number; steps: number; endsAt: number; servers: readonly string[] }, now: number): Part[] {
  const which = b.servers.length === 0 ? null : b.servers.length <= 3 ? `re-checking ${b.servers.join(', ')}` : `re-checking ${b.servers.length} servers`;
  return [
    { text: `baking step ${b.step} of ${b.steps}: ${formatEta(b.endsAt - now)} left` },
    ...(which ? [{ text: which, sep: ' · ', rank: RANK.bakeServers, min: 16 }] : []),
  ];
}

/** `k/N done · f failed · ETA 3m10s`; no ETA without one, nor once all are done. */
export function progressText(done: number, total: number, failed: number, etaMs: number | null): string {
  return fitParts(progressParts(done, total, failed, etaMs), null);
}

function progressParts(done: number, total: number, failed: number, etaMs: number | null): Part[] {
  return [
    { text: `${done}/${total} done` },
    { text: `${failed} failed`, sep: ' · ', ...(failed === 0 ? { rank: RANK.noFailure } : {}) },
    ...(etaMs !== null && done < total ? [{ text: `ETA ${formatEta(etaMs)}`, sep: ' · ', rank: RANK.eta }] : []),
  ];
}

/** Overall progress of several updates run at once: sums, and the ETA of the one that ends last. */
export function overallText(updates: readonly UpdateProgress[], now: number): string {
  return fitParts(overallParts(updates, now), null);
}

/** overallText() as parts (the ETA gives way first). */
export function overallParts(updates: readonly UpdateProgress[], now: number): Part[] {
  let done = 0;
  let total = 0;
  let failed = 0;
  let eta: number | null = null;
  for (const u of updates) {
    done += u.done;
    total += u.total;
    failed += u.failed;
    if (u.ended === null) {
      const e = u.etaMs(now);
      if (e !== null) eta = Math.max(eta ?? 0, e);
    }
  }
  return progressParts(done, total, failed, eta);
}

/**
 * The lines at the bottom of a terminal that are redrawn in place: each redraw moves the cursor
 * up over the lines drawn last time, clears to the end of the screen and writes the new ones, in
 * one write. Lines are cut to the terminal's width less one column (read at every redraw, so a
 * resize takes effect at the next one), so the terminal never wraps them (unless `wide`); after a resize the
 * rows the old lines now take at the new width are erased (terminals that reflow lines do so).
 * `above` writes a line that scrolls up above the area.
 */
export class LiveArea {
  /** widths of the lines on screen now */
  private drawn: number[] = [];
  /** what they are, and at which width they were cut: a redraw of the same is skipped */
  private shown = '';
  private hidden = false;
  private readonly restoreCursor = () => {
    if (this.hidden) this.stream.write('\x1b[?25h');
  };

  /** `wide` (start --wide): lines are drawn whole, the terminal wraps them (the rows they take are still erased) */
  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly wide = false,
  ) {}

  get columns(): number {
    return this.stream.columns && this.stream.columns > 0 ? this.stream.columns : 80;
  }

  private erase(): string {
    const cols = this.columns;
    const rows = this.drawn.reduce((n, w) => n + Math.max(1, Math.ceil(w / cols)), 0);
    this.drawn = [];
    return rows > 0 ? `\x1b[${rows}A\r\x1b[J` : '';
  }

  private draw(lines: readonly string[]): string {
    const width = Math.max(1, this.columns - 1);
    let out = '';
    for (const line of lines) {
      const cut = this.wide ? line : truncate(line, width);
      this.drawn.push(displayWidth(cut));
      out += cut + '\n';
    }
    if (lines.length > 0 && !this.hidden) {
      this.hidden = true;
      process.once('exit', this.restoreCursor);
      out = '\x1b[?25l' + out;
    }
    return out;
  }

  /** Replace the area with `lines`; none: the area is gone and the cursor shown again. */
  render(lines: readonly string[]): void {
    const shown = `${this.columns}\n${lines.join('\n')}`;
    if (shown === this.shown && lines.length > 0) return;
    this.shown = shown;
    let out = this.erase() + this.draw(lines);
    if (lines.length === 0 && this.hidden) {
      out += '\x1b[?25h';
      this.hidden = false;
      process.removeListener('exit', this.restoreCursor);
    }
    if (out) this.stream.write(out);
  }

  /** Write `text` (one or more lines, not cut) above the area, then draw `lines` again. */
  above(text: string, lines: readonly string[]): void {
    this.shown = `${this.columns}\n${lines.join('\n')}`;
    this.stream.write(this.erase() + text + '\n' + this.draw(lines));
  }

  /** Erase the area and show the cursor again. */
  clear(): void {
    this.render([]);
  }
}
