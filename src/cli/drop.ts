import { statusDocument } from '../output/status-json.js';
import { visibleLine } from '../output/visible.js';
import { dropServers } from '../rollout/drop.js';
import { plural } from '../util/plural.js';
import type { CliContext } from './context.js';

/**
 * `drop NAME SERVER... [--reason TEXT]`: the servers become `excluded` in NAME (or in the batch
 * of its split that holds them), all or nothing; see rollout/drop.ts.
 */
export async function dropCommand(ctx: CliContext, name: string, servers: string[], opts: { reason?: string }): Promise<number> {
  const store = await ctx.store();
  const r = await dropServers(store, name, servers, { reason: opts.reason, now: ctx.clock.now() });
  ctx.announceDb();
  ctx.result(`${name} dropped ${r.dropped.map((d) => d.name).join(' ')}`);
  if (ctx.opts.json) {
    ctx.printJson({
      update: name,
      dropped: r.dropped.map((d) => ({ name: d.name, update: d.update })),
      notPending: r.notPending,
      error: r.error,
      status: await statusDocument(store, name),
    });
    return 0;
  }
  const here = r.dropped.filter((d) => d.update === name).map((d) => d.name);
  if (here.length > 0) ctx.print(`dropped from ${name}: ${here.join(', ')}`);
  const batches = [...new Set(r.dropped.filter((d) => d.update !== name).map((d) => d.update))];
  for (const b of batches) ctx.print(`dropped from ${b} (a batch of ${name}'s split): ${r.dropped.filter((d) => d.update === b).map((d) => d.name).join(', ')}`);
  ctx.print(`${r.dropped.length === 1 ? 'it is' : 'they are'} excluded (${visibleLine(r.error)}): never touched by start or resume`);
  if (r.notPending.length > 0) {
    ctx.print(`not pending, left as ${r.notPending.length === 1 ? 'it is' : 'they are'}: ${r.notPending.map((n) => `${n.name} (${n.status})`).join(', ')}`);
  }
  for (const d of r.dropped.filter((x) => x.lockHeld)) {
    // agent.prepare took our lock on it ahead of its turn and its release was not recorded
    ctx.print(`  ${d.name} may still carry ${d.update}'s lock (prepared ahead of its turn): it is released when ${d.update} pauses or ends, or now with ${ctx.cmd(`unlock ${d.name} --update ${d.update} --yes`)}`);
  }
  const left = (await store.getServers(name)).filter((s) => s.status === 'pending').length;
  const paused = (await store.getUpdate(name)).status === 'paused';
  if (left === 0) ctx.print(`${name} has no pending server left: ${ctx.cmd(`${paused ? 'resume' : 'start'} ${name}`)} ends it with nothing to do, or ${ctx.cmd(`cancel ${name}`)}`);
  else ctx.print(`${plural(left, 'server')} still pending; ${paused ? 'continue' : 'run'} with: ${ctx.cmd(`${paused ? 'resume' : 'start'} ${name}`)}`);
  return 0;
}
