/** Deploy freezes (table freezes): an active row per frozen repo, then the audit record of it (model/freeze.ts). */
import type { FreezeRecord } from '../../model/records.js';
import type { NewFreeze } from '../port.js';
import type { Db } from './db.js';
import { toFreeze, type Row } from '../rows.js';

export function activeFreeze(db: Db, repoKey: string): FreezeRecord | null {
  const row = db.stmt('SELECT * FROM freezes WHERE repo_key = ? AND unfrozen_at IS NULL').get(repoKey) as Row | undefined;
  return row ? toFreeze(row) : null;
}

/** Every freeze (of one repo key when given), oldest first. */
export function freezes(db: Db, repoKey?: string): FreezeRecord[] {
  const rows = repoKey === undefined
    ? db.stmt('SELECT * FROM freezes ORDER BY id').all()
    : db.stmt('SELECT * FROM freezes WHERE repo_key = ? ORDER BY id').all(repoKey);
  return (rows as Row[]).map(toFreeze);
}

/** The repo frozen unless it is already (then the active freeze, unchanged), in one transaction. */
export function freeze(db: Db, f: NewFreeze): { freeze: FreezeRecord; created: boolean } {
  return db.tx(() => {
    const active = activeFreeze(db, f.repoKey);
    if (active) return { freeze: active, created: false };
    const info = db.stmt('INSERT INTO freezes (repo_key, repo, config_file, reason, frozen_by, frozen_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(f.repoKey, f.repo, f.configFile, f.reason, f.frozenBy, db.iso());
    return { freeze: toFreeze(db.stmt('SELECT * FROM freezes WHERE id = ?').get(Number(info.lastInsertRowid)) as Row), created: true };
  });
}

/** The repo's active freeze lifted by `by`, returned so; null when none is active. */
export function unfreeze(db: Db, repoKey: string, by: string): FreezeRecord | null {
  return db.tx(() => {
    const active = activeFreeze(db, repoKey);
    if (!active) return null;
    db.stmt('UPDATE freezes SET unfrozen_by = ?, unfrozen_at = ? WHERE id = ?').run(by, db.iso(), active.id);
    return toFreeze(db.stmt('SELECT * FROM freezes WHERE id = ?').get(active.id) as Row);
  });
}
