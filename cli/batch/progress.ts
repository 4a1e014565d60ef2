/**
 * The progress of a batch as one line:
 *
 *   Progress: 47/100 (47%) | ✓ 45 ✗ 2 ▶ 4 ⏳ 49 | ETA 3m 20s
 *
 * done/total, succeeded (`(n reused)` when --reuse-results reused earlier results for some),
 * failed, running, waiting (created or queued), `⊘ n` when some were canceled, and the control plane's ETA (from observed throughput). `formatProgress` is pure;
 * `ProgressReporter` redraws it in place on a terminal and prints plain lines every few seconds
 * otherwise (CI logs, pipes, NO_COLOR), so a log never fills with carriage returns.
 */
import type { BatchSnapshot } from '../../shared/api/batches.js';
import { formatDuration } from '../ui.js';

export type ProgressView = Pick<BatchSnapshot, 'counts' | 'etaSeconds' | 'status' | 'startedAt' | 'finishedAt' | 'createdAt'>;

export function doneCount(c: BatchSnapshot['counts']): number {
  return c.succeeded + c.failed + c.canceled;
}

/** Whole seconds, compact: 45s, 3m 20s, 2h 5m. */
export function formatEta(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  return s < 60 ? `${s}s` : formatDuration(s * 1000);
}

export function formatProgress(s: ProgressView): string {
  const c = s.counts;
  const done = doneCount(c);
  // Floor, so 100% means every item is final (999/1000 is 99%, not a rounded 100%).
  const pct = c.total > 0 ? Math.floor((done * 100) / c.total) : 0;
  const waiting = c.created + c.queued;
  const reused = c.reused ? ` (${c.reused} reused)` : '';
  const counts = `✓ ${c.succeeded}${reused} ✗ ${c.failed} ▶ ${c.running} ⏳ ${waiting}${c.canceled ? ` ⊘ ${c.canceled}` : ''}`;
  let tail: string;
  if (s.finishedAt) {
    const from = s.startedAt ?? s.createdAt;
    const took = Math.max(0, Date.parse(s.finishedAt) - Date.parse(from));
    tail = `${s.status === 'canceled' ? 'canceled after' : 'finished in'} ${formatEta(took / 1000)}`;
  } else if (s.etaSeconds !== null) tail = `ETA ${formatEta(s.etaSeconds)}`;
  else tail = c.running > 0 || done > 0 ? 'ETA estimating…' : 'ETA waiting for a runner';
  return `Progress: ${done}/${c.total} (${pct}%) | ${counts} | ${tail}`;
}

export interface ReporterOptions {
  /** Redraw one line in place (a terminal without NO_COLOR); otherwise print lines. */
  inPlace: boolean;
  /** Plain mode: at most one line per interval while the counts change. */
  intervalMs?: number;
  write?: (s: string) => void;
  now?: () => number;
}

export class ProgressReporter {
  private last: ProgressView | undefined;
  private lastLine = '';
  private printedLine = '';
  private lastPrint = -Infinity;
  private drawn = false;
  private lastDraw = -Infinity;
  private timer: NodeJS.Timeout | undefined;
  private readonly write: (s: string) => void;
  private readonly now: () => number;
  private readonly intervalMs: number;

  constructor(private readonly opts: ReporterOptions) {
    this.write = opts.write ?? ((s) => void process.stderr.write(s));
    this.now = opts.now ?? Date.now;
    this.intervalMs = opts.intervalMs ?? 5000;
  }

  update(s: ProgressView): void {
    this.last = s;
    this.lastLine = formatProgress(s);
    if (this.opts.inPlace) {
      // At most ten redraws a second; a pending one draws the latest state.
      const wait = this.lastDraw + 100 - this.now();
      if (wait <= 0) this.draw();
      else this.timer ??= setTimeout(() => this.draw(), wait).unref();
      return;
    }
    // Plain lines: the first at once, then at most one per interval, and only when it changed.
    if (this.lastLine === this.printedLine || this.now() - this.lastPrint < this.intervalMs) return;
    this.print();
  }

  private draw(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.lastDraw = this.now();
    this.write(`\r\u001b[2K${this.lastLine}`);
    this.drawn = true;
  }

  private print(): void {
    this.write(this.lastLine + '\n');
    this.printedLine = this.lastLine;
    this.lastPrint = this.now();
  }

  /** Prints a message above the progress line (which is redrawn below it). */
  log(text: string): void {
    if (this.drawn) this.write('\r\u001b[2K');
    this.write(text.endsWith('\n') ? text : text + '\n');
    if (this.drawn) this.write(this.lastLine);
  }

  /** Leaves the last state on its own line (the final one, in plain mode too). */
  finish(): void {
    if (this.opts.inPlace) {
      if (this.last) this.draw();
      if (this.drawn) this.write('\n');
      this.drawn = false;
      return;
    }
    if (this.last && this.lastLine !== this.printedLine) this.print();
  }

  /** Removes the in-place line (Ctrl+C, errors). */
  clear(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.drawn) this.write('\r\u001b[2K');
    this.drawn = false;
  }
}
