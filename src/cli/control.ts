import { freezeJson, statusDocument, statusOf, updateJson, updateSummaryJson, type FreezeJson, type UpdateJson } from '../output/status-json.js';
import { fitParts, withSep } from '../output/fit.js';
import { activeFreezeOf, unfreezeHint } from '../plan/freeze.js';
import { describeFreeze } from '../model/freeze.js';
import type { FreezeRecord } from '../model/records.js';
import { ndjsonLine } from '../output/ndjson.js';
import { groupBy, logsBlocks, updateText, updatesListText } from '../output/text.js';
import { visibleLine } from '../output/visible.js';
import { cancelUpdate, requestPause } from '../rollout/control.js';
import { splitUpdate } from '../rollout/split.js';
import { forgetUpdate } from '../plan/forget.js';
import { plural } from '../util/plural.js';
import { TERMINAL_UPDATE } from '../model/lifecycle.js';
import { holderIsDead } from '../rollout/lease.js';
import { budgetOf } from '../rollout/decide.js';
import { exitCodeFor, failedSince, worstExit } from '../rollout/outcome.js';
import { watchParts } from '../output/watch.js';
import type { ReportStore } from '../store/port.js';
import { UsageError } from '../errors.js';
import { didYouMean } from '../util/did-you-mean.js';
import { type CliContext, parseCount } from './context.js';

export async function pauseCommand(ctx: CliContext, name: string): Promise<number> {
  const store = await ctx.store();
  ctx.announceDb();
  const { alreadyPaused, pausedNow } = await requestPause(store, name, ctx.clock.now(), ctx.liveness);
  const u = await store.getUpdate(name);
  ctx.result(`${name} ${(await store.getUpdate(name)).status === 'paused' ? 'paused' : 'pause-requested'}`);
  if (ctx.opts.json) ctx.printJson(await statusDocument(store, name));
  else if (alreadyPaused) ctx.print(`${name} is already paused; continue it with: ${ctx.cmd(`resume ${name}`)}`);
  else if (pausedNow) ctx.print(`${name} paused (no process was executing it and no server was in flight); continue with: ${ctx.cmd(`resume ${name}`)}`);
  else if (u.lease && !holderIsDead(u.lease, ctx.clock.now(), ctx.liveness)) {
    ctx.print(`pause requested: ${name} stops as paused once the server in flight finishes (executor pid ${u.lease.pid} on ${u.lease.host})`);
  } else {
    ctx.print(`pause requested: no process is executing ${name} now; \`${ctx.cmd(`start ${name}`)}\` takes it over, finishes the server in flight and pauses`);
  }
  return 0;
}

export async function cancelCommand(ctx: CliContext, name: string): Promise<number> {
  const store = await ctx.store();
  ctx.announceDb();
  const { leftForAPerson, alreadyCancelled } = await cancelUpdate(store, name, ctx.clock.now(), ctx.liveness);
  ctx.result(`${name} cancelled`);
  if (ctx.opts.json) ctx.printJson(await statusDocument(store, name));
  else if (alreadyCancelled) ctx.print(`${name} is already cancelled; nothing runs`);
  else {
    ctx.print(`${name} cancelled; nothing more will run`);
    for (const s of leftForAPerson) ctx.print(`  ${s.name} (${s.user}@${s.host}:${s.port}) is fatal, for a person: ${s.error}`);
    // A server prepared ahead of its turn (agent.prepare) by an executor that died may still carry
    // our lock: cancel runs nothing remotely, so say how to clear it.
    for (const s of (await store.getServers(name)).filter((x) => x.lockHeld && x.status === 'pending')) {
      ctx.print(`  ${s.name} may still carry this update's lock (it was prepared ahead of its turn): ${ctx.cmd(`unlock ${s.name} --update ${name} --yes`)}`);
    }
  }
  return 0;
}

export async function forgetCommand(ctx: CliContext, name: string): Promise<number> {
  const store = await ctx.store();
  ctx.announceDb();
  const gone = await forgetUpdate(store, name, ctx.clock.now(), ctx.liveness);
  ctx.result(`${gone.map((g) => g.name).join(' ')} forgotten`);
  if (ctx.opts.json) ctx.printJson({ forgotten: gone });
  else {
    for (const g of gone) ctx.print(`forgot ${g.name} (${g.status}, ${plural(g.servers, 'server')}; it never ran): its plan, probes and events are removed`);
    ctx.print(`the name ${name} is free again`);
  }
  return 0;
}

export async function splitCommand(ctx: CliContext, name: string, opts: { batches?: string }): Promise<number> {
  const n = parseCount('--batches', opts.batches, 1);
  if (n === undefined) throw new UsageError('split needs --batches N');
  const store = await ctx.store();
  ctx.announceDb();
  const names = await splitUpdate(store, name, n);
  ctx.result(names.join(' '));
  if (ctx.opts.json) ctx.printJson({ updates: names });
  else {
    for (const b of names) ctx.print(`${b}: ${(await store.getServers(b)).filter((s) => s.status === 'pending').map((s) => s.name).join(', ')}`);
    const done = (await store.getServers(name)).filter((s) => s.status !== 'pending');
    if (done.length > 0) {
      const shown = done.slice(0, 5).map((s) => `${s.name} (${s.status})`).join(', ');
      ctx.print(`${name} also keeps the ${done.length === 1 ? 'server' : `${done.length} servers`} not pending: ${shown}${done.length > 5 ? ', …' : ''}`);
    }
    const paused = (await store.getUpdate(name)).status === 'paused';
    ctx.print(`\n${paused ? 'continue' : 'run'} them in parallel with: ${ctx.cmd(`${paused ? 'resume' : 'start'} ${names.join(' ')}`)}`);
  }
  return 0;
}

/**
 * The exit code a `status --watch` of `name` ends with, once the update ended or paused: the
 * outcome of its last run, as `start`/`resume` exit (rollout/outcome.ts): 0 success, 1 failure,
 * partial-success or cancelled, 3 a clean pause, 5 a pause after a server of that run (since its
 * last start, resume or takeover) failed or was rolled back.
 */
async function watchedOutcome(store: ReportStore, name: string): Promise<number> {
  const u = await store.getUpdate(name);
  if (u.status !== 'paused') return exitCodeFor(u.status);
  const lastRun = (await store.runEvents(name)).at(-1)?.at ?? null;
  return exitCodeFor(u.status, failedSince(await store.getServers(name), lastRun));
}

export async function statusCommand(ctx: CliContext, name: string | undefined, opts: { watch?: boolean; interval?: string; wide?: boolean }): Promise<number> {
  const store = await ctx.store();
  const intervalMs = (parseCount('--interval', opts.interval, 1) ?? 2) * 1000;
  // Only what is printed is made (the table or the document), the budget only for an update
  // that has one, and the list from counts in SQL, not every update's servers. The text is
  // fitted to the terminal (ctx.width: none with --wide or through a pipe), read at each frame.
  const render = async (): Promise<{ text: () => string; json: () => Promise<UpdateJson | { updates: Omit<UpdateJson, 'servers'>[]; freezes: FreezeJson[] }>; done: boolean; active: string[] }> => {
    if (name !== undefined) {
      const { u, servers, budget, split } = await statusOf(store, name);
      const done = TERMINAL_UPDATE.has(u.status) || u.status === 'paused';
      // a deploy freeze of its repo: a line above the table, `frozen` in the JSON (absent when none)
      const frozen = await activeFreezeOf(store, u.repo);
      // --watch: the live view's progress line under the table (over every batch of a split)
      const text = () => {
        const width = ctx.width();
        const progress = opts.watch ? `\n\n${fitParts([{ text: ' ' }, ...withSep(watchParts(split ?? [{ u, servers }], ctx.clock.now().getTime()), ' ')], width)}` : '';
        return (frozen ? `${freezeLine(frozen)}\n\n` : '') + updateText(u, servers, budget, { width, batches: split }) + progress;
      };
      const json = () => Promise.resolve({ ...updateJson(u, servers, budget, split), ...(frozen ? { frozen: freezeJson(frozen) } : {}) });
      return { text, json, done, active: done ? [] : [name] };
    }
    const counts = await store.countsByUpdate();
    const all = (await store.listUpdates()).map((u) => ({ u, counts: counts.get(u.name) ?? { total: 0 } }));
    const freezes = (await store.freezes()).filter((f) => f.unfrozenAt === null);
    return {
      text: () => [...freezes.map((f) => freezeLine(f)), ...(freezes.length ? [''] : []), updatesListText(all, ctx.width())].join('\n'),
      json: async () => {
        const updates: Omit<UpdateJson, 'servers'>[] = [];
        for (const { u, counts } of all) updates.push(updateSummaryJson(u, counts, budgetOf(u) !== null ? await store.budgetUse(u) : undefined));
        return { updates, freezes: freezes.map(freezeJson) };
      },
      done: all.every(({ u }) => TERMINAL_UPDATE.has(u.status) || u.status === 'paused'),
      active: all.filter(({ u }) => !TERMINAL_UPDATE.has(u.status) && u.status !== 'paused').map(({ u }) => u.name),
    };
  };
  /** --watch --json: the last document printed, without the executor's heartbeat (it moves every few seconds) */
  let lastShown: string | null = null;
  /** --watch: the updates not ended or paused when it began, whose outcomes it exits with (one named: that one) */
  let watched: string[] | null = null;
  for (;;) {
    const r = await render();
    watched ??= name !== undefined ? [name] : r.active;
    if (ctx.opts.json && opts.watch) {
      // NDJSON: one whole document per line, written when it changed (docs/reference/events.md "status --watch --json").
      const json = await r.json();
      const seen = JSON.stringify(json, (k, v: unknown) => (k === 'heartbeat' ? undefined : v));
      if (seen !== lastShown) ctx.out.write(ndjsonLine(json));
      lastShown = seen;
    } else if (ctx.opts.json) ctx.printJson(await r.json());
    else {
      if (opts.watch && ctx.out.isTTY) ctx.out.write('\x1b[2J\x1b[H');
      ctx.out.write(r.text() + '\n');
    }
    if (!opts.watch) return 0;
    // a watch that ends exits with the outcome (the worst of those it followed), so CI can gate on it
    if (r.done) return worstExit(await Promise.all(watched.map((n) => watchedOutcome(store, n))));
    await ctx.clock.sleep(intervalMs);
  }
}

/** `status`'s line for a freeze in force: the repo, who froze it, when and why, and how to lift it. */
function freezeLine(f: FreezeRecord): string {
  return `FROZEN: deploys of ${visibleLine(f.repo)} ${visibleLine(describeFreeze(f))} (start, resume and auto refuse them; lift it with: ${unfreezeHint(f)})`;
}

export async function logsCommand(ctx: CliContext, name: string, opts: { server?: string; raw?: boolean }): Promise<number> {
  const store = await ctx.store();
  await store.getUpdate(name);
  const servers = (await store.getServers(name)).filter((s) => opts.server === undefined || s.name === opts.server);
  if (opts.server !== undefined && servers.length === 0) {
    throw new UsageError(`update ${name} has no server named ${JSON.stringify(opts.server)}${didYouMean(opts.server, (await store.getServers(name)).map((s) => s.name))}`);
  }
  const steps = await store.getJournal(name, opts.server);
  const events = await store.getEvents(name);
  if (ctx.opts.json) {
    const stepsOf = groupBy(steps, (st) => st.serverId);
    const eventsOf = groupBy(events, (e) => e.serverName);
    ctx.printJson({
      name,
      servers: servers.map((s) => ({
        name: s.name,
        status: s.status,
        steps: (stepsOf.get(s.id) ?? []).map(({ id: _id, serverId: _sid, updateName: _u, serverName: _n, ...st }) => st),
        events: (eventsOf.get(s.name) ?? []).map((e) => ({ at: e.at, kind: e.kind, message: e.message, actor: e.actor })),
      })),
      events: events.filter((e) => e.serverName === null).map((e) => ({ at: e.at, kind: e.kind, message: e.message, actor: e.actor })),
    });
  } else {
    const own = events.filter((e) => e.serverName === null);
    for (const e of own) ctx.out.write(`${e.at}  ${opts.raw ? e.message : visibleLine(e.message)}\n`);
    ctx.out.write('\n');
    let first = true;
    for (const block of logsBlocks(servers, steps, events, { raw: opts.raw })) {
      ctx.out.write(first ? block : '\n' + block);
      first = false;
    }
  }
  return 0;
}
