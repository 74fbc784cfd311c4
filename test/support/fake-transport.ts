/**
 * The fake Transport of the tests that run the engine (or the CLI) without a network: servers
 * as plain data, answering the commands of fakeSettings (`version`, `reset {commit}` moves the
 * commit, `restart` brings it online unless the commit is broken, `health`, and `diag …`, which
 * echoes itself with the commit); the lock scripts (rollout/remote-lock.ts) and the fence
 * (ssh/fence.ts) in front of a command run for real with /bin/sh in each server's own home.
 * A test adds to it: scripted answers (`answer`), a hook around every command (`intercept`),
 * refused connections (`onConnect`), a hook inside preflight; every command sent is recorded.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ServerSpec, SshConfig } from '../../src/config/types.js';
import { LOCK_FILE, LOCK_SCRIPT_END } from '../../src/rollout/remote-lock.js';
import type { ExecOptions, ExecResult, Session, Transport } from '../../src/ssh/transport.js';
import { runFence } from './fence.js';

/** A command that exited with `code` (0 by default), as a fake answers it. */
export function exited(code: number | null, stdout = '', stderr = ''): ExecResult {
  return { code, stdout, stderr, timedOut: false, ended: 'exit', error: null, durationMs: 1 };
}

/** A command cut off by a lost connection. */
export function lostConnection(error = 'connection lost: read ECONNRESET'): ExecResult {
  return { code: null, stdout: '', stderr: '', timedOut: false, ended: 'lost', error, durationMs: 1 };
}

export interface FakeServer<L = string> {
  commit: string;
  online: boolean;
  /** the operator's commands it ran (the lock scripts are not in it), each as `record` made it */
  log: L[];
  /** its home folder, where the lock scripts and the fence run for real */
  home: string;
  /** the lock scripts it ran, by what they did (acquired, released, held, …) */
  locks: string[];
}

export interface FakeOptions<L> {
  /** commits that do not come online after a restart */
  broken?: Iterable<string>;
  /** what a server's log keeps of each command it ran; the command itself by default */
  record?: (command: string, opts: ExecOptions | undefined) => L;
  /** runs inside each preflight, with its number (1-based); without it, preflight finds nothing wrong */
  onPreflight?: (n: number) => void | Promise<void>;
}

/** A session of the fake: `closed` once closed; `exec` as the transport answers (or refused, for a session made alone). */
export class FakeSession implements Session {
  closed = false;
  constructor(
    readonly server: string,
    private readonly run: (command: string, opts?: ExecOptions) => Promise<ExecResult> = () => {
      throw new Error(`no command is expected on ${server}`);
    },
  ) {}

  exec(command: string, opts?: ExecOptions): Promise<ExecResult> {
    return this.run(command, opts);
  }

  close(): void {
    this.closed = true;
  }
}

export class FakeTransport<L = string> implements Transport {
  readonly servers = new Map<string, FakeServer<L>>();
  /** every command sent, as `server: command`, lock scripts and all */
  readonly commands: string[] = [];
  /** a test's hook around every command: answer it itself, or call `next` to run it as usual */
  intercept: ((server: string, command: string, next: () => Promise<ExecResult>) => Promise<ExecResult>) | null = null;
  /** answer a command the server runs (it is in its log) instead of the model; undefined lets the model run it */
  answer: ((command: string, server: string) => ExecResult | undefined) | null = null;
  /** called on every connect: throw (a TransportError) to refuse it */
  onConnect: ((server: string) => void) | null = null;
  /** called after each lock script ran on a server */
  afterLock: ((server: string, result: ExecResult) => void) | null = null;
  private readonly broken: Set<string>;
  private readonly record: (command: string, opts: ExecOptions | undefined) => L;
  private homes: string | null = null;
  private preflights = 0;

  constructor(private readonly options: FakeOptions<L> = {}) {
    this.broken = new Set(options.broken);
    this.record = options.record ?? ((command) => command as L);
  }

  add(name: string, commit: string): FakeServer<L> {
    this.homes ??= mkdtempSync(join(tmpdir(), 'agent-update-fake-'));
    const s: FakeServer<L> = { commit, online: true, log: [], home: mkdtempSync(join(this.homes, `${name}-`)), locks: [] };
    this.servers.set(name, s);
    return s;
  }

  /** the content of the server's lock file, or null */
  lockOf(name: string): string | null {
    const file = join(this.servers.get(name)!.home, LOCK_FILE);
    return existsSync(file) ? readFileSync(file, 'utf8') : null;
  }

  async preflight(_ssh: SshConfig): Promise<void> {
    await this.options.onPreflight?.(++this.preflights);
  }

  async connect(server: ServerSpec): Promise<Session> {
    this.onConnect?.(server.name);
    const s = this.servers.get(server.name);
    return new FakeSession(server.name, async (command, opts) => {
      this.commands.push(`${server.name}: ${command}`);
      if (!s) throw new Error(`no fake server ${server.name}`);
      return this.withLock(server.name, s, command, opts);
    });
  }

  close(): void {
    if (this.homes !== null) rmSync(this.homes, { recursive: true, force: true });
  }

  /** A lock script in front of the command (or alone: the release) runs first, for real. */
  private async withLock(name: string, s: FakeServer<L>, command: string, opts: ExecOptions | undefined): Promise<ExecResult> {
    const end = command.indexOf(LOCK_SCRIPT_END);
    if (end < 0) return this.fenced(name, s, command, opts);
    const script = command.slice(0, end + LOCK_SCRIPT_END.length);
    const rest = command.slice(end + LOCK_SCRIPT_END.length).replace(/^\n/, '');
    const lockRun = async (): Promise<ExecResult> => {
      const r = spawnSync('/bin/sh', ['-c', script], { env: { HOME: s.home, PATH: process.env.PATH } });
      const out = r.stdout.toString();
      s.locks.push(...out.split('\n').filter((l) => /^agent-update-lock: [a-z-]+$/.test(l)).map((l) => l.slice('agent-update-lock: '.length)));
      const result = exited(r.status, out, r.stderr.toString());
      this.afterLock?.(name, result);
      return result;
    };
    // A lock script alone (release): a command of its own, which a test's hook sees as it is.
    if (rest === '') return this.intercept ? this.intercept(name, command, lockRun) : lockRun();
    const lock = await lockRun();
    if (lock.code !== 0) return lock;
    // (a lock script checks the token itself: the engine sends no fence with it)
    const r = await this.model(name, s, rest, opts);
    return { ...r, stdout: lock.stdout + r.stdout };
  }

  /** A command under the fencing token: the fence runs for real in the server's home first. */
  private async fenced(name: string, s: FakeServer<L>, command: string, opts: ExecOptions | undefined): Promise<ExecResult> {
    const f = runFence(command, opts?.fence, s.home);
    if (f === null) return this.model(name, s, command, opts);
    return 'notRun' in f ? f.notRun : this.model(name, s, f.run, opts);
  }

  private model(name: string, s: FakeServer<L>, command: string, opts: ExecOptions | undefined): Promise<ExecResult> {
    const run = () => this.run(name, s, command, opts);
    return this.intercept ? this.intercept(name, command, run) : run();
  }

  /** The server as plain data runs `command`. */
  private async run(name: string, s: FakeServer<L>, command: string, opts: ExecOptions | undefined): Promise<ExecResult> {
    s.log.push(this.record(command, opts));
    const answered = this.answer?.(command, name);
    if (answered) return answered;
    if (command === 'version') return exited(0, `${s.commit}\n`);
    const reset = /^reset '?([0-9a-f]{40})'?$/.exec(command);
    if (reset) {
      s.commit = reset[1]!;
      s.online = false;
      return exited(0);
    }
    if (command === 'restart') {
      s.online = !this.broken.has(s.commit);
      return exited(0);
    }
    if (command === 'health') return s.online ? exited(0, `online ${s.commit}`) : exited(7);
    if (command.startsWith('diag ')) return exited(0, `${command} saw ${s.commit}\n`);
    throw new Error(`unexpected command ${command}`);
  }
}
