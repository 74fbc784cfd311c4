/**
 * `inventory: PATH`: read an inventory file into server entries for check-servers.ts.
 *
 * The format, by the file's name, then its content:
 *
 * - `.yml`, `.yaml`, `.json`: YAML. A list of servers, or a mapping whose `servers:` is a list,
 *   is agent-update's own format (each entry as under `servers:` in a config). Any other
 *   mapping is an Ansible YAML inventory (`all: {hosts, children, vars}`).
 * - `.ini`: an Ansible INI inventory.
 * - anything else (`hosts`, `inventory`, `production`): YAML when the text parses as YAML into a
 *   mapping or a list of mappings, else an Ansible INI inventory. (A plain list of host names
 *   parses as one YAML string, so it is INI, as Ansible reads it.)
 *
 * Refused, with what to do instead: inventory scripts (an executable file starting with `#!`),
 * inventory plugin configs (`plugin:`), `ansible-inventory --list` JSON (`_meta`), files
 * encrypted with ansible-vault, and folders.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isMap, isScalar, isSeq } from 'yaml';
import type { ConfigProblem } from '../../errors.js';
import type { KeyPath } from '../checker.js';
import { parseYaml } from '../yaml.js';
import { isServerName } from '../names.js';
import { parseIni } from './ini.js';
import { Inventory, InventoryError, resolveHosts, type Place, type ResolvedHost, type VarDef } from './model.js';
import { readSshArgs, SshArgsError, type ArgSetting } from './ssh-args.js';
import { varsFilesFor } from './vars-files.js';
import { deref, entries, parseAnsibleYaml, readYaml } from './yaml.js';

export type { Place, ResolvedHost } from './model.js';

/** One host of an Ansible inventory as a `servers:` entry, with where each field came from. */
export interface AnsibleEntry {
  /** name, host, port, user, type (a list), identity_file, jump: what a `servers:` entry would hold */
  raw: Record<string, unknown>;
  /** where each field of `raw` was written (the host itself when it was not set) */
  places: Record<'name' | 'host' | 'port' | 'user' | 'type', Place> & Partial<Record<'identity_file' | 'jump', Place>>;
}

export type InventoryRead =
  /** missing, a folder, unreadable: reported at the config's `inventory` key */
  | { kind: 'unreadable'; message: string }
  /** what is wrong inside the inventory (or the files it uses), each with its file and line */
  | { kind: 'problems'; problems: ConfigProblem[] }
  /** agent-update's own format: `value` is the parsed file, the servers list is at `base` */
  | { kind: 'servers'; file: string; value: unknown; base: KeyPath; locate: (p: KeyPath) => number | undefined }
  | { kind: 'ansible'; file: string; format: 'ini' | 'yaml'; entries: AnsibleEntry[]; problems: ConfigProblem[] };

export type InventoryFormat = 'ini' | 'yaml';

/** The format a file is read as (see the module comment). */
export function detectFormat(file: string, text: string): InventoryFormat {
  const ext = path.extname(file).toLowerCase();
  if (ext === '.yml' || ext === '.yaml' || ext === '.json') return 'yaml';
  if (ext === '.ini') return 'ini';
  const src = readYaml(text);
  if (src.errors.length) return 'ini';
  const root = deref(src, src.doc.contents);
  if (root && isMap(root)) return 'yaml';
  if (root && isSeq(root) && root.items.length > 0 && root.items.every((i) => isMap(deref(src, i)))) return 'yaml';
  return 'ini';
}

/** An Ansible inventory parsed: its hosts with groups and variables, or its problems. */
export interface ParsedAnsible {
  inventory: Inventory;
  hosts: ResolvedHost[];
  problems: ConfigProblem[];
}

/** Parse an Ansible inventory (INI or YAML) and resolve its hosts, group_vars/ and host_vars/ included. */
export function parseAnsible(file: string, text: string, format: InventoryFormat, opts: { varsFiles?: boolean } = {}): ParsedAnsible {
  const inv = new Inventory(file);
  if (format === 'ini') parseIni(text, inv);
  else {
    const src = readYaml(text);
    if (src.errors.length) {
      for (const e of src.errors) inv.problem({ file, line: e.line, path: '' }, e.message);
    } else parseAnsibleYaml(src, inv);
  }
  if (inv.problems.length) return { inventory: inv, hosts: [], problems: inv.problems };
  try {
    inv.reconcile();
  } catch (e) {
    if (!(e instanceof InventoryError)) throw e;
    inv.problem(e.place, e.message);
    return { inventory: inv, hosts: [], problems: inv.problems };
  }
  const hosts = resolveHosts(inv, opts.varsFiles === false ? null : varsFilesFor(inv));
  return { inventory: inv, hosts, problems: inv.problems };
}

function problem(file: string, line: number | undefined, message: string, p = ''): ConfigProblem {
  const out: ConfigProblem = { file, path: p, message };
  if (line !== undefined) out.line = line;
  return out;
}

const EXPORT_HINT = 'export it to a static file with `ansible-inventory -i SOURCE --list --yaml > inventory.yml` and point inventory at that';

/** Read the inventory at `file` (absolute). Never throws for anything in the file. */
export function readInventory(file: string): InventoryRead {
  let text: string;
  let mode: number;
  try {
    const st = fs.statSync(file);
    if (st.isDirectory()) return { kind: 'unreadable', message: `${file} is a folder; inventory folders are not supported: name the inventory file` };
    mode = st.mode;
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? `file not found: ${file}`
        : code === 'EACCES' || code === 'EPERM'
          ? `cannot read ${file}: permission denied`
          : `cannot read ${file}: ${(e as Error).message}`;
    return { kind: 'unreadable', message: why };
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (text.startsWith('$ANSIBLE_VAULT;')) {
    return { kind: 'problems', problems: [problem(file, 1, 'is encrypted with ansible-vault, which agent-update cannot decrypt; the inventory must be plain text')] };
  }
  if (text.startsWith('#!') && (mode & 0o111) !== 0) {
    return { kind: 'problems', problems: [problem(file, 1, `is an executable inventory script; dynamic inventories are not supported: ${EXPORT_HINT}`)] };
  }
  const format = detectFormat(file, text);
  if (format === 'yaml') {
    const src = readYaml(text);
    if (src.errors.length) return { kind: 'problems', problems: src.errors.map((e) => problem(file, e.line, e.message)) };
    const root = deref(src, src.doc.contents);
    if (root === null || (isScalar(root) && (root.value === null || root.value === ''))) {
      return { kind: 'problems', problems: [problem(file, undefined, 'the inventory is empty')] };
    }
    const keys = isMap(root) ? entries(src, root).map((e) => e.key) : [];
    const serversValue = isMap(root) ? entries(src, root).find((e) => e.key === 'servers')?.value : undefined;
    if (isSeq(root) || (serversValue && isSeq(serversValue))) {
      // our own format: read like the config (YAML 1.2, a key given twice is an error)
      const parsed = parseYaml(text);
      if (parsed.problems.length) return { kind: 'problems', problems: parsed.problems.map((p) => ({ ...p, file })) };
      return { kind: 'servers', file, value: parsed.value, base: isSeq(root) ? [] : ['servers'], locate: parsed.locate };
    }
    if (!isMap(root)) {
      return {
        kind: 'problems',
        problems: [
          problem(
            file,
            src.lineAt(root),
            'must be a list of servers, a mapping with servers: (a list), or an Ansible YAML inventory (a mapping of groups such as all:)',
          ),
        ],
      };
    }
    if (keys.includes('plugin')) {
      return { kind: 'problems', problems: [problem(file, 1, `is the configuration of an inventory plugin (plugin:); dynamic inventories are not supported: ${EXPORT_HINT}`)] };
    }
    if (keys.includes('_meta')) {
      return {
        kind: 'problems',
        problems: [problem(file, 1, `looks like the JSON of \`ansible-inventory --list\`, which is not an inventory file; ${EXPORT_HINT.replace('export it', 'write it')}`)],
      };
    }
  }
  const parsed = parseAnsible(file, text, format);
  if (parsed.problems.length) return { kind: 'problems', problems: parsed.problems };
  if (parsed.hosts.length === 0) return { kind: 'problems', problems: [problem(file, undefined, 'the inventory lists no hosts')] };
  const out = ansibleEntries(parsed.hosts);
  return { kind: 'ansible', file, format, entries: out.entries, problems: out.problems };
}

/**
 * The variable Ansible's ssh connection uses: the old name (`ansible_ssh_user`) wins over the
 * new one (`ansible_user`) when both are set, wherever each was set; a null is "not set".
 * (Ansible's option lists `ansible_user, ansible_ssh_user`: the last one set wins.)
 */
export function connectionVar(vars: Map<string, VarDef>, field: 'host' | 'port' | 'user' | 'private_key_file'): { name: string; def: VarDef } | undefined {
  for (const name of [`ansible_ssh_${field}`, `ansible_${field}`]) {
    const def = vars.get(name);
    if (def && (def.vault || (def.value !== null && def.value !== undefined))) return { name, def };
  }
  return undefined;
}

/** Connection plugins that are Ansible's ssh (or its paramiko, also SSH): the ones we stand in for. */
const SSH_CONNECTIONS = new Set(['ssh', 'smart', 'paramiko', 'paramiko_ssh', 'ansible.builtin.ssh', 'ansible.builtin.paramiko_ssh', 'ansible.legacy.ssh']);

/** Password variables: agent-update never logs in (or becomes root) with a password from a file. */
const PASSWORD_VARS = [
  'ansible_password',
  'ansible_ssh_pass',
  'ansible_ssh_password',
  'ansible_become_pass',
  'ansible_become_password',
  'ansible_sudo_pass',
  'ansible_su_pass',
];

/** `file:line` of a place, for a message. */
function at(place: Place): string {
  return `${place.file}${place.line !== undefined ? `:${place.line}` : ''}`;
}

function isTemplate(v: unknown): boolean {
  return typeof v === 'string' && /\{\{|\{%/.test(v);
}

/**
 * A `:vars` line keeps a trailing `# …` in its value, as Ansible does: when that makes the
 * value wrong, say so.
 */
function commentHint(v: unknown): string {
  return typeof v === 'string' && /\s#/.test(v)
    ? ' (on an INI [group:vars] line everything after = is the value, a trailing # comment too, as Ansible reads it: put the comment on its own line)'
    : '';
}

function ansibleEntries(hosts: ResolvedHost[]): { entries: AnsibleEntry[]; problems: ConfigProblem[] } {
  const entriesOut: AnsibleEntry[] = [];
  const problems: ConfigProblem[] = [];
  const seen = new Set<string>();
  const report = (place: Place, message: string) => {
    const key = `${place.file}\0${place.line}\0${place.path}\0${message}`;
    if (seen.has(key)) return;
    seen.add(key);
    problems.push(problem(place.file, place.line, message, place.path));
  };
  for (const h of hosts) {
    if (!isServerName(h.name)) {
      const v6 = h.name.includes(':');
      const port = h.vars.get('ansible_port')?.value;
      const example = v6
        ? `${h.name.replace(/[^A-Za-z0-9]+/g, '-').replace(/^-+|-+$/g, '') || 'host1'} ansible_host=${h.name}${typeof port === 'number' ? ` ansible_port=${port}` : ''}`
        : 'web1 ansible_host=2001:db8::1';
      report(
        h.place,
        `${JSON.stringify(h.name)} is not a valid server name (letters, digits, '.', '_' and '-', starting with a letter or digit): ` +
          `give the host a name and put the address in ansible_host, e.g. ${example}`,
      );
      continue;
    }
    const e = hostEntry(h, report);
    if (e) entriesOut.push(e);
  }
  return { entries: entriesOut, problems };
}

/** One host as a `servers:` entry, or undefined (reported) when it cannot be reached as Ansible would. */
function hostEntry(h: ResolvedHost, report: (place: Place, message: string) => void): AnsibleEntry | undefined {
  const raw: Record<string, unknown> = { name: h.name, host: h.name, type: h.groups.length ? h.groups : ['default'] };
  const places: AnsibleEntry['places'] = { name: h.place, host: h.place, port: h.place, user: h.place, type: h.place };
  const who = `host ${JSON.stringify(h.name)}`;
  let ok = true;
  const refuse = (def: VarDef, message: string) => {
    report(def.place, `${who}: ${message}`);
    ok = false;
  };
  /** a variable's value, or undefined (reported) when it is vaulted or a template */
  const plainValue = (name: string, def: VarDef): unknown => {
    if (def.vault) {
      // said once for every host of a group: the message names the variable, not the host
      report(def.place, `${name} is encrypted with ansible-vault, which agent-update cannot decrypt: write it in plain text`);
      ok = false;
      return undefined;
    }
    if (isTemplate(def.value)) {
      report(def.place, `${name} is a Jinja template (${JSON.stringify(def.value)}); agent-update does not evaluate templates: write the value itself`);
      ok = false;
      return undefined;
    }
    return def.value;
  };

  // ansible_connection: only Ansible's ssh (or paramiko) is what agent-update does
  const conn = h.vars.get('ansible_connection');
  if (conn && conn.value !== null && conn.value !== undefined) {
    const v = plainValue('ansible_connection', conn);
    if (v !== undefined && !SSH_CONNECTIONS.has(String(v))) {
      refuse(
        conn,
        `ansible_connection=${String(v)} (set at ${at(conn.place)}, ${conn.place.path}): Ansible would not use ssh for this host, and agent-update only reaches servers over SSH; ` +
          'leave this host out of the inventory agent-update reads, or give it an ssh connection (ansible_connection=ssh)',
      );
    }
  }
  for (const name of PASSWORD_VARS) {
    const def = h.vars.get(name);
    if (!def || (!def.vault && (def.value === null || def.value === undefined))) continue;
    const become = name.includes('become') || name.includes('sudo') || name.includes('su_');
    refuse(
      def,
      `${name} is set (${at(def.place)}): agent-update never uses passwords from an inventory` +
        (become
          ? ' and never becomes another user with one; its commands run as the login user (give that user what the agent needs, or passwordless sudo)'
          : '; log in with a key: ansible_ssh_private_key_file, ssh.identity_file, or an ssh-agent (ssh.agent)') +
        `; remove ${name} from the inventory agent-update reads (an ansible-vault file in group_vars/ is skipped, so a password kept there is fine)`,
    );
  }

  const field = (name: 'host' | 'port' | 'user' | 'private_key_file') => {
    const chosen = connectionVar(h.vars, name);
    if (!chosen) return undefined;
    const v = plainValue(chosen.name, chosen.def);
    return v === undefined ? undefined : { name: chosen.name, def: chosen.def, value: v };
  };
  const host = field('host');
  const port = field('port');
  const user = field('user');
  const key = field('private_key_file');
  for (const f of [host, port, user, key]) {
    if (f && commentHint(f.value)) refuse(f.def, `${f.name} is ${JSON.stringify(f.value)}${commentHint(f.value)}`);
  }

  // The ssh command line, in Ansible's order (first value wins in ssh): ansible_ssh_args,
  // -o Port, -o IdentityFile, -o User, ansible_ssh_common_args, ansible_ssh_extra_args.
  const settings: ArgSetting<Place>[] = [];
  const args = (name: string) => {
    const def = h.vars.get(name);
    if (!def || def.value === null || def.value === undefined) return;
    const v = plainValue(name, def);
    if (v === undefined) return;
    try {
      settings.push(...readSshArgs(String(v), name, def.place));
    } catch (e) {
      if (!(e instanceof SshArgsError)) throw e;
      refuse(def, `${name}: ${e.message}`);
    }
  };
  args('ansible_ssh_args');
  if (port) settings.push({ option: 'port', value: port.value as string, from: port.name, place: port.def.place });
  if (key) settings.push({ option: 'identity_file', value: String(key.value), from: key.name, place: key.def.place });
  if (user) settings.push({ option: 'user', value: user.value as string, from: user.name, place: user.def.place });
  args('ansible_ssh_common_args');
  args('ansible_ssh_extra_args');
  const jumps = settings.filter((s) => s.option === 'jump');
  const lateJ = jumps.slice(1).find((s) => s.dashJ);
  if (lateJ) {
    report(
      lateJ.place,
      `${who}: ${lateJ.from}: -J after another jump host or ProxyCommand (${jumps[0]!.from}), which ssh refuses (Ansible's ssh fails for this host): give one jump chain, -J a,b`,
    );
    return undefined;
  }
  if (!ok) return undefined;

  const first = (option: ArgSetting<Place>['option']) => settings.find((s) => s.option === option);
  if (host) {
    raw.host = typeof host.value === 'number' ? String(host.value) : host.value;
    places.host = host.def.place;
  }
  const hostName = first('hostname');
  if (hostName) {
    const v = hostName.value as string;
    if (/%[^h%]/.test(v)) {
      report(hostName.place, `${who}: ${hostName.from}: HostName ${JSON.stringify(v)}: only %h and %% are read there; write the address`);
      return undefined;
    }
    raw.host = v.replace(/%%|%h/g, (m) => (m === '%%' ? '%' : String(raw.host)));
    places.host = hostName.place;
  }
  const p = first('port');
  if (p) {
    let v: unknown = p.value;
    if (typeof v === 'string' && /^\s*\d+\s*$/.test(v)) v = Number(v);
    raw.port = v;
    places.port = p.place;
  }
  const u = first('user');
  // an empty user is no user, as for ssh: the config's ssh.user applies
  if (u && u.value !== '') {
    raw.user = typeof u.value === 'number' ? String(u.value) : u.value;
    places.user = u.place;
  }
  const keys = settings.filter((s) => s.option === 'identity_file');
  const files = [...new Set(keys.map((k) => String(k.value)))];
  if (files.length > 1) {
    report(
      keys[1]!.place,
      `${who}: several key files (${keys.map((k) => `${JSON.stringify(k.value)} from ${k.from}`).join(', ')}); ` +
        'agent-update offers one key file per host: keep one (ansible_ssh_private_key_file)',
    );
    return undefined;
  }
  if (files.length === 1) {
    const f = files[0]!;
    if (!(f === '~' || f.startsWith('~/') || path.isAbsolute(f))) {
      report(
        keys[0]!.place,
        `${who}: ${keys[0]!.from}: the key file ${JSON.stringify(f)} is a relative path, which Ansible reads from the folder it runs in; ` +
          `write it from / or ~/ (e.g. ${JSON.stringify(path.join(path.dirname(keys[0]!.place.file), f))})${commentHint(f)}`,
      );
      return undefined;
    }
    raw.identity_file = f;
    places.identity_file = keys[0]!.place;
  }
  const jump = first('jump');
  if (jump) {
    raw.jump = jump.value;
    places.jump = jump.place;
  }
  return { raw, places };
}
