/**
 * One connection's commands (Ssh2Session): each sent through the server's command loop
 * (channel.ts), or on its own exec under the supervisor (remote-run.ts) where the loop cannot
 * run; a timeout, a lost connection, an abort are results, never throws.
 */
import type { Client, ClientChannel } from 'ssh2';
import type { SshConfig } from '../config/types.js';
import { formatDuration } from '../util/duration.js';
import { BEAT, CommandChannel, LOOP_COMMAND } from './channel.js';
import { deadManOf, describeEnd, supervisedEnd, type CommandEnd } from './command-end.js';
import { splitRunOutput, supervised, wholeSeconds } from './remote-run.js';
import { errorCode, errorMessage } from './ssh2-lib.js';
import { TailBuffer } from './tail-buffer.js';
import type { ExecOptions, ExecResult, Session } from './transport.js';

export class Ssh2Session implements Session {
  /** why the connection is gone; null while it is up */
  private lost: string | null = null;
  /** the last error ssh2 reported on this connection (usually just before `close`) */
  private lastError: string | null = null;
  private closedByUs = false;
  private readonly pending = new Set<(reason: string) => void>();
  /** the command loop (channel.ts) every command goes through, once started */
  private loop: CommandChannel | null = null;
  private loopOpening: Promise<CommandChannel | null> | null = null;
  /** the loop cannot run on this server: one exec per command from now on */
  private loopRefused: string | null = null;
  /** this server cannot list its processes (PROCS_WORK_SH): every command is refused at once */
  private noProcs = false;
  /** SSH sessions (channels) opened on this connection: the loop's, and one per command without it */
  channelsOpened = 0;

  constructor(
    private readonly client: Client,
    private readonly target: { label: string },
    private readonly sshCfg: SshConfig,
    private readonly onClose: (s: Ssh2Session) => void,
  ) {
    client.on('error', (err: unknown) => {
      // After `ready`, an error usually precedes `close`: keep it as the reason.
      this.lastError = describeDrop(err);
    });
    client.on('close', () => {
      const reason = this.closedByUs ? 'session closed' : (this.lastError ?? 'the server closed the connection');
      this.lost = reason;
      for (const fail of [...this.pending]) fail(reason);
      this.pending.clear();
      this.onClose(this);
    });
  }

  get connected(): boolean {
    return this.lost === null && !this.closedByUs;
  }

  /** Why commands go one exec each on this server (the loop could not start), or null. */
  get fallback(): string | null {
    return this.loopRefused;
  }

  /** Start the command loop now (no command runs), so the first exec does not wait for it. */
  async warm(signal?: AbortSignal): Promise<void> {
    if (!this.connected || this.loopRefused !== null || this.noProcs) return;
    await this.commandLoop(signal);
  }

  /**
   * The started loop, free for a command; null when this command must go by its own exec: the
   * loop cannot run here, it is busy with another command, or it could not be opened now.
   */
  private async commandLoop(signal?: AbortSignal): Promise<CommandChannel | null> {
    if (this.loop?.open) return this.loop.busy ? null : this.loop;
    if (this.loopRefused !== null) return null;
    this.loopOpening ??= this.openLoop(signal).finally(() => {
      this.loopOpening = null;
    });
    const loop = await this.loopOpening;
    return loop && loop.open && !loop.busy ? loop : null;
  }

  private openLoop(signal?: AbortSignal): Promise<CommandChannel | null> {
    const handshakeMs = Math.min(this.sshCfg.connectTimeoutMs, LOOP_HANDSHAKE_MS);
    return new Promise<CommandChannel | null>((resolve) => {
      let settled = false;
      let opening: NodeJS.Timeout | undefined;
      const done = (loop: CommandChannel | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(opening);
        this.pending.delete(onLost);
        if (loop) this.loop = loop;
        resolve(loop);
      };
      const onLost = () => done(null);
      this.pending.add(onLost);
      try {
        this.channelsOpened++;
        // A server that never answers the channel open (a wedged sshd; with keepalives off nothing
        // else notices) must not hold the command forever: it goes by its own exec, bounded by its
        // timeout. No verdict on the loop from that: the next command tries it again.
        opening = setTimeout(() => done(null), handshakeMs);
        this.client.exec(LOOP_COMMAND, (err, ch) => {
          clearTimeout(opening);
          // a refused session would refuse the command's own exec too: that one reports it
          if (err) return done(null);
          if (settled) return ch.close();
          void CommandChannel.start(ch, handshakeMs, signal).then((r) => {
            if (r instanceof CommandChannel) return done(r);
            if (r.noProcs) this.noProcs = true;
            // no verdict on the server from an abort or a lost connection
            else if (r.failed !== 'aborted' && this.connected) this.loopRefused = r.failed;
            done(null);
          });
        });
      } catch {
        done(null);
      }
    });
  }

  exec(command: string, options: ExecOptions = {}): Promise<ExecResult> {
    if (this.noProcs) return Promise.resolve(refused(this.sshCfg));
    if (this.closedByUs || this.lost !== null || options.signal?.aborted || this.loopRefused !== null || command.includes('\0')) {
      return this.execDirect(command, options);
    }
    // busy looked at again here: another exec may have taken the loop since it was handed out
    return this.commandLoop(options.signal).then((loop) => {
      if (this.noProcs) return refused(this.sshCfg);
      return loop && loop.open && !loop.busy ? this.execLoop(loop, command, options) : this.execDirect(command, options);
    });
  }

  /** One command through the loop: the same results, timeouts and kills as execDirect. */
  private execLoop(loop: CommandChannel, command: string, options: ExecOptions): Promise<ExecResult> {
    const started = Date.now();
    const timeoutMs = options.timeoutMs ?? this.sshCfg.commandTimeoutMs;
    const stdout = new TailBuffer(this.sshCfg.outputLimitBytes);
    const stderr = new TailBuffer(this.sshCfg.outputLimitBytes);
    const result = (end: CommandEnd): ExecResult => ({
      ...describeEnd(end, timeoutMs, this.sshCfg),
      stdout: stdout.toString(),
      stderr: stderr.toString(),
      durationMs: Date.now() - started,
    });
    // Closing the loop's channel kills the command on the server (its stdin watchdog); the next
    // command starts a new loop. The loop's timer counts `sleep 1`s, each a little over a second:
    // 1 % more for long timeouts.
    const noAnswerMs = timeoutMs > 0 ? timeoutMs + SUPERVISOR_GRACE_MS + Math.ceil(timeoutMs / 100) : 0;
    return this.untilEnd(options.signal, noAnswerMs, () => loop.close(), result, (w) => {
      const sinks = { stdout: (b: Buffer) => stdout.push(b), stderr: (b: Buffer) => stderr.push(b) };
      void loop.run(command, wholeSeconds(timeoutMs), sinks, deadManOf(this.sshCfg), options.fence).then((r) => {
        if ('kind' in r) {
          // The connection's own close (with its reason) usually follows at once: let it speak.
          // A lost channel is a lost connection: the caller reconnects as after one.
          const channel = `the command channel ${r.kind === 'closed' ? 'closed while the command ran' : `broke (${r.detail})`}`;
          setImmediate(() => w.end(this.goneEnd(this.lost ?? channel)));
        } else if (r.how === 'timeout') w.end({ how: 'timeout' });
        // (after a dead-man kill the loop has ended: the next command starts a new one)
        else if (r.how === 'deadman') w.end({ how: 'deadman' });
        else if (r.how === 'held') w.end({ how: 'held', holder: r.holder ?? '' });
        else if (r.signal) w.end({ how: 'signal', signal: r.signal });
        else w.end({ how: 'exit', code: r.status });
      });
    });
  }

  /** One command on its own exec, under the supervisor (remote-run.ts): where the loop cannot run. */
  private execDirect(command: string, options: ExecOptions): Promise<ExecResult> {
    const started = Date.now();
    const timeoutMs = options.timeoutMs ?? this.sshCfg.commandTimeoutMs;
    const stdout = new TailBuffer(this.sshCfg.outputLimitBytes);
    const stderr = new TailBuffer(this.sshCfg.outputLimitBytes);
    const result = (end: CommandEnd): ExecResult => {
      const run = splitRunOutput(stderr.toString());
      const said = supervisedEnd(end, run);
      // it refused before running anything of the command; so will every other command here
      if (said.how === 'noprocs') this.noProcs = true;
      return { ...describeEnd(said, timeoutMs, this.sshCfg), stdout: stdout.toString(), stderr: run.stderr, durationMs: Date.now() - started };
    };

    if (this.closedByUs) return Promise.resolve(result({ how: 'not-connected', why: `the session to ${this.target.label} was closed` }));
    if (this.lost !== null) return Promise.resolve(result({ how: 'not-connected', why: `connection lost: ${this.lost}` }));
    if (options.signal?.aborted) return Promise.resolve(result({ how: 'aborted' }));

    let channel: ClientChannel | null = null;
    let opening: NodeJS.Timeout | undefined;
    let beats: NodeJS.Timeout | undefined;
    const killChannel = () => {
      if (!channel) return;
      try {
        sendSignal(channel, 'KILL');
      } catch {
        /* the server may not support signals; closing is what matters */
      }
      try {
        channel.close();
      } catch {
        /* already closed */
      }
    };
    const stopTimers = () => {
      clearTimeout(opening);
      clearInterval(beats);
    };
    // The supervisor kills it on the server at timeoutMs; the wait for no answer is for a server
    // that does not answer at all. Closing the channel then makes the supervisor kill it too (hang-up).
    const noAnswerMs = timeoutMs > 0 ? timeoutMs + SUPERVISOR_GRACE_MS : 0;
    return this.untilEnd(options.signal, noAnswerMs, killChannel, result, (w) => {
      let exitCode: number | null = null;
      let exitSignal: string | null = null;
      const deadMan = deadManOf(this.sshCfg);
      try {
        this.channelsOpened++;
        // The command timer covers a channel open nobody answers; without a timeout this does.
        if (timeoutMs <= 0) {
          opening = setTimeout(() => {
            w.end({ how: 'not-started', why: `the server did not answer the request for a session within ${formatDuration(this.sshCfg.connectTimeoutMs)}` });
          }, this.sshCfg.connectTimeoutMs);
        }
        this.client.exec(supervised(command, timeoutMs, deadMan.seconds * 1000, options.fence), (err, ch) => {
          clearTimeout(opening);
          if (err) return w.end({ how: 'not-started', why: err.message });
          channel = ch;
          // timed out or aborted while the channel was opening
          if (w.done) return killChannel();
          ch.on('data', (d: Buffer) => stdout.push(d));
          ch.stderr.on('data', (d: Buffer) => stderr.push(d));
          ch.on('exit', (code: number | null, signal?: string) => {
            if (typeof code === 'number') exitCode = code;
            else if (signal) exitSignal = signal.replace(/^SIG/, '');
          });
          ch.on('close', () => {
            if (exitCode !== null) w.end({ how: 'exit', code: exitCode });
            else if (exitSignal !== null) w.end({ how: 'signal', signal: exitSignal });
            else if (this.lost !== null) w.end(this.goneEnd(this.lost));
            else w.end({ how: 'no-status' });
          });
          // The command's own stdin is /dev/null; the channel's stays open while it runs: its
          // end tells the supervisor we are gone (an interrupt, our timeout, a dead connection),
          // and the beats on it that we are still here (their silence: a partition, a freeze).
          if (deadMan.seconds > 0) {
            beats = setInterval(() => {
              try {
                ch.write(BEAT);
              } catch {
                /* the channel is going: its close says so */
              }
            }, deadMan.everyMs);
          }
        });
      } catch (err) {
        w.end({ how: 'not-connected', why: errorMessage(err) });
      }
    }, stopTimers);
  }

  /**
   * Wait for the end of a command `start` sent: the first of what `start` reports (`w.end`), the
   * connection going away, `signal`, or `noAnswerMs` (0: never) without an answer; for the last
   * two `kill` stops it on the server. The result is made once, at that end, by `result`;
   * `cleanup` stops what `start` left running.
   */
  private untilEnd(
    signal: AbortSignal | undefined,
    noAnswerMs: number,
    kill: () => void,
    result: (end: CommandEnd) => ExecResult,
    start: (w: { end(e: CommandEnd): void; readonly done: boolean }) => void,
    cleanup?: () => void,
  ): Promise<ExecResult> {
    return new Promise<ExecResult>((resolve) => {
      let done = false;
      let timer: NodeJS.Timeout | undefined;
      const end = (e: CommandEnd) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        cleanup?.();
        signal?.removeEventListener('abort', onAbort);
        this.pending.delete(onLost);
        resolve(result(e));
      };
      const onLost = (reason: string) => end(this.goneEnd(reason));
      const onAbort = () => {
        kill();
        end({ how: 'aborted' });
      };
      this.pending.add(onLost);
      signal?.addEventListener('abort', onAbort, { once: true });
      if (noAnswerMs > 0) {
        timer = setTimeout(() => {
          kill();
          end({ how: 'no-answer' });
        }, noAnswerMs);
      }
      start({
        end,
        get done() {
          return done;
        },
      });
    });
  }

  /** The end of a command whose connection went away while it ran (`reason`), or that we closed. */
  private goneEnd(reason: string): CommandEnd {
    return this.closedByUs ? { how: 'closed' } : { how: 'lost', reason };
  }

  close(): void {
    if (this.closedByUs) return;
    this.closedByUs = true;
    this.client.end();
    // end() is polite; make sure the socket goes even if the server does not answer.
    setTimeout(() => this.client.destroy(), 2000).unref();
  }
}

/**
 * Send a `signal` channel request. ssh2's public `channel.signal()` silently does nothing once we
 * have sent EOF (which we do right after starting every command, so it cannot wait on stdin), yet
 * the protocol allows requests after EOF, and OpenSSH's sshd (>= 7.9) then kills the command's
 * process group. So go through the protocol object when it is there. (sshd refuses signals for
 * sessions under a ForceCommand; closing the channel then leaves the remote command running.)
 */
function sendSignal(ch: ClientChannel, name: string): void {
  const internal = ch as unknown as {
    outgoing?: { id?: unknown; state?: unknown };
    _client?: { _protocol?: { signal?: (id: number, signal: string) => void } };
  };
  const proto = internal._client?._protocol;
  const id = internal.outgoing?.id;
  const state = internal.outgoing?.state;
  if (proto && typeof proto.signal === 'function' && typeof id === 'number' && (state === 'open' || state === 'eof')) {
    proto.signal(id, name);
  } else {
    ch.signal(name);
  }
}

/** The result of every command on a server that cannot list its processes (PROCS_WORK_SH). */
function refused(sshCfg: SshConfig): ExecResult {
  return { ...describeEnd({ how: 'noprocs' }, 0, sshCfg), stdout: '', stderr: '', durationMs: 0 };
}

/** How long after its timeout a command's supervisor has to report it killed before we stop waiting. */
const SUPERVISOR_GRACE_MS = 5_000;

/** How long the command loop has to answer its handshake (at most ssh.connect_timeout) before a server gets one exec per command. */
const LOOP_HANDSHAKE_MS = 5_000;

function describeDrop(err: unknown): string {
  const code = errorCode(err);
  const msg = errorMessage(err);
  if (/keepalive/i.test(msg)) return 'no answer to keepalives (the server or the network is down)';
  return code && !msg.includes(code) ? `${msg} (${code})` : msg;
}
