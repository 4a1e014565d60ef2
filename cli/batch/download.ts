/**
 * `rgrid download batch_…`: the outputs of every succeeded input, in the same layout as the run
 * (one folder per input, or --flat), plus batch_failures.txt. Like `rgrid download exec_…` it
 * wants a finished batch: downloading half a batch and again later would duplicate the first
 * half as `x (1).csv` (files are never overwritten).
 */
import type { RGridClient } from '../api/client.js';
import { CliError } from '../errors.js';
import { note } from '../ui.js';
import { formatProgress } from './progress.js';
import { concludeBatch, newDownloader, type BatchOutputOptions, type BatchResult } from './run.js';

export async function downloadBatch(client: RGridClient, id: string, opts: BatchOutputOptions): Promise<BatchResult> {
  const { batch } = await client.getBatch(id);
  if (!batch.finishedAt) {
    throw new CliError(`${id} has not finished (${formatProgress(batch)})`, { hint: `Its outputs download once every input is done; follow it with \`rgrid status ${id}\`.` });
  }
  const { items } = await client.batchItems(id);
  const downloader = newDownloader(client, items.map((i) => i.inputName), { ...opts, remoteOnly: false })!;
  const succeeded = items.filter((i) => i.status === 'succeeded');
  if (succeeded.length) note(`Downloading the outputs of ${succeeded.length} ${succeeded.length === 1 ? 'input' : 'inputs'}…`);
  for (const item of succeeded) downloader.enqueue(item);
  await downloader.idle();
  const result = await concludeBatch(batch, downloader, { ...opts, remoteOnly: false });
  // The download's own verdict: whether every output arrived, not how the batch went.
  return { ...result, exitCode: result.downloadErrors.length ? 1 : 0 };
}
