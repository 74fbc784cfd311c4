/**
 * Ansible's INI inventory (ansible/plugins/inventory/ini.py), which is not INI: one pass over the
 * lines, as if the file began with `[ungrouped]`.
 *
 * - `#` or `;` first on a line: a comment. `[name]` holds host lines, `[name:vars]` holds
 *   `key=value` lines, `[name:children]` holds group names; anything after `]` but a `#`
 *   comment is an error.
 * - A host line is split like a shell would (Python's shlex, `#` starts a comment even inside
 *   a word, `;` does not): the host pattern (`web1`, `web1:2222`, `web[01:20]`), then
 *   `key=value` words. A `:vars` line is `key = value`, split at the first `=`, and everything
 *   after it is the value (a trailing `# …` too, unless the value is quoted).
 * - Every value goes through Python's literal_eval: `2222` is a number, `"2222"` (on a
 *   `:vars` line) or `"'2222'"` (on a host line, where the shell-like split eats one level of
 *   quotes) a string, `True`/`None` are themselves; anything else is kept as text.
 * - A group may be named in `[x:children]` before its own section; it must have one somewhere
 *   (`[name]` or `[name:children]`), and `[name:vars]` needs one too.
 */
import { expandHostPattern, HostPatternError } from './hosts.js';
import { InventoryError, type Inventory, type Place } from './model.js';
import { literalEval, shlexSplit, ShlexError } from './python.js';

// Python's str.splitlines boundaries
// eslint-disable-next-line no-control-regex
const LINE_BREAK = /\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]/u;
const SECTION = /^\[([^:\]\s]+)(?::([\p{L}\p{N}_]+))?\]\s*(?:#.*)?$/u;
const GROUP_NAME = /^([^:\]\s]+)\s*(?:#.*)?$/u;

interface Pending {
  line: number;
  state: 'vars' | 'children';
  parents: string[];
}

export function parseIni(text: string, inv: Inventory): void {
  const file = inv.file;
  const lines = text.split(LINE_BREAK);
  let group = 'ungrouped';
  let state: 'hosts' | 'vars' | 'children' | 'skip' = 'hosts';
  const pending = new Map<string, Pending>();
  const at = (line: number, path: string): Place => ({ file, line, path });

  const addPendingChildren = (name: string) => {
    const decl = pending.get(name);
    if (!decl) return;
    pending.delete(name);
    for (const parent of decl.parents) {
      try {
        inv.addChild(parent, name, at(decl.line, `[${parent}:children] ${name}`));
      } catch (e) {
        if (!(e instanceof InventoryError)) throw e;
        inv.problem(e.place, e.message);
      }
      if (pending.get(parent)?.state === 'children') addPendingChildren(parent);
    }
  };

  lines.forEach((raw, index) => {
    const lineNo = index + 1;
    const line = raw.trim();
    if (line === '' || line[0] === '#' || line[0] === ';') return;

    const m = SECTION.exec(line);
    if (m) {
      const name = m[1]!;
      const kind = m[2] ?? 'hosts';
      if (kind !== 'hosts' && kind !== 'vars' && kind !== 'children') {
        inv.problem(at(lineNo, line), `unknown kind of section ${JSON.stringify(kind)}: a section is [${name}], [${name}:vars] or [${name}:children]`);
        state = 'skip';
        return;
      }
      group = name;
      state = kind;
      if (!inv.groups.has(name)) {
        // [name:vars] alone does not define the group: it must be defined somewhere else
        if (kind === 'vars' && !pending.has(name)) pending.set(name, { line: lineNo, state: 'vars', parents: [] });
        inv.addGroup(name, at(lineNo, line));
      } else inv.addGroup(name, at(lineNo, line));
      if (pending.has(name) && kind !== 'vars') {
        if (pending.get(name)!.state === 'children') addPendingChildren(name);
        else pending.delete(name);
      }
      return;
    }
    if (line.startsWith('[') && line.endsWith(']')) {
      inv.problem(
        at(lineNo, line),
        'not a valid section header: a section is [name], [name:vars] or [name:children], with no spaces and no ] or : in the name',
      );
      state = 'skip';
      return;
    }

    if (state === 'skip') return;
    if (/^\[[^\]]*\]\s+[^\s#]/.test(line)) {
      // Ansible would read it as a host line with a range, which is never what was meant
      inv.problem(at(lineNo, line.slice(0, line.indexOf(']') + 1)), 'not a valid section header: only a # comment may follow the ]');
      state = 'skip';
      return;
    }
    if (state === 'hosts') hostLine(inv, line, lineNo, group);
    else if (state === 'vars') {
      const eq = line.indexOf('=');
      if (eq === -1) {
        inv.problem(at(lineNo, `[${group}:vars]`), `expected key=value, got ${JSON.stringify(line)}`);
        return;
      }
      const key = line.slice(0, eq).trim();
      const value = literalEval(line.slice(eq + 1).trim());
      inv.setGroupVar(group, key, { value, place: at(lineNo, `[${group}:vars] ${key}`) });
    } else {
      const g = GROUP_NAME.exec(line);
      if (!g) {
        inv.problem(at(lineNo, `[${group}:children]`), `expected a group name, got ${JSON.stringify(line)}`);
        return;
      }
      const child = g[1]!;
      if (!inv.groups.has(child)) {
        const decl = pending.get(child);
        if (decl) decl.parents.push(group);
        else pending.set(child, { line: lineNo, state: 'children', parents: [group] });
        return;
      }
      try {
        inv.addChild(group, child, at(lineNo, `[${group}:children] ${child}`));
      } catch (e) {
        if (!(e instanceof InventoryError)) throw e;
        inv.problem(e.place, e.message);
      }
    }
  });

  for (const [name, decl] of pending) {
    if (decl.state === 'vars') {
      inv.problem(
        at(decl.line, `[${name}:vars]`),
        `group ${JSON.stringify(name)} is not defined: [${name}:vars] needs a [${name}] or [${name}:children] section too`,
      );
    } else {
      const parent = decl.parents[decl.parents.length - 1]!;
      inv.problem(
        at(decl.line, `[${parent}:children] ${name}`),
        `group ${JSON.stringify(name)} is not defined: add a [${name}] section (or [${name}:children]) for it`,
      );
    }
  }
}

function hostLine(inv: Inventory, line: string, lineNo: number, group: string): void {
  const file = inv.file;
  let tokens: string[];
  try {
    tokens = shlexSplit(line);
  } catch (e) {
    if (!(e instanceof ShlexError)) throw e;
    inv.problem({ file, line: lineNo, path: `[${group}]` }, `cannot read the host line: ${e.message === 'No closing quotation' ? 'a quote is not closed' : 'it ends with a backslash'}`);
    return;
  }
  const pattern = tokens[0];
  if (pattern === undefined || pattern === '') {
    inv.problem({ file, line: lineNo, path: `[${group}]` }, `expected a host name, got ${JSON.stringify(line)}`);
    return;
  }
  const place = (path: string): Place => ({ file, line: lineNo, path });
  let names: string[];
  let port: number | null;
  try {
    ({ names, port } = expandHostPattern(pattern));
  } catch (e) {
    if (!(e instanceof HostPatternError)) throw e;
    inv.problem(place(pattern), e.message);
    return;
  }
  if (pattern.trim().endsWith(':') && port === null) {
    inv.problem(place(pattern), `host pattern ${JSON.stringify(pattern)} ends with ':', which must be followed by a port`);
    return;
  }
  if (names.some((n) => n.trim() === '---')) {
    inv.problem(place(pattern), "a host named '---': is this a YAML file? Name it .yml or .yaml");
    return;
  }
  const vars: Array<[string, unknown]> = [];
  for (const t of tokens.slice(1)) {
    const eq = t.indexOf('=');
    if (eq === -1) {
      inv.problem(place(pattern), `expected key=value after the host, got ${JSON.stringify(t)} (put the value in quotes if it holds spaces)`);
      return;
    }
    vars.push([t.slice(0, eq), literalEval(t.slice(eq + 1))]);
  }
  for (const name of names) {
    inv.addHost(name, group, place(name), port, place(`${pattern} (the port)`));
    for (const [k, v] of vars) inv.setHostVar(name, k, { value: v, place: place(`${pattern} ${k}`) });
  }
}
