/**
 * One progress line for the large files of a transfer: percent, MB/s and ETA. On a terminal it is
 * a bar redrawn in place at most 10 times a second; elsewhere (CI logs, pipes) it is a plain line
 * every 10 percentage points, at most one a second, so a log shows progress without filling up
 * with carriage returns. Files of 10 MB or less get neither: they are done before a bar could say
 * anything.
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
  /** Plain mode: when and at which percent the last line was written. */
  private lastPlain = { at: 0, pct: 0 };
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
    if (size <= this.threshold) return () => {};
    if (this.files === 0) {
      this.started = this.now();
      this.lastPlain = { at: this.started, pct: 0 };
    }
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

  percent(): number {
    return this.total ? Math.max(0, Math.min(100, Math.floor((this.done / this.total) * 100))) : 100;
  }

  /** Time left at the current rate ("?" until there is a rate). */
  eta(): string {
    const rate = this.rate();
    if (rate <= 0) return '?';
    const secs = Math.ceil(Math.max(0, this.total - this.done) / rate);
    return secs < 60 ? `${secs}s` : formatDuration(secs * 1000);
  }

  private what(): string {
    return this.files === 1 ? '1 file' : `${this.files} files`;
  }

  /** The terminal bar. */
  line(): string {
    const pct = this.percent();
    const width = 24;
    const filled = Math.round((pct / 100) * width);
    const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
    const mbps = (this.rate() / (1024 * 1024)).toFixed(1);
    return `${this.opts.verb} ${this.what()} ${bar} ${String(pct).padStart(3)}%  ${formatBytes(this.done)}/${formatBytes(this.total)}  ${mbps} MB/s  ETA ${this.eta()}`;
  }

  /** The line for logs and pipes. */
  plainLine(): string {
    const mbps = (this.rate() / (1024 * 1024)).toFixed(1);
    return `${this.opts.verb} ${this.what()}: ${this.percent()}% of ${formatBytes(this.total)}, ${mbps} MB/s, ETA ${this.eta()}`;
  }

  private draw(force: boolean): void {
    const t = this.now();
    if (!this.tty) {
      const pct = this.percent();
      if (pct >= 100 || pct - this.lastPlain.pct < 10 || t - this.lastPlain.at < 1000) return;
      this.lastPlain = { at: t, pct };
      this.write(this.plainLine() + '\n');
      return;
    }
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
    const summary = `${this.opts.verb.replace(/ing$/, 'ed')} ${formatBytes(this.done)} in ${formatDuration(elapsed)} (${mbps} MB/s)\n`;
    this.write(this.tty ? `\r\u001b[2K${summary}` : summary);
    this.drawn = false;
  }

  /** Clears the bar without a summary (errors, Ctrl+C). */
  clear(): void {
    if (this.drawn) this.write('\r\u001b[2K');
    this.drawn = false;
  }
}
