/**
 * `rgrid run --batch` after planning: create the batch (1,000 items per request, then append),
 * upload what the server asked for (deduplicated, several at once), submit once, then follow it
 * (cli/batch/follow.ts) while outputs download, and end with the summary.
 *
 * Order matters: nothing is queued before every item's inputs exist (submit confirms each blob),
 * so a batch interrupted during uploads never runs half of its items.
 */
import { resolve } from 'node:path';
import { MAX_BATCH_ITEMS_PER_REQUEST, type BatchSnapshot } from '../../shared/api/batches.js';
import type { BlobUpload } from '../../shared/api/common.js';
import type { RGridClient } from '../api/client.js';
import { displayPath } from '../transfer/download.js';
import { uploadBlobs } from '../transfer/upload.js';
import { bold, cyan, dim, formatBytes, green, log, note, red, terminal } from '../ui.js';
import { BatchDownloader, type ItemDownload } from './downloads.js';
import { followBatch, onBatchInterrupt, type InterruptState } from './follow.js';
import { folderNames } from './layout.js';
import type { BatchPlan } from './plan.js';
import { ProgressReporter } from './progress.js';
import { batchExitCode, failureLines, summaryLine, writeFailuresFile } from './summary.js';

export interface BatchOutputOptions {
  cwd: string;
  /** Base of the output folders (default ./outputs). */
  outputDir?: string;
  flat: boolean;
  remoteOnly: boolean;
  json: boolean;
}

export interface BatchResult {
  batch: BatchSnapshot;
  exitCode: number;
  remoteOnly: boolean;
  outputDir: string | null;
  failuresFile: string | null;
  outputs: { input: string; executionId: string; dir: string; files: { path: string; localPath: string; size: number; renamed: boolean }[] }[];
  downloadErrors: { input: string; executionId: string; error: string }[];
}

/** The progress line redraws in place only on a terminal, and not with NO_COLOR. */
export function newReporter(): ProgressReporter {
  const noColor = process.env.NO_COLOR !== undefined && process.env.NO_COLOR !== '';
  return new ProgressReporter({ inPlace: terminal.tty && !noColor });
}

export function outputBase(opts: Pick<BatchOutputOptions, 'cwd' | 'outputDir'>): string {
  return resolve(opts.cwd, opts.outputDir ?? 'outputs');
}

export function newDownloader(client: RGridClient, inputNames: string[], opts: BatchOutputOptions, reporter?: ProgressReporter): BatchDownloader | undefined {
  if (opts.remoteOnly) return undefined;
  return new BatchDownloader(client, {
    baseDir: outputBase(opts),
    flat: opts.flat,
    folders: folderNames(inputNames),
    onRetry: (m) => (reporter ? reporter.log(m) : note(m)),
  });
}

export async function runBatch(client: RGridClient, plan: BatchPlan, opts: BatchOutputOptions): Promise<BatchResult> {
  const state: InterruptState = { phase: 'setup' };
  const release = onBatchInterrupt(state, client);
  try {
    const n = plan.items.length;
    const chunks: (typeof plan.items)[] = [];
    for (let i = 0; i < n; i += MAX_BATCH_ITEMS_PER_REQUEST) chunks.push(plan.items.slice(i, i + MAX_BATCH_ITEMS_PER_REQUEST));
    const created = await client.createBatch({ ...plan.request, items: chunks[0]! });
    const id = created.batch.id;
    state.batchId = id;
    state.phase = 'created';
    log.info(`Created ${bold(id)}: ${n} ${n === 1 ? 'input' : 'inputs'}, one execution each.`);
    const uploads: BlobUpload[] = [...created.uploads];
    for (const chunk of chunks.slice(1)) uploads.push(...(await client.appendBatchItems(id, { items: chunk })).uploads);

    const wanted = [...new Map(uploads.map((u) => [u.sha256, u])).values()];
    if (wanted.length) {
      const bytes = wanted.reduce((s, u) => s + (plan.blobs.get(u.sha256)?.size ?? 0), 0);
      log.info(`Uploading ${wanted.length} ${wanted.length === 1 ? 'file' : 'files'} (${formatBytes(bytes)})…`);
      await uploadBlobs(wanted, plan.blobs, { concurrency: 8, multipart: client, onNote: (m) => log.debug(m) });
    } else log.info('Script and inputs already stored; nothing to upload.');

    const submitted = (await client.submitBatch(id)).batch;
    state.phase = 'wait';
    const cap = submitted.parallel ? `, at most ${submitted.parallel} at once` : '';
    log.info(`Submitted ${bold(id)} (${n} ${n === 1 ? 'execution' : 'executions'} on pool ${plan.request.template.pool ?? 'default'}${cap}${submitted.failFast ? ', fail-fast' : ''}). ${cyan('Ctrl+C detaches')}; the executions continue.`);

    const reporter = newReporter();
    state.reporter = reporter;
    const downloader = newDownloader(client, plan.items.map((i) => i.inputName), opts, reporter);
    const final = await followBatch(client, id, { reporter, downloader });
    state.phase = 'done';
    return await concludeBatch(final, downloader, opts);
  } finally {
    release();
  }
}

/**
 * The end of a followed batch (run, retry, download): the summary with each failed input,
 * batch_failures.txt, where the outputs went, and the exit code.
 */
export async function concludeBatch(final: BatchSnapshot, downloader: BatchDownloader | undefined, opts: BatchOutputOptions, what: { prefix?: string } = {}): Promise<BatchResult> {
  const id = final.id;
  const exitCode = batchExitCode(final);
  const line = `${what.prefix ?? ''}${summaryLine(final)}`;
  if (final.counts.succeeded > 0 && exitCode === 0) log.success(line);
  else note(`${red('Failed:')} ${line}`);

  const failed = final.failures.filter((f) => f.status === 'failed');
  const canceled = final.failures.filter((f) => f.status === 'canceled');
  if (failed.length) {
    note('Failed inputs:');
    for (const l of failureLines(failed)) note(l);
  }
  if (canceled.length) {
    const why = final.failFast && failed.length ? ' by --fail-fast after the first failure' : '';
    if (canceled.length <= 10) {
      note(`Canceled inputs${why}:`);
      for (const l of failureLines(canceled)) note(l);
    } else note(`${canceled.length} inputs were canceled${why}.`);
  }
  const listed = final.failures.length;
  const unlisted = final.counts.failed + final.counts.canceled - listed;
  if (unlisted > 0) note(dim(`… and ${unlisted} more not listed by the control plane (rgrid status ${id}).`));

  const base = outputBase(opts);
  let failuresFile: string | undefined;
  if (!opts.remoteOnly) failuresFile = await writeFailuresFile(base, final);
  if (failuresFile) note(`Failures recorded in ${displayPath(failuresFile, opts.cwd)}`);

  const outputs: ItemDownload[] = downloader?.done ?? [];
  if (opts.remoteOnly) note(`Outputs stored remotely. Download with: rgrid download ${id}`);
  else if (downloader) {
    const files = downloader.fileCount();
    const inputs = outputs.length;
    if (inputs) note(`${green('✓')} Downloaded ${files} ${files === 1 ? 'output' : 'outputs'} of ${inputs} ${inputs === 1 ? 'input' : 'inputs'} to ${displayPath(base, opts.cwd)}${opts.flat ? '' : '/<input>/'}`);
    const renamed = outputs.flatMap((o) => o.files.filter((f) => f.renamed));
    if (renamed.length) note(`  ${renamed.length} ${renamed.length === 1 ? 'file was' : 'files were'} renamed because the name was taken (never overwritten), e.g. ${displayPath(renamed[0]!.localPath, opts.cwd)}`);
    const expired = outputs.flatMap((o) => o.expired.map((p) => `${o.inputName}: ${p}`));
    if (expired.length) log.warn(`${expired.length} outputs have expired and cannot be downloaded (${expired.slice(0, 3).join(', ')}${expired.length > 3 ? ', …' : ''})`);
    for (const f of downloader.failed) note(`${red('✗')} Could not download the outputs of ${f.item.inputName}: ${f.error.message}`);
    if (downloader.failed.length) note(`  They stay stored remotely: rgrid download ${id}`);
  }
  if (final.counts.failed + final.counts.canceled > 0) note(dim(`Retry what did not succeed: rgrid retry --batch ${id}`));

  return {
    batch: final,
    exitCode: downloader?.failed.length ? Math.max(exitCode, 1) : exitCode,
    remoteOnly: opts.remoteOnly,
    outputDir: opts.remoteOnly ? null : base,
    failuresFile: failuresFile ?? null,
    outputs: outputs.map((o) => ({
      input: o.inputName,
      executionId: o.executionId,
      dir: o.dir,
      files: o.files.map((f) => ({ path: f.remotePath, localPath: f.localPath, size: f.size, renamed: f.renamed })),
    })),
    downloadErrors: (downloader?.failed ?? []).map((f) => ({ input: f.item.inputName, executionId: f.item.executionId, error: f.error.message })),
  };
}
