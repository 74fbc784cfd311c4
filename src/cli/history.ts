import { loadEffectiveConfig } from '../config/load.js';
import { UsageError } from '../errors.js';
import { historyText, updatesHistoryText, updateTimelineText } from '../output/history-text.js';
import { readHistory, readUpdatesHistory, readUpdateTimeline } from '../rollout/history.js';
import type { CliContext } from './context.js';

/**
 * `history` (read-only; a missing database is exit 2, never created), four views:
 * - `history [--server S]`: each server's commits over time, across updates;
 * - `history --updates`: every update in order, per source repo, with the repo's freezes;
 * - `history -c FILE`: the same for the config's source repo only (read as `config -c` reads it);
 * - `history NAME`: one update's lineage and every event recorded for it.
 * Each table fitted to the terminal's width (ctx.width: none with --wide or through a pipe).
 */
export async function historyCommand(ctx: CliContext, name: string | undefined, opts: { server?: string; config?: string; updates?: boolean; wide?: boolean }): Promise<number> {
  if (name !== undefined && (opts.server !== undefined || opts.config !== undefined || opts.updates)) {
    throw new UsageError('history NAME shows one update: give it no --server, -c or --updates');
  }
  if (opts.server !== undefined && (opts.config !== undefined || opts.updates)) {
    throw new UsageError('history --server shows one server across updates; --updates and -c list updates: one at a time');
  }
  // the config first: a bad one is exit 2 before the database is opened
  const repo = opts.config === undefined ? undefined : loadEffectiveConfig(opts.config, { localAsWarnings: true }).config.source.repo;
  const store = await ctx.store();
  if (name !== undefined) {
    const t = await readUpdateTimeline(store, name);
    if (ctx.opts.json) ctx.printJson({ db: store.location, ...t });
    else ctx.out.write(updateTimelineText(t, ctx.width()) + '\n');
    return 0;
  }
  if (opts.updates || repo !== undefined) {
    const h = await readUpdatesHistory(store, repo);
    if (ctx.opts.json) ctx.printJson({ db: store.location, ...h });
    else ctx.out.write(updatesHistoryText(h, store.location, repo, ctx.width()) + '\n');
    return 0;
  }
  const h = await readHistory(store, opts.server);
  if (ctx.opts.json) ctx.printJson({ db: store.location, ...h });
  else ctx.out.write(historyText(h, store.location, opts.server, ctx.width()) + '\n');
  return 0;
}
