import { EXIT } from '../errors.js';
import { checkLocalSsh } from '../ssh/transport.js';
import { resolveServers, unlockServers } from '../rollout/unlock.js';
import type { CliContext } from './context.js';
import { specOf } from '../model/records.js';

const SEVERITY = { none: 0, cleared: 0, shown: 1, refused: 1, failed: 2 } as const;

export async function unlockCommand(ctx: CliContext, names: string[], opts: { yes?: boolean; update?: string }): Promise<number> {
  const store = await ctx.store();
  if (opts.yes) ctx.announceDb();
  // Every name is known, and our side of SSH works, before any server is looked at.
  const servers = await resolveServers(store, names, opts.update);
  for (const s of servers) await checkLocalSsh(await ctx.transport(), (await store.getUpdate(s.updateName)).settings.ssh, `cannot unlock ${s.name}`, [specOf(s)]);
  const results = await unlockServers({ store, transport: await ctx.transport(), now: () => ctx.clock.now(), liveness: ctx.liveness }, servers, { yes: Boolean(opts.yes) });
  if (ctx.opts.json) ctx.printJson({ db: store.location, results });
  else {
    for (const r of results) ctx.print(`${r.server} (${r.account}): ${r.message}`);
    const shown = results.filter((r) => r.outcome === 'shown');
    if (shown.length) {
      ctx.print(`nothing was changed; to clear ${shown.length === 1 ? 'it' : 'them'}: ${ctx.cmd(`unlock ${shown.map((r) => r.server).join(' ')} --yes`)}`);
    }
  }
  const worst = Math.max(0, ...results.map((r) => SEVERITY[r.outcome]));
  return worst === 0 ? EXIT.ok : worst === 1 ? EXIT.usage : EXIT.failure;
}
