/**
 * `inventory: PATH`: read an inventory file into server entries for validate.ts.
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
import type { KeyPath } from '../validate.js';
import { parseYaml } from '../yaml.js';
import { parseIni } from './ini.js';
import { Inventory, InventoryError, resolveHosts, type Place, type ResolvedHost, type VarDef } from './model.js';
import { varsFilesFor } from './vars-files.js';
import { deref, entries, parseAnsibleYaml, readYaml } from './yaml.js';

export type { Place, ResolvedHost } from './model.js';

/** One host of an Ansible inventory as a `servers:` entry, with where each field came from. */
export interface AnsibleEntry {
  /** name, host, port, user, type (a list): what a `servers:` entry would hold */
  raw: Record<string, unknown>;
  /** where each field of `raw` was written (the host itself when it was not set) */
  places: Record<'name' | 'host' | 'port' | 'user' | 'type', Place>;
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

/** The rule of validate.ts for server names. */
const SERVER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * The variable Ansible's ssh connection uses: the old name (`ansible_ssh_user`) wins over the
 * new one (`ansible_user`) when both are set, wherever each was set; a null is "not set".
 */
export function connectionVar(vars: Map<string, VarDef>, field: 'host' | 'port' | 'user'): { name: string; def: VarDef } | undefined {
  for (const name of [`ansible_ssh_${field}`, `ansible_${field}`]) {
    const def = vars.get(name);
    if (def && (def.vault || (def.value !== null && def.value !== undefined))) return { name, def };
  }
  return undefined;
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
    if (!SERVER_NAME.test(h.name)) {
      report(
        h.place,
        `${JSON.stringify(h.name)} is not a valid server name (letters, digits, '.', '_' and '-', starting with a letter or digit): ` +
          'give the host a name and put the address in ansible_host, e.g. web1 ansible_host=2001:db8::1',
      );
      continue;
    }
    const raw: Record<string, unknown> = { name: h.name, host: h.name, type: h.groups.length ? h.groups : ['default'] };
    const places: AnsibleEntry['places'] = { name: h.place, host: h.place, port: h.place, user: h.place, type: h.place };
    let ok = true;
    for (const field of ['host', 'port', 'user'] as const) {
      const chosen = connectionVar(h.vars, field);
      if (!chosen) continue;
      const { name, def } = chosen;
      places[field] = def.place;
      if (def.vault) {
        report(def.place, `${name} is encrypted with ansible-vault, which agent-update cannot decrypt: write it in plain text`);
        ok = false;
        continue;
      }
      let v = def.value;
      if (typeof v === 'string' && /\{\{|\{%/.test(v)) {
        report(def.place, `${name} is a Jinja template (${JSON.stringify(v)}); agent-update does not evaluate templates: write the value itself`);
        ok = false;
        continue;
      }
      if (field === 'port' && typeof v === 'string' && /^\s*\d+\s*$/.test(v)) v = Number(v);
      if (field !== 'port' && typeof v === 'number') v = String(v);
      // an empty user is no user, as for ssh: the config's ssh.user applies
      if (field === 'user' && v === '') continue;
      raw[field] = v;
    }
    if (ok) entriesOut.push({ raw, places });
  }
  return { entries: entriesOut, problems };
}
