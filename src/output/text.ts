import chalk from 'chalk';
import type { EventRecord, ServerRecord, StepRecord, UpdateRecord } from '../store/store.js';
import { budgetJson, countsOf } from './status-json.js';
import { holderIsDead } from '../rollout/lease.js';
import { plural } from '../util/plural.js';
import { suggest } from '../util/suggest.js';
import { visibleLine, visibleText } from './visible.js';

const STATUS_COLOUR: Record<string, (s: string) => string> = {
  success: chalk.green,
  skipped: chalk.dim,
  pending: (s) => s,
  running: chalk.cyan,
  paused: chalk.yellow,
  'rolled-back': chalk.yellow,
  'partial-success': chalk.yellow,
  unreachable: chalk.magenta,
  failed: chalk.red,
  failure: chalk.red,
  fatal: chalk.bgRed.white,
  cancelled: chalk.dim,
  planning: chalk.cyan,
};

export function colourStatus(status: string): string {
  return (STATUS_COLOUR[status] ?? ((s: string) => s))(status);
}

export function short(commit: string | null): string {
  return commit ? commit.slice(0, 12) : '-';
}

/** Left-aligned columns; widths from the visible text (colour codes stripped). */
export function table(rows: string[][]): string {
  // eslint-disable-next-line no-control-regex
  const visible = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '').length;
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, visible(cell))));
  return rows
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell + ' '.repeat((widths[i] ?? 0) - visible(cell))))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export function countsLine(servers: readonly ServerRecord[]): string {
  const { total, ...rest } = countsOf(servers);
  return `${plural(total ?? 0, 'server')}: ` + Object.entries(rest).map(([k, v]) => `${v} ${colourStatus(k)}`).join(', ');
}

export function updateText(u: UpdateRecord, servers: readonly ServerRecord[], budget?: { used: number; total: number; updates: string[] }): string {
  const lines = [
    `${chalk.bold(u.name)}  ${colourStatus(u.status)}${u.pauseRequestedAt && u.status === 'running' ? chalk.yellow(' (pause requested)') : ''}`,
    `  target   ${u.commit} (${visibleLine(u.branch)} of ${visibleLine(u.repo)})`,
  ];
  if (u.batchOf) lines.push(`  batch of ${u.batchOf}`);
  lines.push(`  created  ${u.createdAt}${u.startedAt ? `   started ${u.startedAt}` : ''}${u.endedAt ? `   ended ${u.endedAt}` : ''}`);
  if (u.lease) {
    const dead = holderIsDead(u.lease, new Date());
    lines.push(
      `  executor pid ${u.lease.pid} on ${u.lease.host} since ${u.lease.since}` +
        (dead ? chalk.red(` (gone: \`${suggest(`start ${u.name}`)}\` takes over)`) : ''),
    );
  }
  if (u.reason) lines.push(`  reason   ${visibleLine(u.reason)}`);
  const b = budgetJson(u, budget);
  if (b) {
    const shared = b.updates.length > 1 ? `, shared by ${b.updates.join(', ')}` : '';
    const line = `  budget   ${b.used} of ${b.allowed} failures allowed (execution.max_failures ${b.maxFailures} of ${plural(b.total, 'server')}${shared})`;
    lines.push(b.exceeded ? chalk.red(`${line}: spent`) : line);
  }
  lines.push(`  ${countsLine(servers)}`, '');
  const rows = [['SERVER', 'HOST', 'TYPE', 'STATUS', 'FROM', 'TO', 'DETAIL'].map((h) => chalk.bold(h))];
  for (const s of servers) {
    rows.push([
      s.name,
      s.port === 22 ? s.host : `${s.host}:${s.port}`,
      s.types.join(','),
      colourStatus(s.status) + (s.step ? ` (${s.step})` : ''),
      short(s.fromCommit),
      short(s.toCommit),
      visibleLine(s.error ?? ''),
    ]);
  }
  lines.push(table(rows));
  return lines.join('\n');
}

export function updatesListText(updates: ReadonlyArray<{ u: UpdateRecord; servers: ServerRecord[] }>): string {
  if (updates.length === 0) return 'no updates yet: create one with `agent-update plan -c FILE`';
  const rows = [['NAME', 'STATUS', 'TARGET', 'BATCH OF', 'CREATED', 'SERVERS'].map((h) => chalk.bold(h))];
  for (const { u, servers } of updates) {
    rows.push([u.name, colourStatus(u.status), short(u.commit), u.batchOf ?? '', u.createdAt, countsLine(servers)]);
  }
  return table(rows);
}

/**
 * Every step of each server with its output. What the servers printed is shown with its
 * terminal controls made visible (see visible.ts), unless `raw` (`logs --raw`): then as stored.
 */
export function logsText(
  servers: readonly ServerRecord[],
  steps: readonly StepRecord[],
  events: readonly EventRecord[],
  opts: { raw?: boolean } = {},
): string {
  const line = opts.raw ? (t: string) => t : visibleLine;
  const text = opts.raw ? (t: string) => t : visibleText;
  const out: string[] = [];
  for (const s of servers) {
    out.push(chalk.bold(`== ${s.name} (${s.user}@${s.host}:${s.port}) ${s.status}${s.error ? `: ${line(s.error)}` : ''}`));
    for (const e of events.filter((e) => e.serverName === s.name)) out.push(chalk.dim(`   ${e.at}  ${line(e.message)}`));
    for (const st of steps.filter((x) => x.serverId === s.id)) {
      const result = st.endedAt === null ? chalk.yellow('(no result recorded: interrupted)') : st.exitCode !== null ? `exit ${st.exitCode}` : chalk.red(line(st.error ?? 'no exit status'));
      out.push(`-- ${st.startedAt} [${st.phase}] $ ${text(st.command)}`);
      out.push(`   ${result}${st.endedAt ? `  (${elapsed(st.startedAt, st.endedAt)})` : ''}`);
      for (const [label, output] of [['stdout', st.stdout], ['stderr', st.stderr]] as const) {
        if (output && output.trim()) out.push(...output.trimEnd().split('\n').map((l) => `   ${chalk.dim(label === 'stderr' ? '!' : '|')} ${text(l)}`));
      }
    }
    out.push('');
  }
  return out.join('\n');
}

function elapsed(a: string, b: string): string {
  const ms = Date.parse(b) - Date.parse(a);
  return ms < 1000 ? `${ms}ms` : `${(ms / 1000).toFixed(1)}s`;
}
