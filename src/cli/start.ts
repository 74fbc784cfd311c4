import pLimit from 'p-limit';
import { actor } from '../util/actor.js';
import { AppError, EXIT, InterruptedError, StoreError, UsageError } from '../errors.js';
import { checkLocalSsh } from '../ssh/transport.js';
import { errorObject, eventObject, ndjsonLine, NdjsonWriter } from '../output/ndjson.js';
import { adviceAfterRun, type Advice } from '../output/advice.js';
import { statusDocument } from '../output/status-json.js';
import { visibleText } from '../output/visible.js';
import { assertRunnable, runUpdate, serversToReach } from '../rollout/run.js';
import { refuseIfFrozen } from '../plan/freeze.js';
import { requestPause } from '../rollout/control.js';
import { budgetOf } from '../rollout/decide.js';
import { HookRunner } from '../rollout/hooks.js';
import type { HookConfig } from '../config/types.js';
import type { RunOptions, RunResult } from '../rollout/engine.js';
import type { Reporter } from '../output/reporter.js';
import type { RolloutEvent } from '../rollout/events.js';
import type { Store } from '../store/port.js';
import type { UpdateRecord } from '../model/records.js';
import { unsafePlaceholders } from '../util/shell.js';
import { isFullCommit } from '../util/commit.js';
import { isWindowPause } from '../config/window.js';
import { worstExit } from '../rollout/outcome.js';
import { type CliContext, parseCount } from './context.js';
import { Interrupts } from './interrupts.js';


/**
 * Refuse (exit 2, nothing written) a pending or paused update whose stored plan this version
 * would run wrongly: planned by an older agent-update, with a placeholder where its value cannot
 * be quoted (see util/shell.ts), or an abbreviated rollback.commit that no version_command output
 * can ever equal. Cancel it and plan again.
 */
function assertPlanUsable(u: UpdateRecord, mode: RunOptions['mode']): void {
  if (u.status !== 'pending' && u.status !== 'paused') return;
  const { agent, restart, rollback } = u.settings;
  const commands: Array<[string, string]> = [
    ...agent.update.map((c, i): [string, string] => [`agent.update[${i}]`, c]),
    ...restart.map((r): [string, string] => [`agent.restart.${r}`, agent.restart[r] ?? '']),
    ['agent.health.command', agent.health.command],
  ];
  const again = `cancel it (\`agent-update cancel ${u.name}\`) and plan again`;
  for (const [key, command] of commands) {
    const bad = unsafePlaceholders(command)[0];
    if (bad) throw new UsageError(`cannot ${mode} ${u.name}: its plan was made by an older agent-update and in ${key} {${bad.name}} ${bad.refused}; ${again}`);
  }
  if (rollback.commit !== null && !isFullCommit(rollback.commit)) {
    throw new UsageError(
      `cannot ${mode} ${u.name}: its plan was made by an older agent-update and keeps rollback.commit ${rollback.commit} abbreviated, ` +
        `so every rollback would end fatal; ${again}`,
    );
  }
}

/**
 * `start` / `resume`. SIGINT and SIGTERM are caught from the command's first line (`caught`,
 * made by main before this module loads): one that comes before any update is handed to the
 * engine stops the command there (exit 130, nothing written); after that the first one pauses
 * each update once its server in flight is done (exit 3), and a second stops at once (exit 130).
 */
export async function runCommand(
  ctx: CliContext,
  mode: RunOptions['mode'],
  names: string[],
  opts: { stopAfter?: string; parallel?: string; waitForWindow?: boolean; windowPauseOk?: boolean },
  caught?: Interrupts,
): Promise<number> {
  const interrupts = caught ?? new Interrupts();
  const hardStop = new AbortController();
  // A closed output never stops a rollout (output/closed.ts): what stderr says when stdout closes.
  const follow = ctx.cmd(names.length === 1 ? `status ${names[0]} --watch` : 'status --watch');
  const pauseIt = names.length === 1 ? ctx.cmd(`pause ${names[0]}`) : `${ctx.cmd('pause NAME')} for each`;
  ctx.goesOn = `the ${names.length === 1 ? 'rollout goes' : 'rollouts go'} on to ${names.length === 1 ? 'its' : 'their'} end or next pause (follow: ${follow}; pause: Ctrl-C, or ${pauseIt})`;
  /** true once the first update is handed to the engine: from then on a signal means "pause" */
  let started = false;
  let store: Store | null = null;
  /** updates whose pause was asked for this signal (once each) */
  const pauseAsked = new Set<string>();
  /**
   * Called by the signal handler and by the engine's `update-started` event, neither of which can
   * wait: the check and the request are one transaction, queued on the store the moment this is
   * called, so whatever the engine reads or writes after that comes after the request. Its
   * outcome is not waited for; an error (not running, or any more) means nothing to pause.
   */
  const askPause = (name: string) => {
    if (pauseAsked.has(name) || store === null) return;
    const now = ctx.clock.now();
    const by = `${interrupts.first ?? 'a signal'} to the executor (${actor()})`;
    // this call's own mark: a transaction run again (a connection lost before its COMMIT) asks again
    let mine = false;
    store
      .tx(async (t) => {
        if (pauseAsked.has(name) && !mine) return; // asked by a call queued before this one
        if ((await t.getUpdate(name)).status !== 'running') return; // not yet: asked when it starts (see emit)
        await requestPause(t, name, now, ctx.liveness, by);
        pauseAsked.add(name);
        mine = true;
      })
      .catch(() => {});
  };
  let reporter: Reporter | null = null;
  /** a message about a signal: above the live view when there is one (same terminal), else on stderr */
  const say = (text: string) => (reporter ? reporter.notice(text, ctx.err) : ctx.err.write(`\n${text}\n`));
  interrupts.handle((signal, count) => {
    if (count === 1 && !started) {
      ctx.err.write(`\n${signal}: stopping before any update starts; nothing is changed\n`);
    } else if (count === 1) {
      for (const name of names) askPause(name);
      say(`${signal}: pausing after the server in flight finishes; press Ctrl-C again to stop at once`);
    } else {
      say(`${signal}: stopping now; the server in flight stays recorded and \`${ctx.cmd(`start ${names.join(' ')}`)}\` takes it over`);
      hardStop.abort();
      setTimeout(() => process.exit(EXIT.interrupted), 3_000).unref();
    }
  });
  /** After each step of the preparation: a signal so far ends the command before anything is written. */
  const stopIfInterrupted = async () => {
    await interrupts.settle();
    if (interrupts.count > 0) {
      throw new InterruptedError(`${interrupts.first}: interrupted before any update started; nothing was changed (run \`${ctx.cmd(`${mode} ${names.join(' ')}`)}\` again)`);
    }
  };
  try {
    const stopAfter = parseCount('--stop-after', opts.stopAfter);
    const parallel = parseCount('--parallel', opts.parallel, 1) ?? Math.min(names.length, 10);
    const dup = names.find((n, i) => names.indexOf(n) !== i);
    if (dup) throw new UsageError(`${dup} is named twice`);
    // --parallel is how many of the named updates run at once, never servers of one update
    if (names.length === 1 && parallel > 1) {
      ctx.err.write(
        `warning: --parallel ${parallel} runs up to ${parallel} of the updates named at once (the batches of a split); each update runs its servers one at a time, ` +
          `so ${names[0]} runs one server at a time. To run its servers in parallel: \`${ctx.cmd(`split ${names[0]} --batches ${parallel}`)}\`, then start the batches it names\n`,
      );
    }
    await stopIfInterrupted();
    store = await ctx.store();
    ctx.announceDb();
    ctx.warnIfUnderNpx();
    const db = store;
    // Refuse the whole command before anything runs if any one update cannot start.
    const hooks = new Map<string, HookConfig[]>();
    const updates = [];
    for (const name of names) {
      await assertRunnable(db, name, mode);
      const u = await db.getUpdate(name);
      assertPlanUsable(u, mode);
      if (u.settings.hooks?.length) hooks.set(name, u.settings.hooks);
      updates.push(u);
    }
    // a deploy freeze of any one's repo: exit 3, nothing started (the engine looks again before each server)
    await refuseIfFrozen(db, updates, mode);
    for (const name of names) {
      await checkLocalSsh(await ctx.transport(), (await db.getUpdate(name)).settings.ssh, `cannot ${mode} ${name}`, serversToReach(await db.getServers(name)));
      await stopIfInterrupted();
    }
    // What to look at after each update's run, read from the store before its update-finished
    // event reaches the Reporter (execute), which prints it with the outcome.
    const advice = new Map<string, Advice>();
    reporter = await ctx.reporter(names.length > 1, (name) => advice.get(name) ?? { warnings: [], resumeHint: null });
    // what the plan database's store says while it waits for the database (above the live view)
    ctx.notify = say;
    const advise = async (name: string) => {
      const u = await db.getUpdate(name);
      // the failure budget's use, when it has one: what a resume after a guard's trip does depends on it
      advice.set(name, adviceAfterRun(u, await db.getServers(name), budgetOf(u) !== null ? await db.budgetUse(u) : undefined));
    };
    await stopIfInterrupted();
    started = true;
    const window = { waitForWindow: opts.waitForWindow === true, windowPauseOk: opts.windowPauseOk === true };
    return await execute(ctx, db, reporter, { mode, names, stopAfter, parallel, interrupts, hardStop, askPause, advise, hooks, ...window });
  } finally {
    reporter?.stop();
    interrupts.dispose();
  }
}

interface Execution {
  mode: RunOptions['mode'];
  names: string[];
  stopAfter: number | undefined;
  parallel: number;
  interrupts: Interrupts;
  hardStop: AbortController;
  askPause: (name: string) => void;
  /** reads the advice the Reporter prints after the update (see runCommand) */
  advise: (name: string) => Promise<void>;
  /** the hooks of each update that has some (its plan's settings) */
  hooks: ReadonlyMap<string, readonly HookConfig[]>;
  /** `--wait-for-window`: outside execution.window, wait for it instead of pausing */
  waitForWindow: boolean;
  /** `auto`: an update paused for its window is exit 0 (the next auto run resumes it), not 3 */
  windowPauseOk: boolean;
}

async function execute(ctx: CliContext, store: Store, reporter: Reporter, x: Execution): Promise<number> {
  const { mode, names, stopAfter, parallel, interrupts, hardStop } = x;
  // --json: stdout is the event stream (output/ndjson.ts), one line per event as it happens.
  const stream = ctx.opts.json ? new NdjsonWriter(ctx.out, () => ctx.clock.now()) : null;
  // An update reaches `running` inside the engine, after a signal may have come (while it
  // checked SSH once more): its pause is asked the moment it reports that it started.
 // The Reporter's lines of an update's end carry its advice, read from the store first: the
  // engine goes on meanwhile (it has nothing more to say of that update); they are all printed
  // before anything that follows the run.
  const finishing: Array<Promise<void>> = [];
  // Hooks get each event as the stream writes it, with the same `at` (rollout/hooks.ts).
  let hooks: HookRunner | null = null;
  const emit = (e: RolloutEvent) => {
    const at = ctx.clock.now();
    if (e.type === 'update-started' && interrupts.count > 0) x.askPause(e.update);
    if (e.type === 'update-finished') {
      const show = () => reporter.onEvent(e);
      finishing.push(x.advise(e.update).then(show, show));
    } else reporter.onEvent(e);
    stream?.event(e, at);
    hooks?.deliver(e, at);
  };
  if (x.hooks.size > 0) {
    hooks = new HookRunner((name) => x.hooks.get(name) ?? [], {
      store,
      clock: ctx.clock,
      liveness: ctx.liveness,
      emit,
      encode: (e, at) => ndjsonLine(eventObject(e, at)),
      signal: hardStop.signal,
    });
  }
  const deps = { store, transport: await ctx.transport(), clock: ctx.clock, liveness: ctx.liveness, emit, ...(hooks ? { hooks } : {}) };
  const limit = pLimit(parallel);
  try {
    // allSettled: a bug in one batch must not close the store under the others still running.
    const settled = await Promise.allSettled(
      names.map((name) =>
        limit(async (): Promise<RunResult | { update: string; error: AppError } | { update: string; notStarted: true }> => {
          // Interrupted before this update's turn (--parallel smaller than the names): do not start it.
          if (interrupts.count > 0) return { update: name, notStarted: true };
          try {
            return await runUpdate(deps, name, { mode, stopAfter, signal: hardStop.signal, waitForWindow: x.waitForWindow });
          } catch (e) {
            if (e instanceof AppError) return { update: name, error: e };
            throw e;
          }
        }),
      ),
    );
    await Promise.all(finishing);
    // the hook calls still queued, each bounded by its timeout, before the outcome is written
    await hooks?.drain();
    const bug = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (bug) throw bug.reason;
    const results = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const codes: number[] = [];
    for (const r of results) {
      // (a pause for the window after a server of the run failed stays exit 5)
      const windowOk = x.windowPauseOk && !('error' in r) && !('notStarted' in r) && r.exitCode === EXIT.paused && isWindowPause(r.reason);
      const code = 'error' in r ? r.error.exitCode : 'notStarted' in r ? EXIT.paused : windowOk ? EXIT.ok : r.exitCode;
      if ('error' in r) ctx.err.write(`agent-update: ${r.update}: ${visibleText(r.error.message)}\n`);
      codes.push(code);
    }
    // the worst of them: 1 > 5 > 4 > 3 > 0
    const worst = worstExit(codes);
    reporter.stop();
    if (stream) {
      // The last line: what a script reads (docs/reference/events.md "The last line").
      const documents = [];
      const warnings: string[] = [];
      try {
        for (const n of names) {
          documents.push(await statusDocument(store, n));
          const a = adviceAfterRun(await store.getUpdate(n), await store.getServers(n));
          warnings.push(...a.warnings, ...(a.resumeHint ? [a.resumeHint] : []));
        }
      } catch (e) {
        // The plan database is gone (what stopped the run): no document can be read. The last
        // line is then the error that stopped it (on stderr above), which says what to run once it is back.
        const gone = results.find((r): r is { update: string; error: AppError } => 'error' in r && r.error instanceof StoreError);
        if (!(e instanceof StoreError) || !gone) throw e;
        ctx.out.write(ndjsonLine(errorObject(gone.error, worst, gone.error.message, ctx.clock.now())));
        return worst;
      }
      stream.result(worst, documents, {
        errors: results.flatMap((r) => ('error' in r ? [{ update: r.update, error: r.error.message, exitCode: r.error.exitCode }] : [])),
        notStarted: results.flatMap((r) => ('notStarted' in r ? [r.update] : [])),
        warnings,
        failedInRun: results.flatMap((r) => ('failedInRun' in r ? r.failedInRun.map((f) => ({ update: r.update, ...f })) : [])),
      });
    } else {
      for (const r of results) {
        if ('error' in r) continue;
        if ('notStarted' in r) {
          ctx.print(`${r.update} not started (interrupted before its turn); run it with: ${ctx.cmd(`${mode} ${r.update}`)}`);
          continue;
        }
        // a paused update's line, with the resume to run, is the Reporter's (update-finished);
        // after a failure in this run, why it is not the clean pause a script may resume
        if (r.exitCode === EXIT.pausedAfterFailure) {
          const failed = r.failedInRun.map((f) => `${f.server} ${f.status}`).join(', ');
          ctx.print(`${r.update} paused after a failure in this run (${failed}): exit ${EXIT.pausedAfterFailure}, not the ${EXIT.paused} of a clean pause`);
        }
        if (r.status === 'paused') continue;
        if (r.status !== 'success') ctx.print(`see what happened: ${ctx.cmd(`status ${r.update}`)}; ${ctx.cmd(`logs ${r.update}`)}`);
      }
      const paused = results.flatMap((r) => ('error' in r || 'notStarted' in r || r.status !== 'paused' ? [] : [r.update]));
      if (paused.length > 1) ctx.print(`continue all ${paused.length} with: ${ctx.cmd(`resume ${paused.join(' ')}`)}`);
    }
    return worst;
  } finally {
    reporter.stop();
  }
}
