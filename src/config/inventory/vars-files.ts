/**
 * group_vars/ and host_vars/ next to the inventory file, read as Ansible's host_group_vars
 * plugin reads them: for a group or host NAME, the first of `NAME` (a file, or a folder),
 * `NAME.yml`, `NAME.yaml`, `NAME.json` that exists; a folder contributes every file in it and
 * its subfolders (sorted by name; hidden files, `~` backups and other extensions skipped), later
 * files overriding earlier ones. Each file is one YAML (or JSON) mapping of variables.
 *
 * A file encrypted with ansible-vault is skipped: agent-update cannot decrypt it (keep
 * ansible_host, ansible_port and ansible_user out of vaulted files). A `!vault` value inside a
 * plain file is read as "encrypted", which is an error only where agent-update needs the value.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Inventory, Vars, VarsFiles } from './model.js';
import { deref, readVars, readYaml } from './yaml.js';
import { isMap, isScalar } from 'yaml';

const EXTENSIONS = ['', '.yml', '.yaml', '.json'];

function stat(p: string): fs.Stats | null {
  try {
    return fs.statSync(p);
  } catch {
    return null;
  }
}

/** The vars files for NAME under `dir`, in the order they apply (find_vars_files). */
export function findVarsFiles(dir: string, name: string): string[] {
  for (const ext of EXTENSIONS) {
    const full = path.join(dir, name + ext);
    const st = stat(full);
    if (!st) continue;
    return st.isDirectory() ? dirFiles(full) : [full];
  }
  return [];
}

function dirFiles(dir: string): string[] {
  const out: string[] = [];
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return out;
  }
  // Python's sorted(): by code point
  for (const n of names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (n.startsWith('.') || n.endsWith('~')) continue;
    const ext = path.extname(n);
    const full = path.join(dir, n);
    const st = stat(full);
    if (!st) continue;
    if (st.isDirectory() && !ext) out.push(...dirFiles(full));
    else if (st.isFile() && EXTENSIONS.includes(ext)) out.push(full);
  }
  return out;
}

/** Reads group_vars/ and host_vars/ next to `inv.file` lazily; problems go to `inv`. */
export function varsFilesFor(inv: Inventory): VarsFiles | null {
  const base = path.dirname(inv.file);
  const groupDir = path.join(base, 'group_vars');
  const hostDir = path.join(base, 'host_vars');
  const hasGroups = stat(groupDir)?.isDirectory() ?? false;
  const hasHosts = stat(hostDir)?.isDirectory() ?? false;
  if (!hasGroups && !hasHosts) return null;
  const cache = new Map<string, Vars>();
  const load = (dir: string, name: string): Vars => {
    const key = `${dir}\0${name}`;
    const hit = cache.get(key);
    if (hit) return hit;
    const vars: Vars = new Map();
    // a name with a path separator (`/chroot/path`) never names a file, as in Ansible; nor
    // does `.` or `..` (the folder itself, or its parent)
    if (!name.includes('/') && !name.includes('\0') && name !== '.' && name !== '..') {
      for (const file of findVarsFiles(dir, name)) {
        for (const [k, def] of readVarsFile(inv, file)) vars.set(k, def);
      }
    }
    cache.set(key, vars);
    return vars;
  };
  return {
    group: (name) => (hasGroups ? load(groupDir, name) : new Map()),
    host: (name) => (hasHosts ? load(hostDir, name) : new Map()),
  };
}

function readVarsFile(inv: Inventory, file: string): ReturnType<typeof readVars> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    inv.problem({ file, line: undefined, path: '' }, `cannot read it: ${(e as Error).message}`);
    return [];
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (text.startsWith('$ANSIBLE_VAULT;')) return [];
  const src = readYaml(text);
  if (src.errors.length) {
    for (const e of src.errors) inv.problem({ file, line: e.line, path: '' }, e.message);
    return [];
  }
  const root = deref(src, src.doc.contents);
  if (root === null || (isScalar(root) && (root.value === null || root.value === ''))) return [];
  if (!isMap(root)) {
    inv.problem({ file, line: src.lineAt(root), path: '' }, 'a vars file must be a mapping of variable names to values');
    return [];
  }
  return readVars(src, root, file, '');
}
