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
 *   Where `ps` cannot list a command's process tree it answers `TOKEN noprocs` instead and
 *   ends: nothing may run there (remote-run.ts PROCS_WORK_SH);
 * - a command: `SECONDS LINES DEAD_MAN\n` then its text as LINES lines (a command is split at
 *   its newlines and joined again on the server, so any text without NUL passes as it is);
 * - while it runs we send a beat line (`.`) every so often; one that arrives after its end is
 *   read between commands, and skipped;
 * - its output: the command writes to FIFOs whose `cat`s pass it on to the channel's stdout and
 *   stderr (OUTPUT_SH); when it has ended and both reached their end, the loop writes the token
 *   on stderr, then `TOKEN STATUS HOW SIGNAL[ PID NAME]` on stdout (HOW: exit, timeout, deadman,
 *   held). The output is everything before the token, binary or without a final newline alike.
 *
 * Per command, as the per-exec supervisor does: the command runs with the login shell
 * (`$SHELL -c`), stdin from /dev/null; a timer kills its whole process tree at its timeout (on
 * the server's clock) or when DEAD_MAN seconds went by without a beat (a silent partition, a
 * frozen executor: the loop ends then); a watchdog reads the channel's stdin while it runs: end
 * of file means we closed the channel (our own timeout, an abort) or the connection died, and
 * the command is killed and the loop ends. A process the command left holding its output fails
 * it (`held`). Between commands the loop waits in `read`, so the end of the channel ends it too.
 */
import { randomBytes } from 'node:crypto';
import type { ClientChannel } from 'ssh2';
import { shellQuote } from '../util/shell.js';
import { checkToken, FENCE_SH, INFLIGHT_SH } from './fence.js';
import { OUTPUT_SH, PROCESS_TREE_SH, PROCS_WORK_SH, TIMER } from './remote-run.js';

const LOOP = [
  'tok=',
  'IFS= read -r tok || exit 0',
  "N='\n'",
  'exec 3<&0',
  ...PROCESS_TREE_SH,
  PROCS_WORK_SH,
  ...OUTPUT_SH,
  ...INFLIGHT_SH,
  ...FENCE_SH,
  // nothing runs where a command's tree could not be killed: say so instead of ready
  `procs_work || { printf '%s noprocs\\n' "$tok"; exit 0; }`,
  // the FIFOs each command writes its output to (OUTPUT_SH), where they can be made; else the channel
  'f=; q=$(mktemp -d 2>/dev/null) || q=',
  `if [ -n "$q" ]; then mkfifo "$q/o" "$q/e" 2>/dev/null && f=1; fi`,
  // this loop's record of a command in flight (fence.ts) goes with it
  `trap 'rm -f "$_r"; [ -n "$q" ] && rm -rf "$q"' EXIT`,
  "trap 'why=timeout' USR1",
  "trap 'why=hangup' USR2",
  "trap 'why=deadman' ALRM",
  "trap 'x=1' HUP",
  `printf '%s ready\\n' "$tok"`,
  'while read -r t n m tk; do',
  // a beat that came after its command's end (or what is left of one): not a command
  "  case $t in ''|.) continue;; esac",
  '  c=; i=0',
  '  while [ "$i" -lt "$n" ]; do IFS= read -r l || exit 0; if [ "$i" -eq 0 ]; then c=$l; else c=$c$N$l; fi; i=$((i+1)); done',
  // behind the fence (fence.ts) when the frame names a token: not run, it ends here with why
  '  case $tk in \'\'|-) tk= ;; esac',
  `  if [ -n "$tk" ]; then fence "$tk" "$t"; s=$?; if [ "$s" -ne 0 ]; then printf '%s\\n' "$tok" >&2; printf '%s %s exit -\\n' "$tok" "$s"; continue; fi; fi`,
  '  why=; held=; hp=',
  '  if [ -n "$f" ]; then',
  '    cat "$q/o" </dev/null 3<&- & co=$!',
  '    cat "$q/e" </dev/null >&2 3<&- & ce=$!',
  '    "${SHELL:-/bin/sh}" -c "$c" </dev/null >"$q/o" 2>"$q/e" 3<&- &',
  '  else',
  '    "${SHELL:-/bin/sh}" -c "$c" </dev/null 3<&- &',
  '  fi',
  '  p=$!',
  `  sh -c ${shellQuote(TIMER)} agent-update-timer "$t" "\${m:-0}" $$ </dev/null >/dev/null 2>&1 3<&- &`,
  '  w1=$!',
  // the stdin watchdog: each line is a beat (the timer counts the dead-man time from it), the end a hang-up
  '  ( while read -r _ <&3; do kill -URG $w1 2>/dev/null; done; kill -USR2 $$ ) </dev/null >/dev/null 2>&1 &',
  '  w2=$!',
  '  while :; do',
  '    wait $p; s=$?',
  // on a hang-up stdout is gone: writing must not kill us (PIPE) before the tree is stopped
  `    if [ -n "$why" ]; then trap '' PIPE; stop $p; wait $p; s=$?; break; fi`,
  '    kill -0 $p 2>/dev/null || break',
  '  done',
  '  kill -KILL $w2 2>/dev/null; wait $w2 2>/dev/null',
  '  if [ "$why" = hangup ]; then [ -n "$f" ] && kill -KILL $co $ce 2>/dev/null; exit 0; fi',
  '  if [ -n "$f" ] && [ "$why" = deadman ]; then kill -KILL $co $ce 2>/dev/null; wait $co 2>/dev/null; wait $ce 2>/dev/null; fi',
  '  if [ -n "$f" ] && [ "$why" != deadman ]; then',
  '    outwait',
  // the holder keeps these FIFOs: the next command gets new ones
  '    if [ -n "$held" ]; then rm -f "$q/o" "$q/e"; mkfifo "$q/o" "$q/e" 2>/dev/null || f=; fi',
  '  fi',
  '  kill -KILL $w1 2>/dev/null; wait $w1 2>/dev/null',
  '  trap - PIPE',
  // a command killed by a signal is reported as that signal, as sshd would (128 + n is a signal)
  '  g=-',
  '  if [ "$s" -gt 128 ] && [ "$s" -lt 160 ]; then g=$(kill -l "$s" 2>/dev/null) || g=-; fi',
  '  [ -z "$why" ] && [ -n "$held" ] && why=held',
  '  [ -n "$tk" ] && unfence',
  `  printf '%s\\n' "$tok" >&2`,
  `  printf '%s %s %s %s%s\\n' "$tok" "$s" "\${why:-exit}" "\${g:--}" "\${hp:+ $hp}"`,
  // the executor went silent (a partition, a frozen process): the command is dead, the loop ends like at a hang-up
  '  [ "$why" = deadman ] && exit 0',
  'done',
].join('\n');

/** The exec request that starts the loop. */
export const LOOP_COMMAND = `exec sh -c ${shellQuote(LOOP)} agent-update-loop`;

/** How a command ended, as the loop reported it. */
export interface LoopResult {
  /** exit status, or (with `signal`) 128 + the signal */
  status: number;
  /**
   * exit: it ended; timeout: killed at its timeout; deadman: killed because no beat came for the
   * dead-man timeout (the loop has ended); held: it ended, but left a process holding its output
   */
  how: 'exit' | 'timeout' | 'deadman' | 'held';
  timedOut: boolean;
  /** the signal that killed it (TERM, KILL, …), when it died of one */
  signal: string | null;
  /** with `held`: `PID NAME` of the process holding the output, or '' when the loop could not name it */
  holder: string | null;
}

/** The beats a running command's executor sends: the loop kills the command after `seconds` (whole) without one. */
export interface DeadMan {
  seconds: number;
  everyMs: number;
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

/** The longest result line we accept after the token (status, how, signal, a holder). */
const MAX_TRAILER = 256;

/** The beat line: anything the loop's stdin watchdog reads while a command runs; ignored between commands. */
export const BEAT = '.\n';

/** What the loop answers its handshake with where a command's tree could not be killed (PROCS_WORK_SH). */
export type StartFailure = { failed: string; noProcs?: true };

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
  static start(ch: ClientChannel, timeoutMs: number, signal?: AbortSignal): Promise<CommandChannel | StartFailure> {
    const token = Buffer.from(randomBytes(16).toString('hex'));
    const ready = Buffer.concat([token, Buffer.from(' ready\n')]);
    const noProcs = Buffer.concat([token, Buffer.from(' noprocs\n')]);
    return new Promise((resolve) => {
      let seen = Buffer.alloc(0);
      let settled = false;
      const finish = (r: CommandChannel | StartFailure) => {
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
        else if (seen.includes(noProcs)) finish({ failed: 'this server cannot list its processes', noProcs: true });
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
   * output goes to the sinks as it arrives. With `deadMan`, a beat goes to the loop every
   * `everyMs` while it runs, and the loop kills it after `seconds` without one (a partition, a
   * frozen executor). With `fence`, it runs only behind that fencing token (fence.ts): not run,
   * it ends with FENCED_EXIT or INFLIGHT_EXIT and why on stdout. Resolves when the loop reported
   * its end, or when the channel closed first.
   */
  run(
    command: string,
    seconds: number,
    sinks: { stdout(b: Buffer): void; stderr(b: Buffer): void },
    deadMan?: DeadMan,
    fence?: string,
  ): Promise<LoopResult | LoopFailure> {
    if (this.closed) return Promise.resolve({ kind: 'closed' });
    if (this.running) throw new Error('the command channel is busy');
    return new Promise((resolve) => {
      const lines = command.split('\n');
      let beats: NodeJS.Timeout | undefined;
      this.running = {
        out: new MarkerScanner(this.token, sinks.stdout),
        err: new MarkerScanner(this.token, sinks.stderr),
        trailer: null,
        resolve: (r) => {
          clearInterval(beats);
          resolve(r);
        },
      };
      const dm = deadMan && deadMan.seconds > 0 ? deadMan : null;
      this.ch.write(`${seconds} ${lines.length} ${dm ? dm.seconds : 0} ${fence === undefined ? '-' : checkToken(fence)}\n${lines.join('\n')}\n`);
      // beats that cross the command's end arrive between commands, where the loop skips them
      if (dm) beats = setInterval(() => this.beat(), dm.everyMs);
    });
  }

  /** One beat line to the loop (the dead-man timer of the running command starts again). */
  beat(): void {
    if (this.closed) return;
    try {
      this.ch.write(BEAT);
    } catch {
      /* the channel is going: its close says so */
    }
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
    // ` STATUS HOW SIGNAL`, and with `held` the holder when the loop could name it: ` PID NAME`
    const m = /^ (\d+) (exit|timeout|deadman|held) (\S+)(?: (\d+ .*))?$/.exec(r.trailer.subarray(0, nl).toString('utf8'));
    if (!m) {
      this.fail(r, 'a malformed result line');
      return;
    }
    this.running = null;
    const how = m[2] as LoopResult['how'];
    r.resolve({
      status: Number(m[1]),
      how,
      timedOut: how === 'timeout',
      signal: m[3] === '-' ? null : m[3]!,
      holder: how === 'held' ? (m[4] ?? '') : null,
    });
    // the loop ends after a dead-man kill: the next command must not be sent to it
    if (how === 'deadman') this.close();
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
