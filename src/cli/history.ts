import { historyText } from '../output/text.js';
import { readHistory } from '../rollout/history.js';
import type { CliContext } from './context.js';

/** `history [--server S] [--json]`: read-only (a missing database is exit 2, never created). */
export async function historyCommand(ctx: CliContext, opts: { server?: string }): Promise<number> {
  const store = await ctx.store();
  const h = await readHistory(store, opts.server);
  if (ctx.opts.json) ctx.printJson({ db: store.location, ...h });
  else ctx.out.write(historyText(h, store.location, opts.server) + '\n');
  return 0;
}
