/**
 * One progress line for the large files of a transfer (percent and MB/s), redrawn in place on a
 * terminal at most 10 times a second. Small files and non-terminals get no bar: a CI log must not
 * fill with carriage returns, and a 2 KB file is done before a bar could say anything.
 */
import { formatBytes, formatDuration, terminal } from '../ui.js';

/** Files above this size get a progress bar. */
export const PROGRESS_THRESHOLD_BYTES = 10 * 1024 * 1024;

export interface ProgressOptions {
  /** "Uploading" / "Downloading". */
  verb: string;
  tty?: boolean;
  threshold?: number;
  write?: (s: string) => void;
  now?: () => number;
}

export class Progress {
  private total = 0;
  private done = 0;
  private files = 0;
  private started = 0;
  private lastDraw = 0;
  private drawn = false;
  private readonly tty: boolean;
  private readonly threshold: number;
  private readonly write: (s: string) => void;
  private readonly now: () => number;

  constructor(private readonly opts: ProgressOptions) {
    this.tty = opts.tty ?? terminal.tty;
    this.threshold = opts.threshold ?? PROGRESS_THRESHOLD_BYTES;
    this.write = opts.write ?? ((s) => void process.stderr.write(s));
    this.now = opts.now ?? Date.now;
  }

  /** Registers a file; returns a byte counter, or a no-op when the file gets no bar. */
  track(size: number): (bytes: number) => void {
    if (!this.tty || size <= this.threshold) return () => {};
    if (this.files === 0) this.started = this.now();
    this.files++;
    this.total += size;
    return (bytes) => {
      this.done += bytes;
      this.draw(false);
    };
  }

  /** Bytes per second since the first large file started. */
  rate(): number {
    const secs = (this.now() - this.started) / 1000;
    return secs > 0 ? this.done / secs : 0;
  }

  line(): string {
    const pct = this.total ? Math.min(100, Math.floor((this.done / this.total) * 100)) : 100;
    const width = 24;
    const filled = Math.round((pct / 100) * width);
    const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
    const mbps = (this.rate() / (1024 * 1024)).toFixed(1);
    const what = this.files === 1 ? '1 file' : `${this.files} files`;
    return `${this.opts.verb} ${what} ${bar} ${String(pct).padStart(3)}%  ${formatBytes(this.done)}/${formatBytes(this.total)}  ${mbps} MB/s`;
  }

  private draw(force: boolean): void {
    const t = this.now();
    if (!force && t - this.lastDraw < 100) return;
    this.lastDraw = t;
    this.drawn = true;
    this.write(`\r\u001b[2K${this.line()}`);
  }

  /** Clears the bar and, if there was one, leaves a one-line summary. */
  finish(): void {
    if (!this.drawn && this.files === 0) return;
    const elapsed = this.now() - this.started;
    const mbps = (this.rate() / (1024 * 1024)).toFixed(1);
    this.write(`\r\u001b[2K${this.opts.verb.replace(/ing$/, 'ed')} ${formatBytes(this.done)} in ${formatDuration(elapsed)} (${mbps} MB/s)\n`);
    this.drawn = false;
  }

  /** Clears the bar without a summary (errors, Ctrl+C). */
  clear(): void {
    if (this.drawn) this.write('\r\u001b[2K');
    this.drawn = false;
  }
}
