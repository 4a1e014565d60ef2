/**
 * `rgrid cancel batch_…`: queued and not-yet-submitted items are canceled at once; running ones
 * are stopped by their runners at the next heartbeat. A finished batch is an error, as for a
 * finished execution (the control plane would mark it canceled after the fact).
 */
import type { BatchSnapshot } from '../../shared/api/batches.js';
import type { RGridClient } from '../api/client.js';
import { CliError } from '../errors.js';
import { log } from '../ui.js';
import { summaryLine } from './summary.js';

export async function cancelBatch(client: RGridClient, id: string): Promise<BatchSnapshot> {
  const before = (await client.getBatch(id)).batch;
  if (before.finishedAt) {
    if (before.status === 'canceled') {
      log.info(`${id} was already canceled (${summaryLine(before)}).`);
      return before;
    }
    throw new CliError(`Cannot cancel ${id}: it has already finished (${summaryLine(before)})`, { hint: `\`rgrid status ${id}\` shows how it ended.` });
  }
  const { batch } = await client.cancelBatch(id);
  const c = batch.counts;
  const stopping = c.running;
  const parts = [`${c.canceled} canceled`];
  if (stopping) parts.push(`${stopping} running ${stopping === 1 ? 'is' : 'are'} stopped at the next heartbeat (unless finished first)`);
  if (c.succeeded + c.failed) parts.push(`${c.succeeded + c.failed} had already finished`);
  log.success(`Canceled ${id}: ${parts.join(', ')}.`);
  return batch;
}
