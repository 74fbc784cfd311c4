/** What the INI and YAML inventory tests ask of a parsed inventory, for either format. */
import assert from 'node:assert/strict';
import { parseAnsible, type ResolvedHost } from '../../src/config/inventory/index.js';
import type { ConfigProblem } from '../../src/errors.js';

export function inventoryParser(file: string, format: 'ini' | 'yaml') {
  function parse(text: string): { hosts: Map<string, ResolvedHost>; problems: ConfigProblem[] } {
    const r = parseAnsible(file, text, format, { varsFiles: false });
    return { hosts: new Map(r.hosts.map((h) => [h.name, h])), problems: r.problems };
  }
  /** The hosts of an inventory that must have no problem. */
  function hosts(text: string): Map<string, ResolvedHost> {
    const r = parse(text);
    assert.deepEqual(r.problems, []);
    return r.hosts;
  }
  /** The variables of a host as plain values. */
  function vars(h: ResolvedHost | undefined): Record<string, unknown> {
    assert.ok(h, 'no such host');
    return Object.fromEntries([...h.vars].map(([k, d]) => [k, d.value]));
  }
  /** The problems as `line: message` (the file is checked to be the inventory). */
  function errors(text: string): string[] {
    const r = parse(text);
    for (const p of r.problems) assert.equal(p.file, file);
    return r.problems.map((p) => `${p.line ?? '-'}: ${p.path ? `${p.path}: ` : ''}${p.message}`);
  }
  return { hosts, vars, errors };
}
