/**
 * `agent-update servers -c FILE [--json]`: every server of the config as it will be reached (as
 * `ansible-inventory --list` and `ssh -G` show theirs): the host after HostName, port, user, the
 * identity files in the order they are offered, the agent, the jump hosts and the known_hosts
 * file, each with where it came from. It loads the config as `plan` does (a server the loader
 * refuses: exit 2 with every problem), then reads nothing remote and writes nothing: no database
 * is opened.
 */
import { loadEffectiveConfig } from '../config/load.js';
import type { Config, ServerSourceField, ServerSpec } from '../config/types.js';
import { agentSocket } from '../ssh/identities.js';
import { endpointsOf } from '../ssh/connect.js';
import { UsageError } from '../errors.js';
import type { CliContext } from './context.js';

/** One server in `servers --json`. */
export interface ServerReachJson {
  name: string;
  types: string[];
  host: string;
  port: number;
  user: string;
  /** offered in this order, before the agent's keys */
  identityFiles: string[];
  /** the agent socket whose keys are offered after the files, or `none` */
  identityAgent: string;
  /** true when only the identity files are offered (no agent) */
  identitiesOnly: boolean;
  jump: Array<{ host: string; port: number; user: string }>;
  knownHosts: string;
}

export function serversCommand(ctx: CliContext, opts: { config?: string }): number {
  if (opts.config === undefined) throw new UsageError('servers needs -c FILE (the config whose servers to show)');
  const { config } = loadEffectiveConfig(opts.config);
  const env = process.env;
  if (ctx.opts.json) ctx.printJson(serversJson(config, env));
  else ctx.print(serversText(config, env).trimEnd());
  return 0;
}

/** How the transport reaches `server`: endpointsOf, the function it connects with. */
export function serverReach(cfg: Config, server: ServerSpec, env: NodeJS.ProcessEnv): ServerReachJson {
  const eps = endpointsOf(server, cfg.ssh);
  const target = eps[eps.length - 1]!;
  const agent = agentSocket(cfg.ssh, env);
  return {
    name: server.name,
    types: server.types,
    host: target.host,
    port: target.port,
    user: target.user,
    identityFiles: target.identityFiles,
    identityAgent: agent ?? 'none',
    identitiesOnly: agent === undefined,
    jump: eps.slice(0, -1).map((e) => ({ host: e.host, port: e.port, user: e.user })),
    knownHosts: target.knownHosts,
  };
}

/** `servers --json`: `{ servers: [...] }`, in the config's order (servers:, then the inventory's). */
export function serversJson(cfg: Config, env: NodeJS.ProcessEnv): { servers: ServerReachJson[] } {
  return { servers: cfg.servers.map((s) => serverReach(cfg, s, env)) };
}

function hostPort(h: { host: string; port: number; user: string }): string {
  return `${h.user}@${h.host.includes(':') ? `[${h.host}]` : h.host}:${h.port}`;
}

/** Where the agent comes from, in words. */
function agentSource(cfg: Config, env: NodeJS.ProcessEnv): string {
  if (!cfg.ssh.agent) return 'ssh.agent: false';
  return env.SSH_AUTH_SOCK ? '$SSH_AUTH_SOCK (ssh.agent: true)' : 'ssh.agent: true, but $SSH_AUTH_SOCK is not set';
}

/**
 * The text form: a block per server, each row a value and where it came from (the config key,
 * the inventory's file:line, the ssh config's file:line, or the ssh block).
 */
export function serversText(cfg: Config, env: NodeJS.ProcessEnv): string {
  const out: string[] = [];
  const n = cfg.servers.length;
  out.push(`${n} server${n === 1 ? '' : 's'} of ${cfg.file}, as agent-update will reach them (nothing was connected to)`);
  for (const server of cfg.servers) {
    const r = serverReach(cfg, server, env);
    const src = (f: ServerSourceField) => server.sources?.[f] ?? '';
    const rows: Array<[string, string, string]> = [
      ['host', r.host, src('host')],
      ['port', String(r.port), src('port')],
      ['user', r.user, src('user')],
      ['identity files', r.identityFiles.length ? r.identityFiles.join(', ') : 'none', src('identityFiles')],
      ['identity agent', r.identityAgent, agentSource(cfg, env)],
      ['jump hosts', r.jump.length ? r.jump.map(hostPort).join(', ') : 'none (direct)', src('jump')],
      ['known_hosts', r.knownHosts, src('knownHosts')],
    ];
    const w0 = Math.max(...rows.map(([k]) => k.length));
    const w1 = Math.min(60, Math.max(...rows.map(([, v]) => v.length)));
    out.push('');
    out.push(`${server.name}  (${server.types.length === 1 ? 'type' : 'types'} ${server.types.join(', ')})`);
    for (const [k, v, s] of rows) out.push(`  ${k.padEnd(w0)}  ${s ? `${v.padEnd(w1)}  ${s}` : v}`.trimEnd());
  }
  out.push('');
  out.push('identity files are offered in that order, then the keys of the identity agent (none: the files only)');
  return `${out.join('\n')}\n`;
}
