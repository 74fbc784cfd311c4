/**
 * Ansible's YAML inventory (ansible/plugins/inventory/yaml.py), and the YAML reading shared with
 * group_vars/ and host_vars/ files. YAML 1.1, as Ansible's PyYAML reads it (`yes` is true,
 * `0755` octal); a key given twice keeps its last value, as in Ansible.
 *
 *     all:                      # every top-level key is a group (usually just `all`)
 *       vars: { ansible_user: deploy }
 *       hosts:
 *         bastion.example.com:  # a host, with or without variables
 *       children:
 *         web:
 *           hosts:
 *             web[01:04]:       # ranges and host:port work as in INI
 *             web-canary: { ansible_host: 10.0.0.99 }
 *
 * `hosts`, `children` and `vars` may be a single name instead of a mapping. What Ansible skips
 * with a warning (a group that is not a mapping, an unknown key in a group) is an error here:
 * skipping it would silently leave servers out.
 */
import {
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  type Document,
  type Node as YamlNode,
  type ParsedNode,
  type Tags,
} from 'yaml';
import { expandHostPattern, HostPatternError } from './hosts.js';
import { InventoryError, type Inventory, type Place, type VarDef, type Vars } from './model.js';

export interface YamlSource {
  doc: Document.Parsed;
  lineAt: (node: YamlNode | null | undefined) => number | undefined;
  /** syntax errors, as messages with lines */
  errors: Array<{ line: number | undefined; message: string }>;
}

/**
 * The YAML 1.1 scalars as PyYAML resolves them, where the yaml library reads more: `y`/`n` are
 * strings (not booleans), and a float needs a dot, and a sign in its exponent (`1.5e+3`;
 * `1e3` and `1.5e3` are strings).
 */
function pyYamlTags(tags: Tags): Tags {
  const replace: Array<[(t: RegExp) => boolean, RegExp]> = [
    [(t) => t.test('yes') && t.test('y'), /^(?:[Yy]es|YES|[Tt]rue|TRUE|[Oo]n|ON)$/],
    [(t) => t.test('no') && t.test('n'), /^(?:[Nn]o|NO|[Ff]alse|FALSE|[Oo]ff|OFF)$/],
    [(t) => t.test('1e3'), /^(?:[-+]?[0-9][0-9_]*\.[0-9_]*[eE][-+][0-9]+|\.[0-9][0-9_]*[eE][-+][0-9]+)$/],
    [(t) => t.test('1.5') && t.test('.5') && !t.test('1:30.5'), /^(?:[-+]?[0-9][0-9_]*\.[0-9_]*|\.[0-9][0-9_]*)$/],
  ];
  return tags.map((tag) => {
    if (typeof tag !== 'object' || !('test' in tag) || !(tag.test instanceof RegExp)) return tag;
    const test = tag.test;
    const r = replace.find(([is]) => is(test));
    return r ? { ...tag, test: r[1] } : tag;
  }) as Tags;
}

/** Parse YAML 1.1 as Ansible does; duplicate keys are allowed (the last one wins). */
export function readYaml(text: string): YamlSource {
  const lc = new LineCounter();
  const doc = parseDocument(text, {
    version: '1.1',
    customTags: pyYamlTags,
    lineCounter: lc,
    uniqueKeys: false,
    merge: true,
    prettyErrors: false,
  });
  const lineAt = (node: YamlNode | null | undefined) => (node?.range ? lc.linePos(node.range[0]).line : undefined);
  const errors = doc.errors.map((e) => ({
    line: lc.linePos(e.pos[0]).line,
    message:
      e.code === 'MULTIPLE_DOCS'
        ? 'the file holds several YAML documents (---); it must be one'
        : `YAML syntax error: ${e.message.split('\n')[0] ?? e.message}`,
  }));
  return { doc, lineAt, errors };
}

export interface Entry {
  key: unknown;
  keyNode: YamlNode | null;
  value: YamlNode | null;
}

/** The node an alias points at (the node itself otherwise). */
export function deref(src: YamlSource, node: unknown): YamlNode | null {
  let n = node as YamlNode | null;
  for (let i = 0; i < 100 && n && isAlias(n); i++) n = (n.resolve(src.doc) as YamlNode | undefined) ?? null;
  return n ?? null;
}

/**
 * A mapping's entries in order, merge keys (`<<: *anchor`) expanded, a repeated key keeping
 * its first position and its last value (a Python dict).
 */
export function entries(src: YamlSource, node: YamlNode, depth = 0): Entry[] {
  const out = new Map<string, Entry>();
  const merged: Entry[] = [];
  if (!isMap(node) || depth > 20) return [];
  for (const pair of node.items) {
    const keyNode = pair.key as YamlNode | null;
    const key = isScalar(keyNode) ? keyNode.value : keyNode;
    // YAML 1.1 reads the merge key `<<` as a symbol
    if (key === '<<' || typeof key === 'symbol' || (isScalar(keyNode) && keyNode.tag === 'tag:yaml.org,2002:merge')) {
      const v = deref(src, pair.value);
      const sources = isSeq(v) ? v.items.map((i) => deref(src, i)) : [v];
      for (const s of sources) if (s && isMap(s)) merged.push(...entries(src, s, depth + 1));
      continue;
    }
    const id = typeof key === 'string' ? `s:${key}` : `o:${JSON.stringify(key)}`;
    const existing = out.get(id);
    const entry: Entry = { key, keyNode, value: deref(src, pair.value) };
    if (existing) {
      existing.value = entry.value;
      existing.keyNode = keyNode;
    } else out.set(id, entry);
  }
  const own = [...out.values()];
  for (const m of merged) {
    const id = typeof m.key === 'string' ? `s:${m.key}` : `o:${JSON.stringify(m.key)}`;
    if (!out.has(id)) {
      out.set(id, m);
      own.push(m);
    }
  }
  return own;
}

/** A node as a plain value (aliases and merges resolved). */
export function plain(src: YamlSource, node: YamlNode | null): unknown {
  if (node === null) return null;
  return (node as ParsedNode).toJS(src.doc, { maxAliasCount: 100 });
}

function isVault(node: YamlNode | null): boolean {
  return node !== null && isScalar(node) && node.tag === '!vault';
}

function describe(node: YamlNode | null, src: YamlSource): string {
  const v = plain(src, node);
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object' && v !== null) return 'a mapping';
  return `${typeof v === 'string' ? 'the string' : 'the value'} ${JSON.stringify(v)}`;
}

/** Variables of a mapping node (a `vars:` section, a host's mapping, a vars file). */
export function readVars(src: YamlSource, node: YamlNode, file: string, prefix: string): Array<[string, VarDef]> {
  return entries(src, node).map((e) => {
    const key = String(isScalar(e.keyNode) ? e.keyNode.value : e.key);
    const def: VarDef = {
      value: isVault(e.value) ? null : plain(src, e.value),
      place: { file, line: src.lineAt(e.keyNode), path: prefix ? `${prefix}.${key}` : key },
    };
    if (isVault(e.value)) def.vault = true;
    return [key, def];
  });
}

const GROUP_KEYS = ['hosts', 'children', 'vars'];

/** Fill `inv` from a parsed Ansible YAML inventory (a mapping of groups). */
export function parseAnsibleYaml(src: YamlSource, inv: Inventory): void {
  const root = deref(src, src.doc.contents);
  if (!root) return;
  for (const e of entries(src, root)) {
    const name = groupName(src, inv, e, '');
    if (name !== null) parseGroup(src, inv, name, e, name);
  }
}

function groupName(src: YamlSource, inv: Inventory, e: Entry, parentPath: string): string | null {
  if (typeof e.key !== 'string' || e.key === '') {
    inv.problem(
      { file: inv.file, line: src.lineAt(e.keyNode), path: parentPath },
      `a group name must be a string, got ${JSON.stringify(e.key)}${typeof e.key === 'number' ? ' (put it in quotes)' : ''}`,
    );
    return null;
  }
  return e.key;
}

/** Deeper than this is an alias that points at its own group (YAML allows it). */
const MAX_DEPTH = 50;

function parseGroup(src: YamlSource, inv: Inventory, name: string, e: Entry, path: string, depth = 0): void {
  const file = inv.file;
  const place: Place = { file, line: src.lineAt(e.keyNode), path };
  if (depth > MAX_DEPTH) {
    inv.problem(place, `groups nested more than ${MAX_DEPTH} deep: does a YAML alias point at its own group?`);
    return;
  }
  inv.addGroup(name, place);
  const data = e.value;
  if (data === null || (isScalar(data) && data.value === null)) return;
  if (!isMap(data)) {
    inv.problem(place, `a group must be a mapping (with hosts, children or vars), got ${describe(data, src)}`);
    return;
  }
  for (const s of entries(src, data)) {
    const key = typeof s.key === 'string' ? s.key : String(s.key);
    const sPath = `${path}.${key}`;
    const sPlace: Place = { file, line: src.lineAt(s.keyNode), path: sPath };
    if (!GROUP_KEYS.includes(key)) {
      inv.problem(sPlace, `unknown key in group ${JSON.stringify(name)}: a group has hosts, children and vars`);
      continue;
    }
    const section = s.value;
    if (section === null || (isScalar(section) && section.value === null)) continue;
    // a single name instead of a mapping: `hosts: web1`
    let single: string | null = null;
    if (isScalar(section) && typeof section.value === 'string') single = section.value;
    else if (!isMap(section)) {
      inv.problem(sPlace, `must be a mapping${key === 'vars' ? ' of variables' : ` of ${key === 'hosts' ? 'host names' : 'group names'} (each with a colon after it)`}, got ${describe(section, src)}`);
      continue;
    }
    if (key === 'vars') {
      if (single !== null) {
        // Ansible turns `vars: x` into `{x: null}`
        inv.setGroupVar(name, single, { value: null, place: sPlace });
        continue;
      }
      for (const [k, def] of readVars(src, section, file, sPath)) inv.setGroupVar(name, k, def);
    } else if (key === 'children') {
      const kids: Entry[] = single !== null ? [{ key: single, keyNode: section, value: null }] : entries(src, section);
      for (const k of kids) {
        const child = groupName(src, inv, k, sPath);
        if (child === null) continue;
        const cPath = `${sPath}.${child}`;
        parseGroup(src, inv, child, k, cPath, depth + 1);
        try {
          inv.addChild(name, child, { file, line: src.lineAt(k.keyNode), path: cPath });
        } catch (err) {
          if (!(err instanceof InventoryError)) throw err;
          inv.problem(err.place, err.message);
        }
      }
    } else {
      const hosts: Entry[] = single !== null ? [{ key: single, keyNode: section, value: null }] : entries(src, section);
      for (const h of hosts) hostEntry(src, inv, name, h, sPath);
    }
  }
}

function hostEntry(src: YamlSource, inv: Inventory, group: string, h: Entry, sectionPath: string): void {
  const file = inv.file;
  const line = src.lineAt(h.keyNode);
  if (typeof h.key !== 'string') {
    inv.problem(
      { file, line, path: sectionPath },
      `a host pattern must be a string, got ${JSON.stringify(h.key)}${typeof h.key === 'number' ? ' (put it in quotes)' : ''}`,
    );
    return;
  }
  const pattern = h.key;
  const hPath = `${sectionPath}.${pattern}`;
  let names: string[];
  let port: number | null;
  try {
    ({ names, port } = expandHostPattern(pattern));
  } catch (e) {
    if (!(e instanceof HostPatternError)) throw e;
    inv.problem({ file, line, path: hPath }, e.message);
    return;
  }
  if (names.some((n) => n === '')) {
    inv.problem({ file, line, path: hPath }, 'a host name must not be empty');
    return;
  }
  let vars: Array<[string, VarDef]> = [];
  const v = h.value;
  if (v !== null && !(isScalar(v) && v.value === null)) {
    if (!isMap(v)) {
      inv.problem({ file, line, path: hPath }, `a host's value must be a mapping of its variables (or nothing), got ${describe(v, src)}`);
      return;
    }
    vars = readVars(src, v, file, hPath);
  }
  for (const n of names) {
    inv.addHost(n, group, { file, line, path: n }, port, { file, line, path: `${hPath} (the port)` });
    for (const [k, def] of vars) inv.setHostVar(n, k, def);
  }
}

/** Merge definitions into a Vars map (combine_vars: a later one replaces an earlier one). */
export function mergeVars(into: Vars, defs: Iterable<[string, VarDef]>): void {
  for (const [k, d] of defs) into.set(k, d);
}
