/**
 * An Ansible inventory as Ansible's InventoryData builds it: groups with hosts, child groups and
 * variables; hosts with their own variables; the implicit groups `all` (every group without a
 * parent is its child) and `ungrouped` (hosts in no other group). Both parsers (ini.ts, yaml.ts)
 * fill one, then `resolveHosts` gives each host its groups and its variables with Ansible's
 * precedence.
 */
import type { ConfigProblem } from '../../errors.js';

/** Where something was written: file, 1-based line, and a label for messages. */
export interface Place {
  file: string;
  line: number | undefined;
  /** what to call it in a message: `[web:vars] ansible_port`, `all.children.web.vars.ansible_port` */
  path: string;
}

/** One variable definition and where it was written. */
export interface VarDef {
  value: unknown;
  place: Place;
  /** set when the value was encrypted with ansible-vault (`!vault`): we cannot read it */
  vault?: boolean;
}

export type Vars = Map<string, VarDef>;

export interface Group {
  name: string;
  /** direct hosts, in the order they were added */
  hosts: string[];
  children: string[];
  parents: string[];
  vars: Vars;
  /** ansible_group_priority (default 1): breaks ties between groups of the same depth */
  priority: number;
  place: Place | undefined;
}

export interface Host {
  name: string;
  /** direct groups, in the order the host was added to them */
  groups: string[];
  vars: Vars;
  /** where the host first appears */
  place: Place;
}

/** A host as the rest of agent-update needs it. */
export interface ResolvedHost {
  name: string;
  place: Place;
  /**
   * Every group the host belongs to, directly or through child groups, without `all` and
   * `ungrouped`: the groups it is listed under (in file order), then their parents (nearest
   * first).
   */
  groups: string[];
  /** every variable, precedence applied (inventory, group_vars/, host_vars/) */
  vars: Vars;
}

export class InventoryError extends Error {
  constructor(
    message: string,
    readonly place: Place | undefined,
  ) {
    super(message);
  }
}

export class Inventory {
  readonly groups = new Map<string, Group>();
  readonly hosts = new Map<string, Host>();
  readonly problems: ConfigProblem[] = [];

  constructor(readonly file: string) {
    this.addGroup('all', undefined);
    this.addGroup('ungrouped', undefined);
    this.addChild('all', 'ungrouped', undefined);
  }

  problem(place: Place | undefined, message: string): void {
    const p: ConfigProblem = { file: place?.file ?? this.file, path: place?.path ?? '', message };
    if (place?.line !== undefined) p.line = place.line;
    this.problems.push(p);
  }

  addGroup(name: string, place: Place | undefined): Group {
    let g = this.groups.get(name);
    if (!g) {
      g = { name, hosts: [], children: [], parents: [], vars: new Map(), priority: 1, place };
      this.groups.set(name, g);
    } else if (g.place === undefined) g.place = place;
    return g;
  }

  /**
   * Add a host to a group (creating the host the first time). `port` (from `host:port`) sets
   * ansible_port when the host is created only, as Ansible does.
   */
  addHost(name: string, group: string, place: Place, port: number | null, portPlace: Place = place): Host {
    let h = this.hosts.get(name);
    if (!h) {
      h = { name, groups: [], vars: new Map(), place };
      this.hosts.set(name, h);
      if (port !== null) h.vars.set('ansible_port', { value: port, place: portPlace });
    }
    const g = this.addGroup(group, undefined);
    if (!g.hosts.includes(name)) {
      g.hosts.push(name);
      h.groups.push(group);
    }
    return h;
  }

  /** Make `child` a child group of `parent`; refused (InventoryError) when it would make a loop. */
  addChild(parent: string, child: string, place: Place | undefined): void {
    if (parent === child) throw new InventoryError(`group ${JSON.stringify(child)} cannot be a child of itself`, place);
    const p = this.addGroup(parent, undefined);
    const c = this.addGroup(child, undefined);
    if (p.children.includes(child)) return;
    const chain = this.pathUp(parent, child);
    if (chain) {
      throw new InventoryError(
        `making ${JSON.stringify(child)} a child of ${JSON.stringify(parent)} makes a loop: ${[child, ...chain].join(' → ')}`,
        place,
      );
    }
    p.children.push(child);
    if (!c.parents.includes(parent)) c.parents.push(parent);
  }

  /** The chain of parents from `from` up to `to` (`from`, …, `to`), if `to` is an ancestor of `from`. */
  private pathUp(from: string, to: string): string[] | null {
    const seen = new Set<string>();
    const walk = (name: string): string[] | null => {
      if (name === to) return [name];
      if (seen.has(name)) return null;
      seen.add(name);
      for (const parent of this.groups.get(name)?.parents ?? []) {
        const rest = walk(parent);
        if (rest) return [name, ...rest];
      }
      return null;
    };
    return walk(from);
  }

  setGroupVar(group: string, key: string, def: VarDef): void {
    const g = this.addGroup(group, undefined);
    if (key === 'ansible_group_priority') {
      const n = typeof def.value === 'number' ? def.value : typeof def.value === 'string' && /^\s*[+-]?\d+\s*$/.test(def.value) ? Number(def.value) : NaN;
      if (!Number.isInteger(n)) {
        this.problem(def.place, `ansible_group_priority must be a whole number, got ${JSON.stringify(def.value)}`);
        return;
      }
      g.priority = n;
      return;
    }
    setVar(g.vars, key, def);
  }

  setHostVar(host: string, key: string, def: VarDef): void {
    const h = this.hosts.get(host);
    if (h) setVar(h.vars, key, def);
  }

  /** Ansible's reconcile_inventory: parentless groups under `all`, lone hosts in `ungrouped`. */
  reconcile(): void {
    for (const g of this.groups.values()) {
      if (g.name !== 'all' && g.parents.length === 0) this.addChild('all', g.name, undefined);
    }
    const ungrouped = this.groups.get('ungrouped')!;
    for (const h of this.hosts.values()) {
      const others = this.groupsOf(h).filter((g) => g !== 'all' && g !== 'ungrouped');
      if (others.length > 0 && h.groups.includes('ungrouped')) {
        h.groups = h.groups.filter((g) => g !== 'ungrouped');
        ungrouped.hosts = ungrouped.hosts.filter((n) => n !== h.name);
      } else if (others.length === 0 && !h.groups.includes('ungrouped')) {
        h.groups.push('ungrouped');
        ungrouped.hosts.push(h.name);
      }
    }
  }

  /** The host's groups with their ancestors: direct ones first (file order), then parents breadth first. */
  groupsOf(h: Host): string[] {
    const out: string[] = [...h.groups];
    for (let i = 0; i < out.length; i++) {
      for (const parent of this.groups.get(out[i]!)?.parents ?? []) if (!out.includes(parent)) out.push(parent);
    }
    return out;
  }

  /** Ansible's Group.depth: the longest chain of parents up to `all` (which is 0). */
  depthOf(name: string, memo = new Map<string, number>()): number {
    const known = memo.get(name);
    if (known !== undefined) return known;
    const g = this.groups.get(name);
    const parents = g?.parents ?? [];
    const d = name === 'all' || parents.length === 0 ? 0 : 1 + Math.max(...parents.map((p) => this.depthOf(p, memo)));
    memo.set(name, d);
    return d;
  }
}

function setVar(vars: Vars, key: string, def: VarDef): void {
  const old = vars.get(key);
  // Ansible merges a mapping into a mapping already set for the same key (one level)
  if (old && isPlainObject(old.value) && isPlainObject(def.value)) {
    vars.set(key, { ...def, value: { ...old.value, ...def.value } });
  } else vars.set(key, def);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Variables from group_vars/ and host_vars/ files, by group or host name. */
export interface VarsFiles {
  group: (name: string) => Vars;
  host: (name: string) => Vars;
}

/**
 * Every host with its groups and variables, in Ansible's precedence (lowest first):
 * the inventory's `all` vars, the inventory's group vars (groups sorted by depth, then
 * ansible_group_priority, then name: a child group beats its parent), group_vars/all,
 * group_vars/<group> (same order), the inventory's host vars, host_vars/<host>.
 */
export function resolveHosts(inv: Inventory, files: VarsFiles | null): ResolvedHost[] {
  const memo = new Map<string, number>();
  const out: ResolvedHost[] = [];
  for (const h of inv.hosts.values()) {
    const all = inv.groupsOf(h);
    const sorted = all
      .filter((g) => g !== 'all')
      .map((name) => ({ name, depth: inv.depthOf(name, memo), priority: inv.groups.get(name)?.priority ?? 1 }))
      .sort((a, b) => a.depth - b.depth || a.priority - b.priority || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .map((g) => g.name);
    const vars: Vars = new Map();
    // combine_vars: a later definition replaces an earlier one (mappings too)
    const merge = (from: Vars) => {
      for (const [k, v] of from) vars.set(k, v);
    };
    merge(inv.groups.get('all')!.vars);
    for (const g of sorted) merge(inv.groups.get(g)!.vars);
    if (files) {
      merge(files.group('all'));
      for (const g of sorted) merge(files.group(g));
    }
    merge(h.vars);
    if (files) merge(files.host(h.name));
    out.push({ name: h.name, place: h.place, groups: all.filter((g) => g !== 'all' && g !== 'ungrouped'), vars });
  }
  return out;
}
