/** Batches as text: `rgrid status batch_…` and `rgrid list --batches`. */
import type { BatchSnapshot } from '../../shared/api/batches.js';
import { formatDuration, out } from '../ui.js';
import { doneCount, formatProgress } from './progress.js';
import { failureLines, summaryLine } from './summary.js';

const { bold, dim, green, red, yellow } = out;

/** Failed inputs shown by `status` before "… and N more" (all are in --json). */
const SHOWN_FAILURES = 20;

export function colorBatchStatus(s: BatchSnapshot): string {
  if (s.status === 'finished') return s.counts.failed || s.counts.canceled ? (s.counts.succeeded ? yellow('finished') : red('finished')) : green('finished');
  if (s.status === 'canceled') return yellow('canceled');
  return s.status;
}

export function formatBatchStatus(s: BatchSnapshot, now = Date.now()): string {
  const rows: [string, string][] = [];
  rows.push(['status', `${colorBatchStatus(s)}${s.finishedAt ? ` (${summaryLine(s)})` : ''}`]);
  if (s.name) rows.push(['name', s.name]);
  rows.push(['progress', formatProgress(s).replace(/^Progress: /, '')]);
  rows.push(['parallel', s.parallel ? `at most ${s.parallel} at once` : 'no cap']);
  rows.push(['fail-fast', s.failFast ? 'on' : 'off']);
  if (s.counts.reused) rows.push(['reused', `${s.counts.reused} ${s.counts.reused === 1 ? 'item' : 'items'} reused earlier results`]);
  rows.push(['created', `${s.createdAt} (${formatDuration(Math.max(0, now - Date.parse(s.createdAt)))} ago)`]);
  if (s.startedAt) rows.push(['started', s.startedAt]);
  if (s.finishedAt) rows.push(['finished', s.finishedAt + (s.startedAt ? ` (took ${formatDuration(Date.parse(s.finishedAt) - Date.parse(s.startedAt))})` : '')]);
  const meta = Object.entries(s.metadata);
  if (meta.length) rows.push(['metadata', meta.map(([k, v]) => `${k}=${v}`).join(' ')]);
  const width = Math.max(...rows.map(([k]) => k.length));
  const lines = [bold(s.id), ...rows.map(([k, v]) => `  ${dim(k.padEnd(width))}  ${v}`)];
  if (s.failures.length) {
    lines.push('', `Did not succeed (${s.counts.failed + s.counts.canceled}):`);
    lines.push(...failureLines(s.failures.slice(0, SHOWN_FAILURES)));
    const more = s.counts.failed + s.counts.canceled - Math.min(SHOWN_FAILURES, s.failures.length);
    if (more > 0) lines.push(dim(`  … and ${more} more (rgrid status ${s.id} --json lists ${s.failures.length > SHOWN_FAILURES ? 'them' : 'what the control plane keeps'})`));
  }
  lines.push('');
  if (!s.finishedAt) lines.push(dim(`Still running. Cancel: rgrid cancel ${s.id}`));
  else {
    const hints = [`Outputs: rgrid download ${s.id}`];
    if (s.failures.length) hints.push(`Retry failures: rgrid retry --batch ${s.id}`);
    lines.push(dim(hints.join('    ')));
  }
  return lines.join('\n');
}

export function formatBatchTable(batches: BatchSnapshot[]): string {
  const rows = batches.map((b) => [
    b.id,
    b.status,
    `${doneCount(b.counts)}/${b.counts.total}`,
    String(b.counts.succeeded),
    String(b.counts.failed + b.counts.canceled),
    b.createdAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z'),
    b.name ?? '',
  ]);
  const header = ['ID', 'STATUS', 'DONE', 'SUCCEEDED', 'FAILED', 'CREATED', 'NAME'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  // Padding is computed on the plain text; only the status cell is colored.
  const line = (cells: string[], render: (c: string, i: number) => string) => cells.map((c, i) => render(c, i) + ' '.repeat(widths[i]! - c.length)).join('  ').trimEnd();
  return [line(header, (c) => dim(c)), ...rows.map((r, n) => line(r, (c, i) => (i === 1 ? colorBatchStatus(batches[n]!) : c)))].join('\n');
}
