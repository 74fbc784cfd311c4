/**
 * One SSH session (channel) per server for all its commands: a small POSIX sh loop on the
 * server reads framed commands on the channel's stdin and answers with framed results, the way
 * Ansible's pipelining and mitogen avoid a session per task. On the test fleet a new session on
 * an open connection costs about as much as everything else one command does (docs/decisions.md).
 *
 * Framing, both ways robust against any command text and any output:
 * - handshake: we send a per-session random token on its own line; the loop keeps it in an
 *   unexported shell variable (never in a command's environment or argv) and answers
 *   `TOKEN ready`. No answer within a short time, or the channel ending first (no POSIX sh, a
 *   ForceCommand that ignores stdin or runs something else), and the session falls back to one
 *   exec per command (remote-run.ts), for good;
 * - a command: `SECONDS LINES\n` then its text as LINES lines (a command is split at its
 *   newlines and joined again on the server, so any text without NUL passes as it is);
 * - its output: the command writes straight to the channel's stdout and stderr; when it has
 *   ended the loop writes the token on stderr, then `TOKEN STATUS HOW SIGNAL` on stdout. The
 *   output is everything before the token, binary or without a final newline alike.
 *
 * Per command, as the per-exec supervisor does: the command runs with the login shell
 * (`$SHELL -c`), stdin from /dev/null; a watchdog kills its whole process tree at its timeout
 * (on the server's clock), another reads the channel's stdin while it runs (we send nothing
 * then): end of file means we closed the channel (our own timeout, an abort) or the connection
 * died, and the command is killed and the loop ends. Between commands the loop waits in `read`,
 * so the end of the channel ends it too.
 */
import { randomBytes } from 'node:crypto';
import type { ClientChannel } from 'ssh2';
import { shellQuote } from '../util/shell.js';
import { PROCESS_TREE_SH } from './remote-run.js';

/** The per-command timer (`sh -c TIMER agent-update-timer SECONDS LOOP_PID`): USR1 to the loop at the timeout. */
const TIMER = 'i=0; while [ "$i" -lt "$1" ]; do sleep 1; i=$((i+1)); done; kill -USR1 "$2"';

const LOOP = [
  'tok=',
  'IFS= read -r tok || exit 0',
  "N='\n'",
  'exec 3<&0',
  ...PROCESS_TREE_SH,
  "trap 'why=timeout' USR1",
  "trap 'why=hangup' USR2",
  `printf '%s ready\\n' "$tok"`,
  'while read -r t n; do',
  '  c=; i=0',
  '  while [ "$i" -lt "$n" ]; do IFS= read -r l || exit 0; if [ "$i" -eq 0 ]; then c=$l; else c=$c$N$l; fi; i=$((i+1)); done',
  '  why=',
  '  "${SHELL:-/bin/sh}" -c "$c" </dev/null 3<&- &',
  '  p=$!',
  // The timer: a shell of its own (`agent-update-timer SECONDS` in ps) counting whole seconds
  // with `sleep 1`, so killing it (KILL: nothing to trap, nothing to race) leaves at most a
  // `sleep 1` that ends within the second, never a sleep as long as the timeout.
  '  w1=',
  `  if [ "$t" -gt 0 ]; then sh -c ${shellQuote(TIMER)} agent-update-timer "$t" $$ </dev/null >/dev/null 2>&1 3<&- & w1=$!; fi`,
  '  ( while read -r _ <&3; do :; done; kill -USR2 $$ ) </dev/null >/dev/null 2>&1 &',
  '  w2=$!',
  '  while :; do',
  '    wait $p; s=$?',
  // on a hang-up stdout is gone: writing must not kill us (PIPE) before the tree is stopped
  `    if [ -n "$why" ]; then trap '' PIPE; stop $p; wait $p; s=$?; break; fi`,
  '    kill -0 $p 2>/dev/null || break',
  '  done',
  '  kill -KILL $w2 2>/dev/null; wait $w2 2>/dev/null',
  '  if [ -n "$w1" ]; then kill -KILL $w1 2>/dev/null; wait $w1 2>/dev/null; fi',
  '  [ "$why" = hangup ] && exit 0',
  '  trap - PIPE',
  // a command killed by a signal is reported as that signal, as sshd would (128 + n is a signal)
  '  g=-',
  '  if [ "$s" -gt 128 ] && [ "$s" -lt 160 ]; then g=$(kill -l "$s" 2>/dev/null) || g=-; fi',
  `  printf '%s\\n' "$tok" >&2`,
  `  printf '%s %s %s %s\\n' "$tok" "$s" "\${why:-exit}" "\${g:--}"`,
  'done',
].join('\n');

/** The exec request that starts the loop. */
export const LOOP_COMMAND = `exec sh -c ${shellQuote(LOOP)} agent-update-loop`;

/** How a command ended, as the loop reported it. */
export interface LoopResult {
  /** exit status, or (with `signal`) 128 + the signal */
  status: number;
  timedOut: boolean;
  /** the signal that killed it (TERM, KILL, …), when it died of one */
  signal: string | null;
}

/**
 * Finds `marker` in a stream cut into chunks: what comes before it goes to `sink` (holding back
 * only what could be the start of the marker), what comes after is returned once it is found.
 */
export class MarkerScanner {
  private carry: Buffer = Buffer.alloc(0);
  found = false;
  constructor(
    private readonly marker: Buffer,
    private readonly sink: (b: Buffer) => void,
  ) {}

  /** Returns the bytes after the marker when this chunk completes it; null before. */
  push(chunk: Buffer): Buffer | null {
    if (this.found) return chunk;
    const buf = this.carry.length ? Buffer.concat([this.carry, chunk]) : chunk;
    const at = buf.indexOf(this.marker);
    if (at >= 0) {
      if (at > 0) this.sink(buf.subarray(0, at));
      this.found = true;
      this.carry = Buffer.alloc(0);
      return buf.subarray(at + this.marker.length);
    }
    const keep = Math.min(buf.length, this.marker.length - 1);
    if (buf.length > keep) this.sink(buf.subarray(0, buf.length - keep));
    this.carry = Buffer.from(buf.subarray(buf.length - keep));
    return null;
  }
}

/** Why a command sent through the loop has no result from it. */
export type LoopFailure = { kind: 'closed' } | { kind: 'protocol'; detail: string };

interface Running {
  out: MarkerScanner;
  err: MarkerScanner;
  trailer: Buffer | null;
  resolve(r: LoopResult | LoopFailure): void;
}

/** The longest result line we accept after the token (status, how, signal). */
const MAX_TRAILER = 256;

/** A started loop on one channel, after its handshake. Runs one command at a time. */
export class CommandChannel {
  private running: Running | null = null;
  private closed = false;

  private constructor(
    private readonly ch: ClientChannel,
    private readonly token: Buffer,
  ) {
    ch.on('data', (d: Buffer) => this.onStdout(d));
    ch.stderr.on('data', (d: Buffer) => this.onStderr(d));
    ch.on('close', () => this.lost());
    // the loop itself ended (killed on the server): what it started may still hold the channel open
    ch.on('exit', () => {
      this.lost();
      closeChannel(ch);
    });
  }

  private lost(): void {
    this.closed = true;
    const r = this.running;
    this.running = null;
    r?.resolve({ kind: 'closed' });
  }

  get busy(): boolean {
    return this.running !== null;
  }

  get open(): boolean {
    return !this.closed;
  }

  /**
   * Start the loop on `ch` (an exec of LOOP_COMMAND just opened) and wait for its handshake, at
   * most `timeoutMs`. Resolves to the channel, or to why the loop cannot run there (the channel
   * is closed then).
   */
  static start(ch: ClientChannel, timeoutMs: number, signal?: AbortSignal): Promise<CommandChannel | { failed: string }> {
    const token = Buffer.from(randomBytes(16).toString('hex'));
    const ready = Buffer.concat([token, Buffer.from(' ready\n')]);
    return new Promise((resolve) => {
      let seen = Buffer.alloc(0);
      let settled = false;
      const finish = (r: CommandChannel | { failed: string }) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        ch.off('data', onData);
        ch.off('close', onClose);
        if (!(r instanceof CommandChannel)) closeChannel(ch);
        resolve(r);
      };
      const onData = (d: Buffer) => {
        // whatever a login script printed before the loop started is not ours (nothing follows
        // the ready line until we send a command)
        seen = Buffer.concat([seen, d]);
        const at = seen.indexOf(ready);
        if (at >= 0) finish(new CommandChannel(ch, token));
        else seen = Buffer.from(seen.subarray(Math.max(0, seen.length - ready.length)));
      };
      const onClose = () => finish({ failed: 'the channel closed before the handshake' });
      const onAbort = () => finish({ failed: 'aborted' });
      const timer = setTimeout(() => finish({ failed: `no handshake within ${timeoutMs} ms` }), timeoutMs);
      ch.on('data', onData);
      ch.on('close', onClose);
      ch.stderr.on('data', () => {
        /* a shell's complaint (no sh, a refused command): the fallback path handles it */
      });
      signal?.addEventListener('abort', onAbort, { once: true });
      ch.write(Buffer.concat([token, Buffer.from('\n')]));
    });
  }

  /**
   * Run one command (no NUL in it) with the server-side timeout `seconds` (0: none); its
   * output goes to the sinks as it arrives. Resolves when the loop reported its end, or when the
   * channel closed first.
   */
  run(command: string, seconds: number, sinks: { stdout(b: Buffer): void; stderr(b: Buffer): void }): Promise<LoopResult | LoopFailure> {
    if (this.closed) return Promise.resolve({ kind: 'closed' });
    if (this.running) throw new Error('the command channel is busy');
    return new Promise((resolve) => {
      const lines = command.split('\n');
      this.running = {
        out: new MarkerScanner(this.token, sinks.stdout),
        err: new MarkerScanner(this.token, sinks.stderr),
        trailer: null,
        resolve,
      };
      this.ch.write(`${seconds} ${lines.length}\n${lines.join('\n')}\n`);
    });
  }

  /** End the loop (a running command is killed on the server: its stdin watchdog sees the end). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeChannel(this.ch);
  }

  private onStdout(d: Buffer): void {
    const r = this.running;
    if (!r) return; // between commands: a background process of an earlier command; not ours
    let rest: Buffer | null = d;
    if (r.trailer === null) {
      rest = r.out.push(d);
      if (rest === null) return;
      r.trailer = Buffer.alloc(0);
    }
    r.trailer = Buffer.concat([r.trailer, rest]);
    this.check();
  }

  private onStderr(d: Buffer): void {
    const r = this.running;
    if (!r) return;
    if (r.err.push(d) !== null) this.check();
  }

  /** Resolve the running command once both streams have their end marker and the result line is whole. */
  private check(): void {
    const r = this.running;
    if (!r || r.trailer === null || !r.err.found) return;
    const nl = r.trailer.indexOf(0x0a);
    if (nl < 0) {
      if (r.trailer.length > MAX_TRAILER) this.fail(r, 'a result line without its end');
      return;
    }
    const m = /^ (\d+) (exit|timeout) (\S+)$/.exec(r.trailer.subarray(0, nl).toString('latin1'));
    if (!m) {
      this.fail(r, 'a malformed result line');
      return;
    }
    this.running = null;
    r.resolve({ status: Number(m[1]), timedOut: m[2] === 'timeout', signal: m[3] === '-' ? null : m[3]! });
  }

  private fail(r: Running, detail: string): void {
    this.running = null;
    this.close();
    r.resolve({ kind: 'protocol', detail });
  }
}

function closeChannel(ch: ClientChannel): void {
  try {
    ch.end();
  } catch {
    /* already gone */
  }
  try {
    ch.close();
  } catch {
    /* already closed */
  }
}
