import chalk from 'chalk';
import type { EventRecord, ServerRecord, JournalEntry, UpdateRecord } from '../model/records.js';
import { budgetJson, countsOf, stepsJson, versionsJson, type SplitPart, type StepJson } from './status-json.js';
import { holderIsDead, quietFor } from '../rollout/lease.js';
import { systemLiveness } from '../liveness.js';
import { finalTarget, hopOf } from '../model/hops.js';
import { plural } from '../util/plural.js';
import { suggest } from '../util/suggest.js';
import { visibleLine, visibleText } from './visible.js';
import { fitTable, oneLine, type ColumnFit, type Width } from './fit.js';
import type { PlanChanges, RunningCommit } from '../plan/changes.js';
import { COMMIT_MARK, PREVIOUS_MARK, type CommandGroup, type HealthRecheck, type ShownCommand, type ShownCommands, type ShownGuard, type ShownHook, type ShownSteps } from '../plan/commands.js';
import { formatDuration } from '../util/duration.js';
import { describeOpening, describeWindow, windowState } from '../config/window.js';
import { ACTIVE_UPDATE } from '../model/lifecycle.js';
import type { GuardConfig } from '../config/types.js';
import { formatElapsed, formatEta } from './live.js';

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
  excluded: chalk.blue,
  required: chalk.red,
  recommended: chalk.yellow,
  current: chalk.green,
};

export function colourStatus(status: string): string {
  return (STATUS_COLOUR[status] ?? ((s: string) => s))(status);
}

export function short(commit: string | null): string {
  return commit ? commit.slice(0, 12) : '-';
}

/** The width left for a table drawn two spaces in. */
export function indented(width: Width): Width {
  return width === null ? null : width - 2;
}

/** Left-aligned columns, whole; widths from what shows (output/fit.ts fitTable). */
export function table(rows: string[][]): string {
  return fitTable(rows);
}

/**
 * A cell of free text from a server or the engine (an error, a reason): whole, with each control
 * shown as an escape (\n included); fitted to a terminal, its lines joined into one first.
 */
function detailCell(text: string, width: Width): string {
  return visibleLine(width === null ? text : oneLine(text));
}

/** How far a DETAIL column is cut before other columns are left out: 30 columns, less on a narrow terminal. */
function detailFit(width: Width): ColumnFit {
  return { cut: 0, min: width === null ? 0 : Math.min(30, Math.floor(width / 3)) };
}

export function countsLine(servers: readonly ServerRecord[] | Record<string, number>): string {
  const { total, ...rest } = Array.isArray(servers) ? countsOf(servers as readonly ServerRecord[]) : (servers as Record<string, number>);
  return `${plural(total ?? 0, 'server')}: ` + Object.entries(rest).map(([k, v]) => `${v} ${colourStatus(k)}`).join(', ');
}

/**
 * The `versions` lines of an update planned with source.version: the bounds, the count of each
 * class, and the servers `plan --only` left out. None without it.
 */
export function versionLines(u: UpdateRecord, servers: readonly ServerRecord[]): string[] {
  const v = versionsJson(u, servers);
  if (!v) return [];
  const bounds = [`target ${v.target}`];
  if (v.minCompatible) bounds.push(`min_compatible ${v.minCompatible}`);
  if (v.maxCompatible) bounds.push(`max_compatible ${v.maxCompatible}`);
  if (v.minVersion) bounds.push(`min_version ${v.minVersion}${v.steppingStones.length ? ` (stepping stones ${v.steppingStones.map((st) => st.version).join(', ')})` : ''}`);
  const classes = v.classes ? Object.entries(v.classes).map(([k, n]) => `${n} ${colourStatus(k)}`).join(', ') : '';
  const lines = [`  versions ${bounds.join(', ')}${classes ? `: ${classes}` : ''}${v.only ? ` (planned: --only ${v.only})` : ''}`];
  const walking = servers.filter((x) => (x.path?.length ?? 0) > 1 && (x.status === 'pending' || x.status === 'running' || x.hop != null));
  if (walking.length > 0) lines.push(`  paths    ${plural(walking.length, 'server')} through stepping stones: ${someNames(walking.map((x) => x.name))}`);
  if (v.leftOut.length > 0) lines.push(`  left out ${plural(v.leftOut.length, 'server')} not ${v.only ?? 'of the class'} (plan --only ${v.only ?? '?'}): ${someNames(v.leftOut)}`);
  return lines;
}

/** `1.0.0 → 1.1.0 → 1.3.0` for a server walking stepping stones (the hop it is on or ended on in brackets); '' otherwise. */
function pathCell(s: ServerRecord): string {
  if (!s.path || s.path.length <= 1) return '';
  const at = s.hop ?? -1;
  const names = s.path.map((h, i) => {
    const n = h.version ?? short(h.commit);
    return i === at && s.status !== 'success' ? `[${n}]` : n;
  });
  return [s.agentVersion ?? '?', ...names].join(' → ');
}

/** The VERSION column (version and class) when any server's version was read; else nothing. */
function versionCell(servers: readonly ServerRecord[]): ((s: ServerRecord) => string) | null {
  if (!servers.some((s) => s.agentVersion != null)) return null;
  return (s) => (s.agentVersion == null ? '-' : `${s.agentVersion}${s.versionClass != null ? ` ${colourStatus(s.versionClass)}` : ''}`);
}

/**
 * `  window   mon-fri 09:00-17:00 Europe/Berlin (closed now; opens Mon 2025-01-13 09:00 …)`: the
 * update's execution.window, and, while the update is not finished, whether it is open now.
 */
export function windowLines(u: UpdateRecord, now: Date = new Date()): string[] {
  const w = u.settings.execution?.window;
  if (!w) return [];
  const line = `  window   ${describeWindow(w)}`;
  if (!ACTIVE_UPDATE.has(u.status)) return [line];
  const s = windowState(now, w);
  if (!s.open) return [`${line} ${chalk.yellow(`(closed now; opens ${describeOpening(s.opensAt, w)})`)}`];
  return [`${line} (open now${s.closesAt ? `, until ${describeOpening(s.closesAt, w)}` : ''})`];
}

/** A column of lines under a label (`  steps    `). */
const LABEL_PAD = '           ';

/**
 * The progressive-delivery lines of `status` (issue 24), for an update with execution.steps or
 * a guard: the step it is in (`step 2 of 4 (up to 3 of 12 servers)`) and where the steps end, its
 * bake (`baking step 2: 4m12s left`, at the last re-check; paused with the time kept; waiting for
 * `resume` after pause_after_step), and the guard's last round.
 */
export function deliveryLines(u: UpdateRecord, servers: readonly ServerRecord[], now: Date = new Date()): string[] {
  const lines: string[] = [];
  const active = u.status === 'running' || u.status === 'paused';
  const steps = stepsJson(u, servers);
  if (steps) {
    lines.push(
      `  steps    step ${steps.current} of ${steps.total} (up to ${steps.through} of ${plural(steps.servers, 'server')}), ${steps.done} done; ` +
        `the steps end at ${steps.plan.map((p) => p.through).join(', ')}`,
    );
  }
  const bake = active ? u.bake : null;
  if (bake) {
    const of = steps?.plan[bake.step - 1];
    const full = of && of.bakeMs > 0 ? ` (of ${formatDuration(of.bakeMs)})` : '';
    // baked, waiting for resume (pause_after_step); a run that goes on from it lets the step go at once
    if (bake.leftMs <= 0) {
      if (u.status === 'paused') lines.push(chalk.yellow(`${LABEL_PAD}step ${bake.step} ${full ? 'baked' : 'done'}: it waits for \`${suggest(`resume ${u.name}`)}\` (pause_after_step)`));
    } else if (u.status === 'paused') lines.push(chalk.yellow(`${LABEL_PAD}step ${bake.step}'s bake paused with ${formatEta(bake.leftMs)} left${full}: resume bakes the rest`));
    else lines.push(`${LABEL_PAD}baking step ${bake.step}: ${formatEta(bake.leftMs)} left${full}`);
  }
  const g = u.settings.execution?.guard ?? null;
  const config = g ? `every ${formatDuration(g.intervalMs)}, rollback ${g.rollback ? 'on' : 'off'}` : '';
  if (u.guard) {
    const at = Date.parse(u.guard.checkedAt);
    const when = active && Number.isFinite(at) ? `${u.guard.checkedAt.slice(11, 19)}Z (${formatElapsed(now.getTime() - at)} ago)` : u.guard.checkedAt;
    const summary = visibleLine(u.guard.summary);
    const line = `  guard    last round ${when}: ${/unhealthy|not reached/.test(summary) ? chalk.yellow(summary) : summary}${config ? `; ${config}` : ''}`;
    lines.push(line);
  } else if (g && active) {
    lines.push(`  guard    ${config}: no round yet`);
  }
  return lines;
}

/** What the guard does, in words (plan, plan --show-commands). */
export function guardWords(g: Pick<GuardConfig, 'intervalMs' | 'rollback' | 'afterFinishMs'>): string {
  return (
    `while the update runs, every server that passed is re-checked with the health command every ${formatDuration(g.intervalMs)}` +
    (g.afterFinishMs > 0 ? `, and for ${formatDuration(g.afterFinishMs)} after the last server (after_finish)` : '') +
    `; one found unhealthy pauses the update and ${g.rollback ? 'is rolled back and verified (guard.rollback)' : 'counts as failed, left as it is (guard.rollback is off)'}`
  );
}

/** A step's bake and pause, in words. */
function stepNote(p: Pick<StepJson, 'bakeMs' | 'pauseAfter'>, last: boolean, intervalMs: number): string {
  if (last) return 'the last: the update ends with it';
  const then: string[] = [];
  if (p.bakeMs > 0) then.push(`bakes ${formatDuration(p.bakeMs)} (its servers re-checked every ${formatDuration(intervalMs)})`);
  if (p.pauseAfter) then.push(`waits for resume (pause_after)`);
  return then.length === 0 ? 'then the next step at once' : `then ${then.join(', then ')}`;
}

/**
 * A row per step: `step 1 (up to 1 of 6)  s1  then bakes 1m …`, each line after `pad`; fitted to
 * `width`, what the step does is cut first, then its servers' names.
 */
export function stepRows(plan: readonly StepJson[], servers: number, intervalMs: number, pad: string, width: Width = null): string[] {
  const rows = plan.map((p, i) => [`step ${p.step} (up to ${p.through} of ${servers})`, someNames(p.servers), stepNote(p, i === plan.length - 1, intervalMs)]);
  return fitTable(rows, { width: width === null ? null : width - pad.length, header: false, columns: [undefined, { cut: 1, min: 12 }, { cut: 0, min: 20 }] })
    .split('\n')
    .map((l) => pad + l);
}

/**
 * The steps a new plan will take and its guard, for `plan`: which servers fall in which step (in
 * the order they will be taken), each step's bake and pause; nothing without steps or a guard.
 */
export function plannedDeliveryLines(u: UpdateRecord, servers: readonly ServerRecord[], width: Width = null): string[] {
  const lines: string[] = [];
  const steps = stepsJson(u, servers);
  if (steps) {
    lines.push(`  steps    ${plural(steps.total, 'step')} over ${plural(steps.servers, 'server')} (execution.steps), in the order they will be taken:`);
    lines.push(...stepRows(steps.plan, steps.servers, u.settings.agent.health.intervalMs, LABEL_PAD, width));
  }
  const g = u.settings.execution?.guard;
  if (g) lines.push(`  guard    ${guardWords(g)}`);
  return lines;
}

/**
 * The `target` line: the commit and the branch it was resolved from; an undo's target is no
 * branch's (it is the commit most of its servers ran before the update it undoes, each going
 * back to its own), so it names the update it undoes, not the branch that update deployed.
 */
export function targetLine(u: Pick<UpdateRecord, 'commit' | 'branch' | 'repo' | 'undoOf'> & { settings?: Pick<UpdateRecord['settings'], 'restartOnly'> }): string {
  if (u.settings?.restartOnly) return '  restart  a rolling restart, no code change: each server restarted and verified at the commit it runs (its TO)';
  if (u.undoOf) return `  target   ${u.commit} (what most of its servers ran before ${u.undoOf}, in ${visibleLine(u.repo)}; each goes back to its own: its TO)`;
  return `  target   ${u.commit} (${visibleLine(u.branch)} of ${visibleLine(u.repo)})`;
}

/** A column of a table: its header, how it gives way on a narrow terminal (fit.ts), its cell. */
interface Column<T> {
  head: string;
  fit?: ColumnFit;
  cell: (x: T) => string;
}

/** The rows of `items` under the columns' headers, fitted to `width`. */
function columnsTable<T>(columns: ReadonlyArray<Column<T> | null | false>, items: readonly T[], width: Width): string {
  const cols = columns.filter((c): c is Column<T> => Boolean(c));
  const rows = [cols.map((c) => chalk.bold(c.head)), ...items.map((x) => cols.map((c) => c.cell(x)))];
  return fitTable(rows, { width, columns: cols.map((c) => c.fit) });
}

/** What `status NAME` shows besides the update itself. */
export interface StatusView {
  /** the columns to fit the tables to (a terminal's, output/fit.ts); null or absent: every cell whole */
  width?: Width;
  /**
   * the updates of a split (this one first, then the batches split from it, theirs included),
   * each with its servers: the view is then the whole rollout's, every batch's servers and totals
   */
  batches?: readonly SplitPart[];
}

/**
 * `  split    into 3 batches, …` and a row per batch (name, status, its servers' counts), then
 * `  in all   7 servers: …`: the totals of the whole rollout.
 */
export function batchLines(name: string, batches: readonly SplitPart[], width: Width): string[] {
  const rows = batches.map(({ u, servers }) => [u.name === name ? `${u.name} (this one)` : u.name, colourStatus(u.status), countsLine(servers)]);
  const table = fitTable(rows, { width: width === null ? null : width - LABEL_PAD.length, header: false, columns: [undefined, undefined, { cut: 0, min: 12 }] });
  return [
    `  split    into ${batches.length} batches, each one server at a time:`,
    ...table.split('\n').map((l) => LABEL_PAD + l),
    `  in all   ${countsLine(batches.flatMap((b) => b.servers))}`,
  ];
}

/**
 * What `--limit`, `--branch`, `--commit`, `--version` changed of the config for this update
 * (settings.overrides): a `limit` line and an `override` line, each only when given.
 */
export function overrideLines(u: Pick<UpdateRecord, 'settings'>): string[] {
  const o = u.settings.overrides;
  const lines: string[] = [];
  if (o?.limit) {
    lines.push(`  limit    ${visibleLine(o.limit.patterns.join(','))} (--limit: of the ${plural(o.limit.selected, 'server')} the config selects)`);
  }
  if (o?.source) {
    const given = (['branch', 'commit', 'version'] as const).filter((k) => o.source![k] !== undefined).map((k) => `--${k} ${visibleLine(o.source![k]!)}`);
    lines.push(`  override ${given.join(' ')} (instead of the config's source, for this update)`);
  }
  return lines;
}

/**
 * `status NAME`: the update's lines (target, who and when, executor, reason, window, steps, budget,
 * versions), its counts and a row per server; fitted to `view.width`, and, for an update that was
 * split, the whole rollout (view.batches): each batch with its counts, the totals, and every
 * batch's servers with a BATCH column.
 */
export function updateText(u: UpdateRecord, servers: readonly ServerRecord[], budget?: { used: number; total: number; updates: string[] }, view: StatusView = {}): string {
  const width = view.width ?? null;
  const split = view.batches && view.batches.length > 1 ? view.batches : null;
  const lines = [
    `${chalk.bold(u.name)}  ${colourStatus(u.status)}${u.pauseRequestedAt && u.status === 'running' ? chalk.yellow(` (pause requested${u.pauseRequestedBy ? ` by ${visibleLine(u.pauseRequestedBy)}` : ''})`) : ''}`,
    targetLine(u),
    ...overrideLines(u),
  ];
  if (u.batchOf) lines.push(`  batch of ${u.batchOf}`);
  if (u.retryOf) lines.push(`  retry of ${u.retryOf} (its servers that did not make it)`);
  if (u.undoOf) lines.push(`  undo of  ${u.undoOf}: each server back to the commit it had before it (its TO)`);
  lines.push(
    `  created  ${u.createdAt}${u.createdBy ? ` by ${visibleLine(u.createdBy)}` : ''}${u.startedAt ? `   started ${u.startedAt}` : ''}${u.endedAt ? `   ended ${u.endedAt}` : ''}`,
  );
  if (u.lease) {
    const now = new Date();
    const dead = holderIsDead(u.lease, now, systemLiveness);
    const quiet = quietFor(u.lease, now);
    lines.push(
      `  executor pid ${u.lease.pid} on ${u.lease.host} since ${u.lease.since}` +
        (dead
          ? chalk.red(` (gone: \`${suggest(`start ${u.name}`)}\` takes over)`)
          : quiet !== null
            ? chalk.yellow(` (alive, but no heartbeat for ${quiet}s: stopped? \`kill -CONT ${u.lease.pid}\` on ${u.lease.host})`)
            : ''),
    );
  }
  if (u.reason) lines.push(`  reason   ${visibleLine(u.reason)}`);
  lines.push(...windowLines(u));
  lines.push(...deliveryLines(u, servers));
  const b = budgetJson(u, budget);
  if (b) {
    const shared = b.updates.length > 1 ? `, shared by ${b.updates.join(', ')}` : '';
    const line = `  budget   ${b.used} of ${b.allowed} failures allowed (execution.max_failures ${b.maxFailures} of ${plural(b.total, 'server')}${shared})`;
    lines.push(b.exceeded ? chalk.red(`${line}: spent`) : line);
  }
  lines.push(...versionLines(u, servers));
  if (split) lines.push(...batchLines(u.name, split, width), '');
  else lines.push(`  ${countsLine(servers)}`, '');
  const all = split ? split.flatMap((b) => b.servers.map((s) => ({ s, u: b.u }))) : servers.map((s) => ({ s, u }));
  const every = all.map((x) => x.s);
  const version = versionCell(every);
  const paths = every.some((s) => (s.path?.length ?? 0) > 1);
  type Row = { s: ServerRecord; u: UpdateRecord };
  const columns: Array<Column<Row> | null> = [
    { head: 'SERVER', cell: ({ s }) => s.name },
    split ? { head: 'BATCH', fit: { drop: 6 }, cell: ({ u: b }) => b.name } : null,
    { head: 'HOST', fit: { cut: 2, min: 12, drop: 1 }, cell: ({ s }) => (s.port === 22 ? s.host : `${s.host}:${s.port}`) },
    { head: 'TYPE', fit: { drop: 0 }, cell: ({ s }) => s.types.join(',') },
    version ? { head: 'VERSION', fit: { drop: 2 }, cell: ({ s }) => version(s) } : null,
    {
      head: 'STATUS',
      cell: ({ s, u: b }) => {
        const hop = (s.path?.length ?? 0) > 1 && s.hop != null ? hopOf(s, b.commit) : null;
        const onHop = hop && s.status === 'running' ? `, hop ${hop.index + 1}/${hop.count} → ${hop.toVersion ?? short(hop.to)}` : '';
        return colourStatus(s.status) + (s.step ? ` (${s.step}${onHop})` : '');
      },
    },
    { head: 'FROM', fit: { cut: 3, min: 8, drop: 4 }, cell: ({ s }) => short(s.fromCommit) },
    // a pending server with its own target (stepping stones, undo) shows it before it is claimed
    { head: 'TO', fit: { cut: 4, min: 8, drop: 5 }, cell: ({ s }) => short(s.toCommit ?? (s.status === 'pending' ? (s.path?.at(-1)?.commit ?? null) : null)) },
    paths ? { head: 'PATH', fit: { cut: 1, min: 12, drop: 3 }, cell: ({ s }) => pathCell(s) } : null,
    { head: 'DETAIL', fit: detailFit(width), cell: ({ s }) => detailCell(s.error ?? '', width) },
  ];
  lines.push(columnsTable(columns, all, width));
  return lines.join('\n');
}

/** `counts`: as countsOf makes them (Store.countsByUpdate), or the servers to count. */
export function updatesListText(updates: ReadonlyArray<{ u: UpdateRecord; servers?: ServerRecord[]; counts?: Record<string, number> }>, width: Width = null): string {
  if (updates.length === 0) return 'no updates yet: create one with `agent-update plan -c FILE`';
  type Row = (typeof updates)[number];
  return columnsTable<Row>(
    [
      { head: 'NAME', cell: ({ u }) => u.name },
      { head: 'STATUS', cell: ({ u }) => colourStatus(u.status) },
      { head: 'TARGET', fit: { drop: 1 }, cell: ({ u }) => (u.settings.restartOnly ? 'restart' : short(u.commit)) },
      { head: 'BATCH OF', fit: { drop: 2 }, cell: ({ u }) => u.batchOf ?? '' },
      { head: 'CREATED', fit: { cut: 1, min: 10, drop: 0 }, cell: ({ u }) => u.createdAt },
      { head: 'SERVERS', fit: { cut: 0, min: 20 }, cell: ({ servers, counts }) => countsLine(counts ?? servers ?? { total: 0 }) },
    ],
    updates,
    width,
  );
}

/**
 * Every step of each server with its output. What the servers printed is shown with its
 * terminal controls made visible (see visible.ts), unless `raw` (`logs --raw`): then as stored.
 */
export function logsText(
  servers: readonly ServerRecord[],
  steps: readonly JournalEntry[],
  events: readonly EventRecord[],
  opts: { raw?: boolean } = {},
): string {
  return [...logsBlocks(servers, steps, events, opts)].join('\n');
}

/** Each `x` of `list` under its key, in the list's order: one pass, not one filter per server. */
export function groupBy<T, K>(list: readonly T[], key: (x: T) => K): Map<K, T[]> {
  const out = new Map<K, T[]>();
  for (const x of list) {
    const k = key(x);
    const found = out.get(k);
    if (found) found.push(x);
    else out.set(k, [x]);
  }
  return out;
}

/**
 * logsText one server at a time (joined with '\n' they are logsText): `logs` writes each as it
 * is made, so a long rollout's log is never one string in memory.
 */
export function* logsBlocks(
  servers: readonly ServerRecord[],
  steps: readonly JournalEntry[],
  events: readonly EventRecord[],
  opts: { raw?: boolean } = {},
): Generator<string> {
  const line = opts.raw ? (t: string) => t : visibleLine;
  const text = opts.raw ? (t: string) => t : visibleText;
  const eventsOf = groupBy(events, (e) => e.serverName);
  const stepsOf = groupBy(steps, (x) => x.serverId);
  for (const s of servers) {
    const out: string[] = [];
    out.push(chalk.bold(`== ${s.name} (${s.user}@${s.host}:${s.port}) ${s.status}${s.error ? `: ${line(s.error)}` : ''}`));
    for (const e of eventsOf.get(s.name) ?? []) out.push(chalk.dim(`   ${e.at}  ${line(e.message)}`));
    for (const st of stepsOf.get(s.id) ?? []) {
      const result = st.endedAt === null ? chalk.yellow('(no result recorded: interrupted)') : st.exitCode !== null ? `exit ${st.exitCode}` : chalk.red(line(st.error ?? 'no exit status'));
      out.push(`-- ${st.startedAt} [${st.phase}] $ ${text(st.command)}`);
      out.push(`   ${result}${st.endedAt ? `  (${elapsed(st.startedAt, st.endedAt)})` : ''}`);
      for (const [label, output] of [['stdout', st.stdout], ['stderr', st.stderr]] as const) {
        if (output && output.trim()) out.push(...output.trimEnd().split('\n').map((l) => `   ${chalk.dim(label === 'stderr' ? '!' : '|')} ${text(l)}`));
      }
    }
    out.push('');
    yield out.join('\n');
  }
}

function elapsed(a: string, b: string): string {
  const ms = Date.parse(b) - Date.parse(a);
  return ms < 1000 ? `${ms}ms` : `${(ms / 1000).toFixed(1)}s`;
}

// ---- plan ----------------------------------------------------------------------------------


/** Server names for one line: the first five, then how many in all. */
export function someNames(names: readonly string[]): string {
  return names.length <= 5 ? names.join(', ') : `${names.slice(0, 5).join(', ')}, … (${names.length} servers)`;
}

/** What one running commit is to the target, in a few words (a plan row's DETAIL). */
function relationWords(r: RunningCommit): string {
  switch (r.relation) {
    case 'behind':
      return plural(r.behind!, 'commit');
    case 'ahead':
      return chalk.yellow(`downgrade: drops ${plural(r.ahead!, 'commit')}`);
    case 'diverged':
      return chalk.yellow('not an ancestor of the target');
    case 'unknown':
      return chalk.yellow('commit unknown to the source repo');
    default:
      return '';
  }
}

/** The "changes" lines of a plan: the commit count and log from the oldest running commit, then the other commits. */
export function changesLines(c: PlanChanges, repo: string): string[] {
  const pad = '           ';
  if (c.error !== null) return [chalk.yellow(`  changes  not read from the source repo: ${visibleLine(c.error)}`)];
  if (c.running.length === 0) return ["  changes  no server's commit is known (none could be probed)"];
  const lines: string[] = [];
  const oldest = c.running.find((r) => r.commit === c.from);
  if (oldest) {
    lines.push(
      `  changes  ${plural(c.commits!, 'commit')} from ${short(c.from)} (the oldest running, on ${someNames(oldest.servers)}) to ${short(c.to)}, newest first:`,
    );
    for (const e of c.log) lines.push(`${pad}${e.short} ${visibleLine(e.subject)}`);
    if (c.more > 0) lines.push(`${pad}… and ${c.more} more`);
  }
  let first = !oldest;
  for (const r of c.running) {
    if (r === oldest) continue;
    const label = first ? '  changes  ' : pad;
    first = false;
    const at = `${short(r.commit)} (${someNames(r.servers)})`;
    switch (r.relation) {
      case 'behind':
        lines.push(`${label}also at ${at}: ${plural(r.behind!, 'commit')} behind the target`);
        break;
      case 'target':
        lines.push(`${label}already at the target: ${someNames(r.servers)}`);
        break;
      case 'ahead':
        lines.push(chalk.yellow(`${label}${at} is not an ancestor of the target: a downgrade, it has ${plural(r.ahead!, 'commit')} the target does not`));
        break;
      case 'diverged':
        lines.push(
          chalk.yellow(
            `${label}${at} is not an ancestor of the target: it has ${plural(r.ahead!, 'commit')} the target does not, and lacks ${plural(r.behind!, 'commit')} of the target`,
          ),
        );
        break;
      default:
        lines.push(chalk.yellow(`${label}${at} is not on any branch or tag of ${visibleLine(repo)}: no count`));
    }
  }
  return lines;
}

/**
 * A new plan: the update's header, what it changes (changesLines), and a row per server with
 * `FROM → TO` (its commit → the target).
 */
export function planText(u: UpdateRecord, servers: readonly ServerRecord[], changes: PlanChanges, budget?: { used: number; total: number; updates: string[] }, width: Width = null): string {
  const lines = [
    `${chalk.bold(u.name)}  ${colourStatus(u.status)}`,
    targetLine(u),
    ...overrideLines(u),
    `  created  ${u.createdAt}${u.createdBy ? ` by ${visibleLine(u.createdBy)}` : ''}`,
  ];
  lines.push(...windowLines(u));
  const b = budgetJson(u, budget);
  if (b) {
    // as updateText says it: a new plan can share its budget with the batches of a split
    const shared = b.updates.length > 1 ? `, shared by ${b.updates.join(', ')}` : '';
    const line = `  budget   ${b.used} of ${b.allowed} failures allowed (execution.max_failures ${b.maxFailures} of ${b.total} servers${shared})`;
    lines.push(b.exceeded ? chalk.red(`${line}: spent`) : line);
  }
  lines.push(...versionLines(u, servers));
  lines.push(`  ${countsLine(servers)}`, ...changesLines(changes, u.repo), ...plannedDeliveryLines(u, servers, width), '');
  const relation = new Map(changes.running.map((r) => [r.commit, r]));
  const version = versionCell(servers);
  const change = (s: ServerRecord): string => {
    const via = s.status === 'pending' && s.path && s.path.length > 1 ? ` via ${s.path.slice(0, -1).map((h) => h.version ?? short(h.commit)).join(', ')}` : '';
    if (s.status === 'skipped') return `${short(s.fromCommit)} (at the target)`;
    if (s.status === 'pending') return `${short(s.fromCommit)} → ${short(finalTarget(s, u.commit))}${via}`;
    return short(s.fromCommit);
  };
  const detail = (s: ServerRecord): string => {
    const r = s.fromCommit === null ? undefined : relation.get(s.fromCommit);
    return s.error !== null ? detailCell(s.error, width) : s.status === 'pending' && r ? relationWords(r) : '';
  };
  const columns: Array<Column<ServerRecord> | null> = [
    { head: 'SERVER', cell: (s) => s.name },
    { head: 'HOST', fit: { cut: 2, min: 12, drop: 1 }, cell: (s) => (s.port === 22 ? s.host : `${s.host}:${s.port}`) },
    { head: 'TYPE', fit: { drop: 0 }, cell: (s) => s.types.join(',') },
    version ? { head: 'VERSION', fit: { drop: 2 }, cell: (s) => version(s) } : null,
    { head: 'STATUS', cell: (s) => colourStatus(s.status) },
    { head: 'FROM → TO', fit: { cut: 1, min: 12 }, cell: change },
    { head: 'DETAIL', fit: detailFit(width), cell: detail },
  ];
  lines.push(columnsTable(columns, servers, width));
  return lines.join('\n');
}

const STEP_LABEL: Record<ShownCommand['step'], string> = {
  prepare: 'prepare',
  recheck: 're-check',
  update: 'update',
  restart: 'restart',
  verify: 'verify',
  diagnose: 'diagnose',
  rollback: 'rollback',
  'verify-rollback': 'verify-rollback',
};

/** One shown command as text lines: the step label (on its first line only), the command, what it must print. */
function commandLines(c: ShownCommand, label: string, health: ShownCommands['health'], restart = false): string[] {
  const width = 17;
  const head = `  ${label.padEnd(width)}`;
  const pad = ' '.repeat(head.length);
  if (c.command === null) return [`${head}${chalk.red(`(${visibleLine(c.error ?? 'not run')})`)}`];
  let note = '';
  if (c.kind === 'prepare') note = 'ahead of its turn, while the server before it updates (not on the first); a failure is only journalled';
  if (c.kind === 'diagnose') note = `only on a failure, before ${restart ? 'it is left failed' : 'the rollback'}; at most ${formatDuration(c.timeoutMs ?? 0)}; its output is journalled, the outcome unchanged`;
  if (c.kind === 'version') {
    note = c.expect
      ? `must print ${c.expect}${restart ? ' (the commit is unchanged)' : ''}`
      : restart
        ? 'reads the commit it runs, under the agent-update lock; recorded before the restarts'
        : 'reads the commit, under the agent-update lock; at the target already: skipped';
  }
  if (c.kind === 'health') {
    const stable = health.stableForMs > 0 ? `, then stay so for ${formatDuration(health.stableForMs)}` : '';
    note = `every ${formatDuration(health.intervalMs)} until its output contains ${JSON.stringify(c.expect)}, for up to ${formatDuration(health.timeoutMs)}${stable}`;
  }
  const text = visibleText(c.command).split('\n');
  const out = text.map((l, i) => (i === 0 ? head : pad) + l);
  if (note) out[out.length - 1] += chalk.dim(`    # ${visibleLine(note)}`);
  return out;
}

function groupText(g: CommandGroup, doc: ShownCommands, total: number): string[] {
  const who = doc.update === null ? `every server the config selects (${total}): ${someNames(g.servers)}` : `${g.servers.length === total ? (total === 1 ? 'the server' : `all ${total} servers`) : plural(g.servers.length, 'server')}: ${someNames(g.servers)}`;
  const lines = [chalk.bold(`${who}${g.fromCommit ? `, at ${short(g.fromCommit)}` : ''}`)];
  let last: string | null = null;
  let hop: number | undefined;
  for (const c of g.commands) {
    if (c.hop !== undefined && c.hop !== hop) {
      hop = c.hop;
      last = null;
      lines.push(chalk.bold(`  hop ${c.hop} of ${c.hops} → ${visibleLine(c.hopTo ?? '?')}:`));
    }
    if (c.step === 'diagnose' && last !== 'diagnose') lines.push(chalk.dim('  on a failure, first (agent.diagnose):'));
    if (c.step === 'rollback' && last !== 'rollback') {
      const back =
        c.hop !== undefined && c.hop > 1
          ? ' to the stepping stone before this hop'
          : doc.rollback.commit
            ? ` to rollback.commit ${short(doc.rollback.commit)}`
            : g.fromCommit
              ? ` to ${short(g.fromCommit)}`
              : ' to the previous commit';
      lines.push(chalk.dim(`  on a failure, rollback${back}:`));
    }
    lines.push(...commandLines(c, c.step === last ? '' : STEP_LABEL[c.step], doc.health, doc.restartOnly === true));
    last = c.step;
  }
  if (doc.restartOnly) lines.push(chalk.dim('  on a failure: nothing to roll back (a restart changes no commit), the server ends failed'));
  else if (!doc.rollback.enabled) lines.push(chalk.dim('  on a failure: no rollback (rollback.enabled: false), the server ends failed'));
  return lines;
}

/** `plan --show-commands`: per group of servers, each step's commands exactly as they will be sent. */
export function commandsText(doc: ShownCommands): string {
  const total = doc.groups.reduce((n, g) => n + g.servers.length, 0);
  const lines = doc.restartOnly
    ? [
        `${doc.update === null ? 'commands a restart of this config will send' : `commands restart ${doc.update} will send`} (nothing is run now): ` +
          'a rolling restart, each server restarted and verified at the commit it runs; nothing is fetched or checked out',
      ]
    : [
        `${doc.update === null ? 'commands this config will send' : `commands update ${doc.update} will send`} (nothing is run now); ` +
          (doc.source.undoOf !== undefined
            ? `target ${doc.source.commit} (what most of its servers ran before ${doc.source.undoOf}, in ${visibleLine(doc.source.repo)}; each goes back to its own)`
            : `target ${doc.source.commit} (${visibleLine(doc.source.branch)} of ${visibleLine(doc.source.repo)})`),
      ];
  if (doc.unknown.length > 0 && doc.restartOnly) {
    lines.push(`${COMMIT_MARK} stands for the commit each server runs when its turn comes (its re-check reads it), quoted as it will be`);
  } else if (doc.unknown.length > 0) {
    lines.push(
      `${PREVIOUS_MARK} stands for each server's commit when it is updated, quoted as it will be: after \`${suggest('plan -c FILE')}\`, ` +
        `\`${suggest('plan --show-commands NAME')}\` shows it filled in`,
    );
  }
  if (doc.groups.length === 0) lines.push(`no server of ${doc.update} is left to run: nothing will be sent`);
  for (const g of doc.groups) lines.push('', ...groupText(g, doc, total));
  if (doc.steps || doc.guard || doc.healthRechecks) lines.push('', ...deliveryText(doc.steps, doc.guard, doc.healthRechecks ?? [], doc.health, total));
  if (doc.hooks) lines.push('', ...hooksText(doc.hooks));
  return lines.join('\n');
}

/**
 * The steps, the guard and the re-check they send (plan --show-commands): which servers fall in
 * which step, each step's bake and pause, what the guard does, and the health command a server
 * that passed is re-checked with, exactly as sent.
 */
function deliveryText(steps: ShownSteps | undefined, guard: ShownGuard | undefined, rechecks: readonly HealthRecheck[], health: ShownCommands['health'], total: number): string[] {
  const lines: string[] = [];
  if (steps) {
    lines.push(chalk.bold(`steps (execution.steps): ${plural(steps.plan.length, 'step')} over ${plural(steps.servers, 'server')}, in the order they will be taken:`));
    lines.push(...stepRows(steps.plan, steps.servers, steps.intervalMs, '  '));
  }
  if (guard) lines.push(chalk.bold('guard (execution.guard):') + ` ${guardWords(guard)}; ${guard.concurrency} servers at a time, over connections of their own`);
  const who: string[] = [];
  if (guard) who.push(`the guard, every ${formatDuration(guard.intervalMs)}`);
  if (steps?.plan.some((p) => p.bakeMs > 0)) who.push(`a step's bake, every ${formatDuration(steps.intervalMs)} while it bakes`);
  for (const r of rechecks) {
    const whom = r.servers.length === total ? (total === 1 ? 'the server' : `all ${total} servers`) : plural(r.servers.length, 'server');
    lines.push(chalk.bold(`the health re-check of a server that passed (${who.join('; ')}), for ${whom}: ${someNames(r.servers)}`));
    const note = r.command === null ? '' : `its output must contain ${JSON.stringify(r.expect)}; failing twice in a row (${formatDuration(health.intervalMs)} apart) it counts as unhealthy`;
    const cmd = r.command === null ? [chalk.red(`(${visibleLine(r.error ?? 'not run')})`)] : visibleText(r.command).split('\n');
    const label = `  ${'health re-check'.padEnd(17)}`;
    const out = cmd.map((l, i) => (i === 0 ? label : ' '.repeat(label.length)) + l);
    if (note) out[out.length - 1] += chalk.dim(`    # ${visibleLine(note)}`);
    lines.push(...out);
  }
  return lines;
}

/** The hooks of `plan --show-commands`: what each runs or calls, on which events. */
function hooksText(hooks: readonly ShownHook[]): string[] {
  return [
    "hooks, run on this machine (never on the servers), each event's JSON on a command's stdin or as a webhook's body:",
    ...hooks.map(
      (h) =>
        `  hooks[${h.hook}] ${visibleLine(h.target)}` +
        chalk.dim(`  on ${h.events.join(', ')}; at most ${formatDuration(h.timeoutMs)}${h.required ? '; required: a failure pauses the update' : ''}`),
    ),
  ];
}

// ---- history -------------------------------------------------------------------------------
