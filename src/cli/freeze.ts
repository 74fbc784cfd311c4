/**
 * `freeze -c FILE --reason TEXT` and `unfreeze -c FILE` (issue 25; plan/freeze.ts): a deploy
 * freeze of the config's source repo in the plan store. Freezing a frozen repo changes nothing
 * (exit 0, saying who froze it and why); unfreezing one that is not frozen changes nothing (exit
 * 0). The config is read as `config -c` reads it: a key file missing on this machine does not
 * matter here (a freeze connects to nothing), a real mistake is exit 2.
 */
import { loadEffectiveConfig } from '../config/load.js';
import { UsageError } from '../errors.js';
import { describeFreeze, isFreezePause, repoKey } from '../model/freeze.js';
import { freezeJson } from '../output/status-json.js';
import { visibleLine } from '../output/visible.js';
import { checkReason, freezeRepo, unfinishedOfRepo, unfreezeHint, unfreezeRepo } from '../plan/freeze.js';
import { actor } from '../util/actor.js';
import type { CliContext } from './context.js';

/** The config's repo (and the config's absolute path), read as `config -c` reads it. */
function repoOf(file: string | undefined, command: string): { repo: string; file: string } {
  if (file === undefined) throw new UsageError(`${command} needs -c FILE (the config whose source repo it ${command === 'freeze' ? 'freezes' : 'unfreezes'})`);
  const eff = loadEffectiveConfig(file, { localAsWarnings: true });
  return { repo: eff.config.source.repo, file: eff.file };
}

export async function freezeCommand(ctx: CliContext, opts: { config?: string; reason?: string }): Promise<number> {
  const reason = checkReason(opts.reason);
  const { repo, file } = repoOf(opts.config, 'freeze');
  // a freeze may come before any plan: the database is made as `plan` makes it
  const store = await ctx.store(true);
  ctx.announceDb();
  const r = await freezeRepo(store, { repo, configFile: file, reason, by: actor() });
  const f = r.freeze;
  ctx.result(`frozen ${f.repo}`);
  if (ctx.opts.json) {
    ctx.printJson({ repo, repoKey: repoKey(repo), frozen: true, created: r.created, freeze: freezeJson(f), updates: r.updates.map((u) => ({ name: u.name, status: u.status })) });
    return 0;
  }
  if (!r.created) {
    ctx.print(
      `deploys of ${visibleLine(f.repo)} were already frozen ${visibleLine(describeFreeze(f))}; nothing changed ` +
        `(your reason was not recorded: to change it, \`${unfreezeHint({ configFile: file })}\`, then freeze again)`,
    );
    return 0;
  }
  ctx.print(`froze deploys of ${visibleLine(f.repo)} ${visibleLine(describeFreeze(f))}`);
  ctx.print(`start, resume and auto refuse its updates (exit 3) until: ${unfreezeHint(f)}`);
  for (const u of r.updates) {
    const how =
      u.status === 'running'
        ? u.lease
          ? `running (pid ${u.lease.pid} on ${u.lease.host}): it pauses before its next server; the server in flight is finished`
          : 'running, its executor gone: a start or takeover is refused'
        : u.status;
    ctx.print(`  ${u.name}: ${how}`);
  }
  return 0;
}

export async function unfreezeCommand(ctx: CliContext, opts: { config?: string }): Promise<number> {
  const { repo } = repoOf(opts.config, 'unfreeze');
  // no database: nothing was ever frozen in it, and nothing is written
  const lifted = (await ctx.dbExists()) ? await unfreezeRepo(await ctx.store(), repo, actor()) : null;
  if (lifted) ctx.announceDb();
  ctx.result(lifted ? `unfrozen ${repo}` : `not-frozen ${repo}`);
  if (ctx.opts.json) {
    ctx.printJson({ repo, repoKey: repoKey(repo), frozen: false, lifted: lifted ? freezeJson(lifted) : null });
    return 0;
  }
  if (!lifted) {
    ctx.print(`deploys of ${visibleLine(repo)} are not frozen; nothing changed`);
    return 0;
  }
  ctx.print(`deploys of ${visibleLine(lifted.repo)} are no longer frozen (frozen ${visibleLine(describeFreeze(lifted))}; lifted by ${lifted.unfrozenBy})`);
  // the rollouts the freeze paused wait for a resume (auto resumes the ones it started)
  const paused = (await unfinishedOfRepo(await ctx.store(), repo)).filter((u) => u.status === 'paused' && isFreezePause(u.reason));
  if (paused.length) {
    ctx.print(`paused by the freeze: ${paused.map((u) => u.name).join(', ')}; continue with: ${ctx.cmd(`resume ${paused.map((u) => u.name).join(' ')}`)} (an update of a config that auto runs: the next auto run resumes it)`);
  }
  return 0;
}
