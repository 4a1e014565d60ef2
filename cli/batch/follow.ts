/**
 * Waiting for a submitted batch (shared by `run --batch` and `retry --batch`): snapshots from the
 * watcher drive the progress line; each new failure is printed as it happens; and when the
 * succeeded count grows, the item list is read again (at most once a second) so the outputs of
 * newly succeeded items start downloading while the rest still run.
 *
 * Ctrl+C: before submit the half-made batch is canceled (nothing ran); after submit the CLI
 * detaches and the batch continues; during downloads partial files are removed first.
 */
import type { BatchSnapshot } from '../../shared/api/batches.js';
import type { RGridClient } from '../api/client.js';
import { CLI_EXIT } from '../errors.js';
import { removeTempDirsSync } from '../transfer/encoding.js';
import { removePartialDownloadsSync, stopUploadsAndExit } from '../transfer/interrupt.js';
import { dim, note, red } from '../ui.js';
import type { BatchDownloader } from './downloads.js';
import { ProgressReporter } from './progress.js';
import { failureKind, failureMessage } from './summary.js';
import { watchBatch, type WatchOptions } from './watch.js';

export interface FollowBatchOptions {
  reporter: ProgressReporter;
  /** Absent with --remote-only. */
  downloader?: BatchDownloader;
  /** Only these executions count for downloads and live failure lines (a retry); default: all. */
  only?: Set<string>;
  watch?: Partial<WatchOptions>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function followBatch(client: RGridClient, batchId: string, opts: FollowBatchOptions): Promise<BatchSnapshot> {
  const { reporter, downloader, only } = opts;
  const reported = new Set<string>();
  let lastSucceeded = -1;
  let refreshing: Promise<void> | undefined;
  let again = false;
  let lastRefresh = -Infinity;
  let refreshError: unknown;

  const refresh = async () => {
    const { items } = await client.batchItems(batchId);
    for (const it of items) {
      if (it.status === 'succeeded' && (!only || only.has(it.executionId))) downloader!.enqueue(it);
    }
  };
  const scheduleRefresh = () => {
    if (refreshing) {
      again = true;
      return;
    }
    refreshing = (async () => {
      do {
        again = false;
        const wait = lastRefresh + 1000 - Date.now();
        if (wait > 0) await sleep(wait);
        lastRefresh = Date.now();
        await refresh();
      } while (again);
    })()
      .catch((err: unknown) => {
        refreshError = err;
      })
      .finally(() => {
        refreshing = undefined;
      });
  };

  const final = await watchBatch(client, batchId, {
    ...opts.watch,
    onSnapshot: (s) => {
      // The line first, so the message below is followed by the counts that include it.
      reporter.update(s);
      for (const f of s.failures) {
        if (f.status !== 'failed' || reported.has(f.executionId) || (only && !only.has(f.executionId))) continue;
        reported.add(f.executionId);
        reporter.log(`${red('✗')} ${f.inputName}: ${failureMessage(f)} ${dim(`(${failureKind(f)}, ${f.executionId})`)}`);
      }
      if (downloader && s.counts.succeeded !== lastSucceeded) {
        lastSucceeded = s.counts.succeeded;
        scheduleRefresh();
      }
    },
  });
  reporter.finish();
  if (downloader) {
    await refreshing;
    // One last read: items that succeeded after the latest refresh.
    try {
      await refresh();
    } catch (err) {
      refreshError ??= err;
    }
    if (downloader.pending) note(`Downloading the outputs of ${downloader.pending} more ${downloader.pending === 1 ? 'input' : 'inputs'}…`);
    await downloader.idle();
    if (refreshError && !downloader.done.length && !downloader.failed.length) throw refreshError;
  }
  return final;
}

export type BatchPhase = 'setup' | 'created' | 'wait' | 'done';

export interface InterruptState {
  phase: BatchPhase;
  batchId?: string;
  reporter?: ProgressReporter;
}

export function detachMessage(batchId: string): string {
  return [
    '',
    `Detached. Executions continue in the background. Follow: rgrid status ${batchId}`,
    `  Outputs:  rgrid download ${batchId}   (once it has finished)`,
    `  Cancel:   rgrid cancel ${batchId}`,
  ].join('\n');
}

/** Installs the SIGINT handler of a batch command; returns a function that removes it. */
export function onBatchInterrupt(state: InterruptState, client: RGridClient): () => void {
  let pressed = false;
  const handler = () => {
    if (pressed) process.exit(CLI_EXIT.interrupted);
    pressed = true;
    state.reporter?.clear();
    const id = state.batchId;
    switch (state.phase) {
      case 'setup':
        removeTempDirsSync();
        note('\nInterrupted: nothing was submitted.');
        process.exit(CLI_EXIT.interrupted);
        return;
      case 'created':
        note(`\nInterrupted before submit: canceling ${id} (nothing ran).`);
        // A dangling unsubmitted batch is harmless but untidy.
        stopUploadsAndExit(() => client.cancelBatch(id!));
        return;
      case 'wait':
        removePartialDownloadsSync();
        note(detachMessage(id!));
        process.exit(CLI_EXIT.interrupted);
        return;
      case 'done':
        process.exit(CLI_EXIT.interrupted);
    }
  };
  process.on('SIGINT', handler);
  return () => process.off('SIGINT', handler);
}
