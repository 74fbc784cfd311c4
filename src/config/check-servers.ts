/**
 * The servers (SPEC.md "Config (YAML)"): `servers:` and `inventory:`, each entry checked and
 * reached (reach.ts), and what a plan covers of them (`server_types`, `include`, `exclude`).
 *
 * - `servers[].name` is required, unique, `[A-Za-z0-9][A-Za-z0-9._-]*`; `type` defaults to
 *   `default`; `user` and `port` default to `ssh.user` and `ssh.port`.
 * - `servers[].type` may be a list (`[app, web]`): every type of the server, the first its
 *   primary one (status JSON's `type`).
 * - `inventory: PATH` (relative to the config's folder, `~` = home): more servers, from an
 *   Ansible INI or YAML inventory or a list in our own format (config/inventory/). With it,
 *   `servers:` is optional; with both, the servers are `servers:` then the inventory's. A name
 *   in both is an error reported at the config's entry, naming the inventory's file and line.
 *   Problems inside the inventory carry its file (ConfigProblem.file) and line.
 * - `server_types`: every listed type must be the type of at least one server; a server is
 *   covered when any of its types is listed.
 * - `include` / `exclude`: server-name globs (a string or a list), applied after
 *   `server_types` (config/select.ts). An include pattern matching none of the servers
 *   server_types covers is an error (a typo, nearly always); an exclude that matches nothing is
 *   fine; a selection left empty is an error.
 */
import * as path from 'node:path';
import type { ConfigProblem } from '../errors.js';
import { CONFIG_WORDS, didYouMean } from '../util/did-you-mean.js';
import { Checker, checkUser, describe, formatKeyPath, type KeyPath } from './checker.js';
import { DEFAULTS, KEYS } from './keys.js';
import { isServerName } from './names.js';
import type { ReachResolver } from './reach.js';
import { select } from './select.js';
import type { Config, ServerSources, ServerSpec } from './types.js';
import type { ValidateContext } from './validate.js';

/** A server entry on its way to the list: where it was written, for messages. */
interface Candidate {
  name: string;
  spec: ServerSpec | undefined;
  c: Checker;
  p: KeyPath;
  /** `servers[2]`, `entry [0]` (an inventory list), `web1` (an Ansible host) */
  label: string;
  file: string;
  line: number | undefined;
  origin: 'config' | 'inventory' | 'ansible';
}

/** How `cand`'s message names `other`: with its file and line when it is in another file. */
function refer(other: Candidate, cand: Candidate, withName: boolean): string {
  const elsewhere = other.file !== cand.file;
  const line = other.line !== undefined ? `:${other.line}` : '';
  if (other.origin === 'ansible') {
    const at = elsewhere ? `${other.file}${line}` : other.line !== undefined ? `line ${other.line}` : '';
    return at ? `${JSON.stringify(other.name)} (${at})` : JSON.stringify(other.name);
  }
  const base = withName ? `${other.label} ${JSON.stringify(other.name)}` : other.label;
  return elsewhere ? `${base} (${other.file}${line})` : base;
}

/** A problem as a key: the same problem found for several hosts is said once. */
function problemKey(p: ConfigProblem): string {
  return `${p.file ?? ''}\0${p.line ?? ''}\0${p.path}\0${p.message}`;
}

/**
 * One entry of a server list (`servers:`, an inventory, an Ansible host as such an entry):
 * its name when that is valid (for the duplicate check), and the server when every field is.
 * `userKey` is where a user belongs, for the message about `user@host`.
 */
function checkServer(
  c: Checker,
  p: KeyPath,
  item: unknown,
  sshUser: string,
  sshPort: number,
  userKey: string,
  reach?: ReachResolver,
): { name: string | undefined; spec: ServerSpec | undefined } {
  const s = c.section(p, item, KEYS.server);
  if (s === null) return { name: undefined, spec: undefined };
  const before = c.problems.length;
  let name: string | undefined;
  if (s.name === undefined || s.name === null) {
    c.add([...p, 'name'], 'is required');
  } else {
    const v = c.string([...p, 'name'], s.name, 'a server name (a string)');
    if (v !== undefined && !isServerName(v)) {
      c.add([...p, 'name'], `${JSON.stringify(v)} is not a valid server name: use letters, digits, '.', '_' and '-', starting with a letter or digit`);
    } else name = v;
  }
  let host = '';
  if ((s.host === undefined || s.host === null) && reach?.aliasOk && name !== undefined) {
    // With an ssh config, a server may be named by its alias alone.
    host = name;
  } else if (s.host === undefined || s.host === null) {
    c.add([...p, 'host'], `is required (a host name or IP address${reach?.aliasOk ? ', or an alias of the ssh config' : ''})`);
  } else {
    const v = c.string([...p, 'host'], s.host, 'a host name or IP address (a string)');
    if (v === undefined) {
      // reported
    } else if (v === '') c.add([...p, 'host'], 'must not be empty');
    else if (/\s/.test(v)) c.add([...p, 'host'], `${JSON.stringify(v)} must not contain whitespace`);
    else if (v.startsWith('-')) c.add([...p, 'host'], `${JSON.stringify(v)} must not start with '-'`);
    else if (v.includes('@')) c.add([...p, 'host'], `${JSON.stringify(v)} must not contain '@'; put the user in ${userKey}`);
    else host = v;
  }
  const explicit: { user?: string; port?: number; identityFiles?: string[] } = {};
  if (s.port !== undefined && s.port !== null) explicit.port = c.int([...p, 'port'], s.port, sshPort, 1, 65535, 'a port number (an integer 1 to 65535)');
  if (s.user !== undefined && s.user !== null) {
    const u = checkUser(c, [...p, 'user'], s.user);
    if (u !== undefined) explicit.user = u;
  }
  if (s.identity_file !== undefined && s.identity_file !== null) {
    const v = c.string([...p, 'identity_file'], s.identity_file, 'a file path (a string)');
    const abs = v === undefined ? undefined : c.filePath([...p, 'identity_file'], v);
    if (abs !== undefined) {
      if (!c.exists(abs)) c.addLocal([...p, 'identity_file'], `file not found: ${abs}${abs !== v ? ` (from ${JSON.stringify(v)})` : ''}`);
      explicit.identityFiles = [abs];
    }
  }
  // `type: app`, or several: `type: [app, web]` (the first is the primary type)
  const types: string[] = [];
  if (s.type !== undefined && s.type !== null) {
    const list = Array.isArray(s.type) ? s.type : [s.type];
    if (list.length === 0) c.add([...p, 'type'], 'must list at least one type');
    list.forEach((t: unknown, i: number) => {
      const tp: KeyPath = Array.isArray(s.type) ? [...p, 'type', i] : [...p, 'type'];
      const v = c.string(tp, t, 'a server type (a string)');
      if (v === undefined) return;
      if (v.trim() === '') c.add(tp, 'must not be empty');
      else if (!types.includes(v)) types.push(v);
    });
  } else types.push(DEFAULTS.serverType);
  if (c.problems.length > before || name === undefined || types.length === 0) return { name, spec: undefined };
  if (!reach) {
    return { name, spec: { name, host, port: explicit.port ?? sshPort, user: explicit.user ?? sshUser, type: types[0]!, types } };
  }
  const r = reach.resolve(p, { host, explicit, jump: { given: 'jump' in s, value: s.jump } });
  if (!r) return { name, spec: undefined };
  const spec: ServerSpec = { name, host: r.host, port: r.port, user: r.user, type: types[0]!, types, ...r.reach };
  // where each value came from (`agent-update servers`): the entry's own keys, else what the resolver says
  const sources: ServerSources = { ...r.sources };
  sources.host ??= c.sourceOf([...p, s.host === undefined || s.host === null ? 'name' : 'host']);
  if (explicit.port !== undefined) sources.port = c.sourceOf([...p, 'port']);
  if (explicit.user !== undefined) sources.user = c.sourceOf([...p, 'user']);
  if (explicit.identityFiles !== undefined) sources.identityFiles = c.sourceOf([...p, 'identity_file']);
  if ('jump' in s) sources.jump = `${c.sourceOf([...p, 'jump'])}${r.sources?.jump ?? ''}`;
  // non-enumerable: in memory only, never in JSON or the database, and no test's deepEqual sees it
  Object.defineProperty(spec, 'sources', { value: sources, enumerable: false });
  return { name, spec };
}

/**
 * The servers: the `servers:` list, then the hosts of `inventory:` (each entry through
 * checkServer, reached as `reach` says), names and accounts unique across them. `complete`:
 * every entry became a server (only then can a type or pattern be said to match none).
 */
export function checkServers(
  c: Checker,
  ctx: ValidateContext,
  top: Record<string, unknown>,
  ssh: Config['ssh'],
  reach: ReachResolver,
): { servers: ServerSpec[]; inventory: string | null; complete: boolean } {
  const file = path.resolve(ctx.dir, ctx.file);
  const { user: sshUser, port: sshPort } = ssh;
  const servers: ServerSpec[] = [];
  // every entry became a server: only then can "matches no server" be told
  let serversComplete = true;
  const candidates: Candidate[] = [];
  const others: Checker[] = [];
  const hasInventory = top.inventory !== undefined && top.inventory !== null;
  if (top.servers === undefined || top.servers === null) {
    if (!hasInventory) c.add(['servers'], 'is required: a list of servers, e.g. - { name: app1, host: 10.0.0.11 } (or inventory: PATH)');
  } else if (!Array.isArray(top.servers)) {
    c.add(['servers'], `must be a list of servers, got ${describe(top.servers)}`);
    serversComplete = false;
  } else if (top.servers.length === 0) {
    if (!hasInventory) c.add(['servers'], 'must list at least one server');
  } else {
    top.servers.forEach((item: unknown, i: number) => {
      const p: KeyPath = ['servers', i];
      const r = checkServer(c, p, item, sshUser, sshPort, `servers[${i}].user`, reach);
      if (!r.spec) serversComplete = false;
      if (r.name !== undefined) candidates.push({ ...r, name: r.name, c, p, label: `servers[${i}]`, file, line: c.lineOf(p), origin: 'config' });
    });
  }

  let inventory: string | null = null;
  if (hasInventory) {
    const s = c.string(['inventory'], top.inventory, 'a file path (a string)');
    const abs = s === undefined ? undefined : c.filePath(['inventory'], s);
    if (abs === undefined) serversComplete = false;
    else {
      inventory = abs;
      if (!ctx.readInventory) throw new Error('validateConfig: the config has an inventory and ctx.readInventory is not set');
      const read = ctx.readInventory(abs);
      if (read.kind === 'unreadable') {
        c.add(['inventory'], `${read.message}${abs !== s ? ` (from ${JSON.stringify(s)})` : ''}`);
        serversComplete = false;
      } else if (read.kind === 'problems') {
        c.problems.push(...read.problems);
        serversComplete = false;
      } else if (read.kind === 'servers') {
        // agent-update's own format: entries exactly as under servers:, problems in that file
        const ic = new Checker({ ...ctx, locate: read.locate }, { file: read.file });
        others.push(ic);
        let list: unknown = read.value;
        if (read.base.length) {
          const wrapper = read.value as Record<string, unknown>;
          for (const key of Object.keys(wrapper)) {
            if (key !== 'servers') ic.add([key], "unknown key: an inventory in agent-update's format holds servers: only");
          }
          list = wrapper.servers;
        }
        if (!Array.isArray(list) || list.length === 0) {
          ic.add(read.base, 'must list at least one server');
          serversComplete = false;
        } else {
          list.forEach((item: unknown, i: number) => {
            const p: KeyPath = [...read.base, i];
            const label = formatKeyPath(p);
            const r = checkServer(ic, p, item, sshUser, sshPort, formatKeyPath([...p, 'user']), reach);
            if (!r.spec) serversComplete = false;
            if (r.name !== undefined) {
              candidates.push({ ...r, name: r.name, c: ic, p, label: label.startsWith('[') ? `entry ${label}` : label, file: read.file, line: read.locate(p), origin: 'inventory' });
            }
          });
        }
      } else {
        // an Ansible inventory: each field is placed where its variable was written
        c.problems.push(...read.problems);
        if (read.problems.length) serversComplete = false;
        for (const e of read.entries) {
          const ac = new Checker(ctx, {
            where: (p) => {
              // the field's own place (`jump`, not its hop `jump[0]`), else the host's
              const key = [...p].reverse().find((k) => typeof k === 'string');
              const place = e.places[key as keyof typeof e.places] ?? e.places.name;
              return { path: place.path, file: place.file, line: place.line };
            },
          });
          others.push(ac);
          const r = checkServer(ac, [], e.raw, sshUser, sshPort, 'ansible_user', reach);
          if (!r.spec) serversComplete = false;
          if (r.name !== undefined) {
            candidates.push({ ...r, name: r.name, c: ac, p: [], label: r.name, file: e.places.name.file, line: e.places.name.line, origin: 'ansible' });
          }
        }
      }
    }
  }

  {
    // One name is one server; one account (user@host:port) is one agent checkout: listed twice,
    // it would be updated twice, and by two executors at once if a split put the entries in
    // different batches.
    const byName = new Map<string, Candidate>();
    const byAccount = new Map<string, Candidate>();
    for (const cand of candidates) {
      const prev = byName.get(cand.name);
      if (prev) {
        serversComplete = false;
        if (prev.origin === 'config' && cand.origin !== 'config') {
          // reported in the config, where the two lists meet
          prev.c.add(
            [...prev.p, 'name'],
            `duplicate server name ${JSON.stringify(cand.name)}: the inventory lists it too (${cand.file}${cand.line !== undefined ? `:${cand.line}` : ''}); ` +
              'list each server once, under servers or in the inventory',
          );
        } else cand.c.add([...cand.p, 'name'], `duplicate server name ${JSON.stringify(cand.name)} (also ${refer(prev, cand, false)})`);
        continue;
      }
      byName.set(cand.name, cand);
      const spec = cand.spec;
      if (!spec) continue;
      const account = `${spec.user}@${spec.host.toLowerCase()}:${spec.port}`;
      const other = byAccount.get(account);
      if (other) {
        serversComplete = false;
        cand.c.add(
          [...cand.p, cand.origin === 'ansible' ? 'name' : 'host'],
          `${JSON.stringify(cand.name)} is the same host, port and user (${account}) as ${refer(other, cand, true)}: ` +
            'one account is one agent checkout; list it once',
        );
        continue;
      }
      byAccount.set(account, cand);
      servers.push(spec);
    }
    // the same definition (a group variable) is wrong for each of its hosts: say it once
    const seen = new Set(c.problems.map(problemKey));
    for (const o of others) {
      for (const p of o.problems) {
        if (seen.has(problemKey(p))) continue;
        seen.add(problemKey(p));
        c.problems.push(p);
      }
    }
  }

  return { servers, inventory, complete: serversComplete };
}

/**
 * What of `servers` a plan covers: `server_types`, then the `include` / `exclude` globs; a type
 * or include pattern that matches none of them is a problem (when `serversComplete`). `include` and
 * `exclude`: null when absent, undefined when wrong.
 */
export function checkSelection(
  c: Checker,
  top: Record<string, unknown>,
  servers: ServerSpec[],
  serversComplete: boolean,
): { serverTypes: string[] | null; include: string[] | null | undefined; exclude: string[] | null | undefined } {
  // server_types: a server is covered when any of its types is listed
  let serverTypes: string[] | null = null;
  let selectionOk = serversComplete;
  if (top.server_types !== undefined && top.server_types !== null) {
    const st = top.server_types;
    if (!Array.isArray(st)) {
      c.add(['server_types'], `must be a list of server types, e.g. [app, db], got ${describe(st)}`);
      selectionOk = false;
    } else if (st.length === 0) {
      c.add(['server_types'], 'must list at least one type; leave it out to cover every server');
      selectionOk = false;
    } else {
      const types = [...new Set(servers.flatMap((s) => s.types))];
      const out: string[] = [];
      st.forEach((t: unknown, i: number) => {
        const v = c.string(['server_types', i], t, 'a server type (a string)');
        if (v === undefined) {
          selectionOk = false;
          return;
        }
        if (!types.includes(v) && serversComplete) {
          const implicit =
            v === 'all' ? "; Ansible's group all is not a type: leave server_types out to cover every server"
            : v === 'ungrouped' ? "; Ansible's group ungrouped is not a type: hosts in no group have the type default"
            : '';
          c.add(
            ['server_types', i],
            `no server has type ${JSON.stringify(v)}${didYouMean(v, types, CONFIG_WORDS, String)}${implicit} (the servers' types: ${types.join(', ')})`,
          );
          selectionOk = false;
          return;
        }
        if (!out.includes(v)) out.push(v);
      });
      serverTypes = out;
    }
  }

  // include / exclude: server-name globs, after server_types
  const include = c.patterns(['include'], top.include);
  const exclude = c.patterns(['exclude'], top.exclude);
  if (include === undefined || exclude === undefined) selectionOk = false;
  if (selectionOk && (include || exclude)) {
    const r = select(servers, { serverTypes, include: include ?? null, exclude: exclude ?? null });
    for (const i of r.unmatchedInclude) {
      const pattern = include![i]!;
      const elsewhere = serverTypes ? select(servers, { serverTypes: null, include: [pattern], exclude: null }).servers : [];
      const names = (list: ServerSpec[]) => `${list.slice(0, 5).map((x) => x.name).join(', ')}${list.length > 5 ? `, … (${list.length})` : ''}`;
      c.add(
        Array.isArray(top.include) ? ['include', i] : ['include'],
        elsewhere.length
          ? `${JSON.stringify(pattern)} matches no server of server_types (${serverTypes!.join(', ')}); it matches ${names(elsewhere)}, of other types`
          : `${JSON.stringify(pattern)} matches no server (the servers: ${names(r.ofTypes)}); a pattern that matches nothing is almost always a typo`,
      );
    }
    if (r.unmatchedInclude.length === 0 && r.servers.length === 0) {
      c.add(exclude ? ['exclude'] : ['include'], `leaves no server to update (of ${r.ofTypes.length} ${serverTypes ? 'of server_types' : 'in all'})`);
    }
  }

  return { serverTypes, include, exclude };
}
