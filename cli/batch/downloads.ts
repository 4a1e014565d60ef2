/**
 * Downloads the outputs of a batch's succeeded items as they finish, a few items at a time, each
 * into its folder (cli/batch/layout.ts) or, with --flat, all into one folder. The transfer rules
 * are those of `rgrid run` (cli/transfer/download.ts): verified against their sha256, an output's
 * own subdirectories preserved, never overwriting (a taken name becomes `x (1).csv`; placing is
 * atomic, so two items writing `result.csv` into one flat folder at once cannot collide).
 *
 * A failed download does not stop the batch or the other downloads: it is recorded and reported
 * at the end with the command that fetches it again.
 */
import { join } from 'node:path';
import type { RGridClient } from '../api/client.js';
import { downloadAll, type Downloaded } from '../transfer/download.js';
import { Progress } from '../transfer/progress.js';
import { log } from '../ui.js';

export interface ItemRef {
  executionId: string;
  inputName: string;
}

export interface ItemDownload extends ItemRef {
  dir: string;
  files: Downloaded[];
  expired: string[];
}

export interface DownloaderOptions {
  /** The output base (`./outputs` unless --output-dir). */
  baseDir: string;
  flat: boolean;
  /** Folder of every input name of the batch (folderNames()). */
  folders: Map<string, string>;
  /** Items downloading at once (each fetches up to 4 files at once). */
  concurrency?: number;
  /** Where transfer retries are announced (above the progress line). */
  onRetry?: (message: string) => void;
}

export class BatchDownloader {
  readonly done: ItemDownload[] = [];
  readonly failed: { item: ItemRef; error: Error }[] = [];
  private readonly seen = new Set<string>();
  private readonly queue: ItemRef[] = [];
  private active = 0;
  private waiters: (() => void)[] = [];

  constructor(
    private readonly client: RGridClient,
    private readonly opts: DownloaderOptions,
  ) {}

  dirFor(inputName: string): string {
    if (this.opts.flat) return this.opts.baseDir;
    const folder = this.opts.folders.get(inputName);
    // An item the layout does not know (it cannot happen for a batch's own items) still gets a folder of its own.
    return join(this.opts.baseDir, folder ?? inputName.replace(/[\\/]+/g, '_'));
  }

  /** Queues an item once; later calls for the same execution are ignored. */
  enqueue(item: ItemRef): void {
    if (this.seen.has(item.executionId)) return;
    this.seen.add(item.executionId);
    this.queue.push(item);
    this.pump();
  }

  get pending(): number {
    return this.queue.length + this.active;
  }

  /** Resolves when every queued item is downloaded (or failed). */
  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  fileCount(): number {
    return this.done.reduce((n, d) => n + d.files.length, 0);
  }

  private pump(): void {
    while (this.active < (this.opts.concurrency ?? 4) && this.queue.length) {
      const item = this.queue.shift()!;
      this.active++;
      void this.fetch(item)
        .catch((error: unknown) => {
          this.failed.push({ item, error: error instanceof Error ? error : new Error(String(error)) });
        })
        .finally(() => {
          this.active--;
          this.pump();
          if (this.pending === 0) for (const w of this.waiters.splice(0)) w();
        });
    }
  }

  private async fetch(item: ItemRef): Promise<void> {
    const { artifacts } = await this.client.artifacts(item.executionId);
    const outputs = artifacts.filter((a) => a.kind === 'output');
    const ready = outputs.filter((a) => a.download !== null);
    const expired = outputs.filter((a) => a.download === null).map((a) => a.path);
    const dir = this.dirFor(item.inputName);
    // No progress bars: the batch's progress line owns the terminal.
    const files = ready.length ? await downloadAll(ready, dir, { progress: new Progress({ verb: 'Downloading', tty: false }), onRetry: this.opts.onRetry ?? ((m) => log.warn(m)) }) : [];
    log.debug(`${item.inputName}: ${files.length} ${files.length === 1 ? 'output' : 'outputs'} → ${dir}`);
    this.done.push({ ...item, dir, files, expired });
  }
}
