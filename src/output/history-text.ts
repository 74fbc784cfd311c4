/**
 * `history`'s text: each server's commits over time (historyText), a repo's updates in order
 * (updatesHistoryText), one update's timeline (updateTimelineText); each table fitted to the
 * terminal's width (output/fit.ts), as `status`'s are.
 */
import chalk from 'chalk';
import type { HistoryEntry, HistoryJson, UpdateHistoryEntry, UpdatesHistoryJson, UpdateTimelineJson } from '../rollout/history.js';
import { fitTable, type Width } from './fit.js';
import { colourStatus, countsLine, indented, short } from './text.js';
import { visibleLine } from './visible.js';

/** One entry's change, short commits: `a → b`, `a → b (rolled back to a)`, `at b`. */
function historyChange(e: HistoryEntry): string {
  if (e.restart) {
    const at = `${short(e.target)}`;
    return e.outcome === 'success' ? `restarted at ${at}` : e.outcome === 'running' ? `restart at ${at} (in flight)` : `restart at ${at}: ${e.outcome}`;
  }
  if (e.outcome === 'skipped') return `${short(e.to)} (already at the target)`;
  const change = `${short(e.from)} → ${short(e.target)}`;
  if (e.outcome === 'rolled-back') return `${change} (rolled back to ${short(e.to)})`;
  if (e.outcome === 'failed' || e.outcome === 'fatal') return `${change} (now at: unknown)`;
  if (e.outcome === 'running') return `${change} (in flight)`;
  return change;
}

/** `history`: a table per server, oldest first, short commits. */
export function historyText(h: HistoryJson, db: string, server?: string, width: Width = null): string {
  if (h.servers.length === 0) {
    return server === undefined
      ? `no server has been worked on yet in ${db}`
      : `${server}: no update has worked on it yet (it was only ever pending, unreachable or excluded)`;
  }
  const blocks: string[] = [];
  for (const s of h.servers) {
    const rows = [['WHEN', 'UPDATE', 'COMMIT', 'OUTCOME', 'BY', 'DETAIL'].map((x) => chalk.bold(x))];
    for (const e of s.entries) {
      rows.push([
        e.at,
        e.batchOf ? `${e.update} (batch of ${e.batchOf})` : e.update,
        historyChange(e),
        colourStatus(e.outcome),
        visibleLine(e.by ?? '-'),
        e.outcome === 'success' || e.error === null ? '' : visibleLine(e.error),
      ]);
    }
    // DETAIL cut first, then BY left out; the time, update, commit and outcome whole
    const fitted = fitTable(rows, { width: indented(width), columns: [undefined, undefined, { cut: 1, min: 12 }, undefined, { drop: 0 }, { cut: 0, min: 12 }] });
    blocks.push(`${chalk.bold(s.name)} (${s.accounts.map(visibleLine).join(', ')})\n${fitted.replace(/^/gm, '  ')}`);
  }
  return blocks.join('\n\n');
}

// ---- history per update --------------------------------------------------------------------

/** An update's lineage, both ways: `retry of a; retried by a-retry`. */
function lineageWords(e: UpdateHistoryEntry): string {
  const parts: string[] = [];
  if (e.batchOf) parts.push(`batch of ${e.batchOf}`);
  if (e.retryOf) parts.push(`retry of ${e.retryOf}`);
  if (e.undoOf) parts.push(`undo of ${e.undoOf}`);
  if (e.batches.length) parts.push(`split into ${[e.name, ...e.batches].join(', ')}`);
  if (e.retries.length) parts.push(`retried by ${e.retries.join(', ')}`);
  if (e.undos.length) parts.push(`undone by ${e.undos.join(', ')}`);
  return parts.join('; ');
}

/** Who planned and who ran it: `alice@laptop (ran: bob@ci)`. */
function byWords(e: UpdateHistoryEntry): string {
  const ran = e.ranBy.filter((a) => a !== e.createdBy);
  return visibleLine([e.createdBy ?? '-', ...(ran.length ? [`(ran: ${ran.join(', ')})`] : [])].join(' '));
}

/**
 * `history --updates`, `history -c FILE`: a table per repo, its updates in the order they were
 * planned (their commit, status, servers, who, lineage), its freezes and their lifting as rows
 * where they happened.
 */
export function updatesHistoryText(h: UpdatesHistoryJson, db: string, repo?: string, width: Width = null): string {
  if (h.repos.every((r) => r.updates.length === 0 && r.freezes.length === 0)) {
    return repo === undefined ? `no updates yet in ${db}` : `no update of ${visibleLine(repo)} in ${db} yet, and it was never frozen`;
  }
  const blocks: string[] = [];
  for (const r of h.repos) {
    const rows: Array<{ at: string; order: number; cells: string[] }> = [];
    for (const e of r.updates) {
      const note = [lineageWords(e), e.reason && e.status !== 'success' ? visibleLine(e.reason) : ''].filter(Boolean).join('; ');
      rows.push({
        at: e.createdAt,
        order: 0,
        cells: [e.createdAt, e.name, `${short(e.commit)} (${visibleLine(e.branch)})`, colourStatus(e.status), countsLine(e.counts), byWords(e), note],
      });
    }
    for (const f of r.freezes) {
      rows.push({ at: f.frozenAt, order: 1, cells: [f.frozenAt, chalk.bold('(freeze)'), '', chalk.yellow(f.unfrozenAt ? 'frozen' : 'FROZEN'), '', visibleLine(f.frozenBy), visibleLine(f.reason)] });
      if (f.unfrozenAt) rows.push({ at: f.unfrozenAt, order: 2, cells: [f.unfrozenAt, chalk.bold('(unfreeze)'), '', 'unfrozen', '', visibleLine(f.unfrozenBy ?? '-'), ''] });
    }
    rows.sort((a, b) => a.at.localeCompare(b.at) || a.order - b.order);
    const head = ['WHEN', 'UPDATE', 'COMMIT', 'STATUS', 'SERVERS', 'BY', 'NOTE'].map((x) => chalk.bold(x));
    const title = r.repo === r.repoKey ? visibleLine(r.repo) : `${visibleLine(r.repo)} (${visibleLine(r.repoKey)})`;
    // NOTE cut first, then SERVERS and COMMIT (its branch); BY, then SERVERS left out; the time, update and status whole
    const fitted = fitTable([head, ...rows.map((x) => x.cells)], { width: indented(width), columns: [undefined, undefined, { cut: 2, min: 12 }, undefined, { cut: 1, min: 14, drop: 1 }, { drop: 0 }, { cut: 0, min: 12 }] });
    blocks.push(`${chalk.bold(title)}\n${fitted.replace(/^/gm, '  ')}`);
  }
  return blocks.join('\n\n');
}

/** `history NAME`: what the update is and where it came from, then every event recorded for it. */
export function updateTimelineText(t: UpdateTimelineJson, width: Width = null): string {
  const e = t.update;
  const lines = [
    `${chalk.bold(e.name)}: ${colourStatus(e.status)}, ${countsLine(e.counts)}`,
    `  target ${short(e.commit)} of ${visibleLine(e.branch)} in ${visibleLine(e.repo)}${e.configFile ? ` (config ${visibleLine(e.configFile)})` : ''}`,
    `  planned ${e.createdAt}${e.createdBy ? ` by ${visibleLine(e.createdBy)}` : ''}` +
      `${e.startedAt ? `; started ${e.startedAt}` : ''}${e.endedAt ? `; ended ${e.endedAt}` : ''}${e.ranBy.length ? `; run by ${visibleLine(e.ranBy.join(', '))}` : ''}`,
  ];
  const lineage = lineageWords(e);
  if (lineage) lines.push(`  ${lineage}`);
  if (e.reason) lines.push(`  ${e.status === 'paused' ? 'paused' : 'why'}: ${visibleLine(e.reason)}`);
  for (const f of t.freezes) {
    lines.push(`  ${chalk.yellow('frozen')} ${visibleLine(`by ${f.frozenBy} at ${f.frozenAt}: ${f.reason}`)}${f.unfrozenAt ? ` (lifted by ${visibleLine(f.unfrozenBy ?? '-')} at ${f.unfrozenAt})` : chalk.yellow(' (in force)')}`);
  }
  const rows = [['WHEN', 'SERVER', 'EVENT', 'BY', 'DETAIL'].map((x) => chalk.bold(x))];
  for (const ev of t.events) rows.push([ev.at, ev.server ?? '', ev.kind, visibleLine(ev.actor ?? ''), visibleLine(ev.message)]);
  const fitted = fitTable(rows, { width: indented(width), columns: [undefined, undefined, undefined, { drop: 0 }, { cut: 0, min: 12 }] });
  return `${lines.join('\n')}\n\n${fitted.replace(/^/gm, '  ')}`;
}
