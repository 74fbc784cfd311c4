/**
 * How a server is reached: its own keys, the ssh config (`ssh.config`, read by check-ssh.ts with
 * config/ssh-config.ts) and the ssh block, the jump hosts; and where each value came from
 * (ServerSpec.sources, for `agent-update servers`).
 *
 * - `ssh.config` (`true` = `~/.ssh/config`, or a path; must exist): an OpenSSH client config
 *   servers and jump hosts are looked up in (ssh-config.ts). With it, a server's `host` may be
 *   an alias, and may be left out to look its `name` up.
 * - `ssh.jump`, `servers[].jump`: `user@host:port` or a list (hops in order); `none`, null or
 *   [] for none. A server's `jump` > the ssh config's ProxyJump > `ssh.jump`. A hop's port
 *   defaults to the ssh config's, else 22; its user to the ssh config's, else `ssh.user`.
 * - `servers[].identity_file` (must exist): that server's key, instead of the ssh config's
 *   IdentityFile and `ssh.identity_file`.
 *
 * Precedence for every server and jump host: its own keys > the ssh config > the ssh block.
 */
import * as path from 'node:path';
import { checkUser, type Checker, type KeyPath } from './checker.js';
import { DEFAULTS } from './keys.js';
import { expandTokens, parseHopSpec, type HostEntry, type ParsedSshConfig, type Setting } from './ssh-config.js';
import type { Config, JumpHost, ServerSources, ServerSpec } from './types.js';
import type { ValidateContext } from './validate.js';

/** A jump host as written (`user@host:port`), before the ssh config and defaults fill it in. */
interface HopSpec {
  user?: string;
  host: string;
  port?: number;
}

/** How one endpoint (a server or a jump host) is reached, once resolved. */
type Endpoint = { host: string; port: number; user: string; proxyJump?: string; src?: ServerSources } & Pick<JumpHost, ReachField>;
/** The fields of ServerSpec and JumpHost that say how an endpoint is reached, beyond host, port and user. */
type ReachField = 'identityFiles' | 'knownHosts' | 'identitiesOnly' | 'identityAgent' | 'certificateFiles';

/** How a server entry's address becomes the way it is reached (the ssh config, jump hosts). */
export interface ReachResolver {
  /** with an ssh config, an entry may leave out `host`: its name is the alias looked up */
  aliasOk: boolean;
  resolve(
    p: KeyPath,
    base: { host: string; explicit: { user?: string; port?: number; identityFiles?: string[] }; jump: { given: boolean; value: unknown } },
  ): { host: string; port: number; user: string; reach: Pick<ServerSpec, ReachField | 'jump'>; sources?: ServerSources } | undefined;
}

/**
 * The resolver checkServer asks how one server is reached, once its own keys are checked: its
 * explicit keys > the ssh config > the ssh block, its jump hosts (its own `jump` > the ssh
 * config's ProxyJump > ssh.jump). `sshRaw` is the ssh block as written, `sshCfg` the parsed ssh
 * config (check-ssh.ts). Problems go to `c`: ssh.jump's at once, the ssh config's at the server
 * (`p`); `resolve` returns undefined when the server cannot be reached as written.
 */
export function serverReach(c: Checker, ctx: ValidateContext, ssh: Config['ssh'], sshRaw: Record<string, unknown>, sshCfg: ParsedSshConfig | null): ReachResolver {
  const { user: sshUser, port: sshPort, identityFile, knownHosts, agent: useAgent, configFile: sshConfigFile } = ssh;
  const env = ctx.env ?? process.env;
  const tokenCtx = { home: ctx.home, localUser: ctx.user ?? '', env };

  /** ssh.jump, a per-server jump: `user@host:port`, a list of them, or none (null, "none", []). */
  const hopSpecs = (p: KeyPath, v: unknown): HopSpec[] | undefined => {
    if (v === null || v === 'none' || (Array.isArray(v) && v.length === 0)) return [];
    const items = Array.isArray(v) ? v : [v];
    const out: HopSpec[] = [];
    let ok = true;
    items.forEach((item: unknown, i: number) => {
      const ip = Array.isArray(v) ? [...p, i] : p;
      const text = c.string(ip, item, 'a jump host, user@host:port (or a list of them, in order; none for no jump host)');
      if (text === undefined) {
        ok = false;
        return;
      }
      const hop = parseHopSpec(text);
      if ('error' in hop) {
        c.add(ip, `bad jump host ${hop.error}; expected [user@]host[:port]`);
        ok = false;
      } else if (hop.user !== undefined && checkUser(c, ip, hop.user) === undefined) ok = false;
      else out.push(hop);
    });
    return ok ? out : undefined;
  };
  const globalJump = sshRaw.jump === undefined ? [] : (hopSpecs(['ssh', 'jump'], sshRaw.jump) ?? []);
  // where the ssh block's values come from, for the servers that take them (ServerSpec.sources)
  const sshWritten = (k: string) => sshRaw[k] !== undefined && sshRaw[k] !== null;
  const blockSource = {
    user: sshWritten('user') ? c.sourceOf(['ssh', 'user']) : 'ssh.user not set: the current user',
    port: sshWritten('port') ? c.sourceOf(['ssh', 'port']) : `ssh.port not set: ${DEFAULTS.sshPort}`,
    identityFiles: sshWritten('identity_file') ? c.sourceOf(['ssh', 'identity_file']) : 'ssh.identity_file not set',
    knownHosts: sshWritten('known_hosts') ? c.sourceOf(['ssh', 'known_hosts']) : `ssh.known_hosts not set: ${DEFAULTS.knownHosts}`,
    jump: sshWritten('jump') ? c.sourceOf(['ssh', 'jump']) : 'ssh.jump not set: none',
  };
  /** `file line 12` of the ssh config reader as `ssh config file:12` */
  const sshConfigSource = (where: string) => (where ? `ssh config ${where.replace(/ line (\d+)$/, ':$1')}` : `ssh config ${sshConfigFile ?? ''}`);

  /** What the ssh config says about `alias` (nothing without ssh.config). */
  const lookup = (alias: string, user?: string): HostEntry =>
    sshCfg ? sshCfg.lookup(alias, user) : { host: alias, identityFiles: [], certificateFiles: [], problems: [] };
  const configWhere = () => `the ssh config ${sshConfigFile ?? ''}`;
  /** ssh's identity files when the config names none (readconf.c fill_default_options); the ones that exist are offered */
  const DEFAULT_IDENTITIES = ['id_rsa', 'id_ecdsa', 'id_ecdsa_sk', 'id_ed25519', 'id_ed25519_sk', 'id_xmss', 'id_dsa'];

  /**
   * One endpoint (a server or a jump host): per-server keys > the ssh config > the ssh block.
   * Reports problems at `p`; returns undefined when it cannot be reached as written.
   */
  const resolveEndpoint = (
    p: KeyPath,
    alias: string,
    explicit: { user?: string; port?: number; identityFiles?: string[] },
    dflt: { port: number; portSource?: string },
  ): Endpoint | undefined => {
    const e = lookup(alias, explicit.user);
    let ok = true;
    const where = `${configWhere()} (for ${JSON.stringify(alias)})`;
    const refuse = (msg: string) => {
      c.add(p, `${where}: ${msg}`);
      ok = false;
    };
    for (const problem of e.problems) refuse(problem);
    let host = alias;
    if (sshCfg) {
      const h = e.host;
      if (h === '' || /\s/.test(h) || h.startsWith('-') || h.includes('%')) {
        refuse(e.hostName ? `HostName ${JSON.stringify(e.hostName.value)} (${e.hostName.where}) is not a host name` : `${JSON.stringify(h)} is not a host name`);
      } else host = h;
    }
    let port = explicit.port;
    if (port === undefined && e.port !== undefined) {
      const n = Number(e.port.value);
      if (!/^\d+$/.test(e.port.value) || n < 1 || n > 65535) refuse(`Port ${JSON.stringify(e.port.value)} (${e.port.where}) is not a port number (1 to 65535)`);
      else port = n;
    }
    port ??= dflt.port;
    let user = explicit.user;
    if (user === undefined && e.user !== undefined) {
      const u = checkUser(c, p, e.user.value);
      if (u === undefined) ok = false;
      else user = u;
    }
    user ??= sshUser;
    if (e.proxyCommand !== undefined && e.proxyCommand.value.toLowerCase() !== 'none') {
      refuse(`ProxyCommand (${e.proxyCommand.where}) is not supported (agent-update runs no local command to connect); use ProxyJump, or ssh.jump / jump in this config`);
    }
    if (e.hostKeyAlias !== undefined) {
      refuse(`HostKeyAlias (${e.hostKeyAlias.where}) is not supported (host keys are checked under the host name and port connected to)`);
    }
    if (e.canonicalizeHostName !== undefined && !/^(no|false|none)$/i.test(e.canonicalizeHostName.value)) {
      refuse(
        `CanonicalizeHostName ${e.canonicalizeHostName.value} (${e.canonicalizeHostName.where}) is not supported: ssh would look the name up in DNS ` +
          'to canonicalize it, and agent-update makes no DNS query while reading a config; set CanonicalizeHostName no for this host, or give its full name as HostName',
      );
    }
    const tokens = { host, original: alias, port, user };
    const expand = (what: string, s: Setting): string | undefined => {
      const r = expandTokens(s.value, tokens, tokenCtx);
      if ('error' in r) {
        refuse(`${what} (${s.where}): ${r.error}`);
        return undefined;
      }
      const v = r.value;
      if (v === '~' || v.startsWith('~/')) return path.join(ctx.home, v.slice(1));
      return path.resolve(path.dirname(sshConfigFile ?? ctx.file), v);
    };
    let identityFiles = explicit.identityFiles;
    // where each value not given explicitly came from (the caller names the explicit ones)
    const src: ServerSources = {};
    if (sshCfg && e.hostName) src.host = sshConfigSource(e.hostName.where);
    if (explicit.port === undefined) src.port = e.port !== undefined ? sshConfigSource(e.port.where) : (dflt.portSource ?? `default ${dflt.port}`);
    if (explicit.user === undefined) src.user = e.user !== undefined ? sshConfigSource(e.user.where) : blockSource.user;
    if (e.proxyJump !== undefined) src.jump = sshConfigSource(e.proxyJump.where);
    if (identityFiles === undefined && e.identityFiles.length) {
      // As ssh does, IdentityFiles that do not exist are passed over (a `Host *` default for
      // a key this machine does not have is common); `none` stands for no file.
      const files = e.identityFiles.filter((f) => f.value.toLowerCase() !== 'none').map((f) => expand('IdentityFile', f));
      const existing = files.filter((f): f is string => f !== undefined && c.exists(f));
      if (existing.length) identityFiles = [...new Set(existing)];
      const named = e.identityFiles.filter((f) => f.value.toLowerCase() !== 'none');
      const used = named.filter((_, i) => files[i] !== undefined && c.exists(files[i]!)).map((f) => sshConfigSource(f.where));
      if (existing.length) src.identityFiles = [...new Set(used)].join(', ');
    } else if (identityFiles === undefined && sshCfg && identityFile === null) {
      // no IdentityFile anywhere (and no ssh.identity_file): ssh offers its default keys that exist
      const existing = DEFAULT_IDENTITIES.map((n) => path.join(ctx.home, '.ssh', n)).filter((f) => c.exists(f));
      if (existing.length) identityFiles = existing;
      if (existing.length) src.identityFiles = "ssh's default identity files (neither the ssh config nor ssh.identity_file names one)";
    }
    if (identityFiles === undefined) src.identityFiles = blockSource.identityFiles;
    const out: Endpoint = { host, port, user };
    // CertificateFile, IdentitiesOnly, IdentityAgent: the transport does not honour them yet, so
    // each is accepted only where it changes nothing about what is offered; refused otherwise
    if (e.certificateFiles.length) {
      const certs = e.certificateFiles.map((f) => expand('CertificateFile', f)).filter((f): f is string => f !== undefined && c.exists(f));
      if (certs.length) {
        refuse(`CertificateFile (${e.certificateFiles.map((f) => f.where).join(', ')}): ssh would offer the certificate ${certs.join(', ')}, and agent-update does not offer certificates yet; remove it for this host`);
      }
    }
    if (e.identitiesOnly !== undefined && /^(yes|true)$/i.test(e.identitiesOnly.value)) {
      if (useAgent) {
        refuse(`IdentitiesOnly yes (${e.identitiesOnly.where}): ssh would offer only the identity files, and agent-update would also offer every key of ssh-agent; set ssh.agent: false (the files alone are then offered, as ssh does), or remove it for this host`);
      } else out.identitiesOnly = true;
    }
    if (e.identityAgent !== undefined) {
      const v = e.identityAgent.value;
      const isDefault = v === 'SSH_AUTH_SOCK' || v === '$SSH_AUTH_SOCK';
      if (v.toLowerCase() === 'none') {
        if (useAgent) refuse(`IdentityAgent none (${e.identityAgent.where}): ssh would use no agent for this host, and agent-update would use ssh-agent ($SSH_AUTH_SOCK); set ssh.agent: false, or remove it for this host`);
        else out.identityAgent = 'none';
      } else if (isDefault) {
        if (!useAgent) refuse(`IdentityAgent ${v} (${e.identityAgent.where}): ssh would use ssh-agent for this host, and agent-update uses none (ssh.agent: false); set ssh.agent: true, or remove it for this host`);
      } else {
        refuse(`IdentityAgent ${v} (${e.identityAgent.where}): ssh would use that agent socket for this host, and agent-update uses $SSH_AUTH_SOCK (or none, ssh.agent: false) and cannot use another socket yet; remove it for this host`);
      }
    }
    let kh: string | undefined;
    if (e.userKnownHostsFiles) {
      const at = e.userKnownHostsFiles.where;
      const isNull = (f: string) => f === '/dev/null' || f.toLowerCase() === 'none';
      const listed = e.userKnownHostsFiles.values;
      if (listed.every(isNull)) {
        refuse(
          `UserKnownHostsFile ${listed.join(' ')} (${at}): with it ssh keeps no host keys for this host; agent-update always verifies host keys ` +
            `against a known_hosts file, and without that line would use ${knownHosts}: remove the line for this host, or name a known_hosts file`,
        );
      } else {
        const files = listed.filter((f) => !isNull(f)).map((f) => expand('UserKnownHostsFile', { value: f, where: at }));
        if (files.every((f) => f !== undefined)) {
          kh = files.find((f) => f !== undefined && c.exists(f));
          // a file this machine lacks: refused when connecting, a warning for `config`
          if (kh === undefined) c.addLocal(p, `${where}: none of its UserKnownHostsFile exists (${files.join(', ')}, ${at}); host keys are always verified`);
        }
      }
    }
    if (!ok) return undefined;
    if (identityFiles !== undefined) out.identityFiles = identityFiles;
    if (kh !== undefined && kh !== knownHosts) out.knownHosts = kh;
    if (e.proxyJump !== undefined) out.proxyJump = e.proxyJump.value;
    src.knownHosts = kh !== undefined && e.userKnownHostsFiles ? sshConfigSource(e.userKnownHostsFiles.where) : blockSource.knownHosts;
    out.src = src;
    return out;
  };

  /** ProxyJump's value: `none`, or hops separated by commas. */
  const proxyJumpSpecs = (p: KeyPath, alias: string, value: string): HopSpec[] | undefined => {
    if (value.toLowerCase() === 'none') return [];
    const out: HopSpec[] = [];
    for (const part of value.split(',')) {
      const hop = parseHopSpec(part);
      if ('error' in hop) {
        c.add(p, `${configWhere()} (for ${JSON.stringify(alias)}): ProxyJump: bad jump host ${hop.error}`);
        return undefined;
      }
      out.push(hop);
    }
    return out;
  };

  /**
   * The jump hosts of a chain, each looked up in the ssh config; the first one's own ProxyJump
   * comes before it (as ssh does: only the first hop is reached with its own config's route).
   */
  const resolveChain = (p: KeyPath, specs: HopSpec[], seen: string[]): JumpHost[] | undefined => {
    const out: JumpHost[] = [];
    for (let i = 0; i < specs.length; i++) {
      const spec = specs[i]!;
      const explicit: { user?: string; port?: number } = {};
      if (spec.user !== undefined) explicit.user = spec.user;
      if (spec.port !== undefined) explicit.port = spec.port;
      const r = resolveEndpoint(p, spec.host, explicit, { port: DEFAULTS.jumpPort, portSource: `default ${DEFAULTS.jumpPort} for a jump host` });
      if (!r) return undefined;
      if (i === 0 && r.proxyJump !== undefined && r.proxyJump.toLowerCase() !== 'none') {
        if (seen.includes(spec.host) || seen.length > 8) {
          c.add(p, `${configWhere()}: ProxyJump loops through ${[...seen, spec.host].join(' → ')}`);
          return undefined;
        }
        const before = proxyJumpSpecs(p, spec.host, r.proxyJump);
        const prefix = before && resolveChain(p, before, [...seen, spec.host]);
        if (!prefix) return undefined;
        out.push(...prefix);
      }
      const { proxyJump: _pj, src: _src, ...hop } = r;
      out.push(hop);
    }
    return out;
  };

  return {
    // ssh.config named but missing (a problem of its own): an alias is still taken as the host
    aliasOk: sshCfg !== null || sshConfigFile !== null,
    resolve: (p, base) => {
      let jumpSpecs: HopSpec[] | undefined;
      if (base.jump.given) {
        jumpSpecs = hopSpecs([...p, 'jump'], base.jump.value);
        if (jumpSpecs === undefined) return undefined;
      }
      const r = resolveEndpoint([...p, 'host'], base.host, base.explicit, { port: sshPort, portSource: blockSource.port });
      if (!r) return undefined;
      const { host: _h, port: _p, user: _u, proxyJump: _pj, src = {}, ...reach }: Endpoint & Pick<ServerSpec, 'jump'> = r;
      let specs = jumpSpecs;
      if (specs === undefined && r.proxyJump !== undefined) specs = proxyJumpSpecs([...p, 'host'], base.host, r.proxyJump);
      specs ??= globalJump;
      const chain = resolveChain(jumpSpecs !== undefined ? [...p, 'jump'] : [...p, 'host'], specs, []);
      if (!chain) return undefined;
      if (chain.length) reach.jump = chain;
      // the jump hosts' source: the server's own `jump` (named by checkServer), its ProxyJump, or ssh.jump
      const sources: ServerSources = { ...src };
      if (jumpSpecs !== undefined) delete sources.jump;
      else if (r.proxyJump === undefined) sources.jump = blockSource.jump;
      if (chain.length > specs.length) sources.jump = `${sources.jump ?? ''}, then the ssh config's ProxyJump for its first hop`;
      return { host: r.host, port: r.port, user: r.user, reach, sources };
    },
  };
}
