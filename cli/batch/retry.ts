/**
 * `rgrid retry`: POST /api/v1/executions/retry makes a new execution for each chosen one (same
 * script, inputs and settings; `retryOf` links it to the original, which stays in history). A
 * batch's retried items replace their originals in its counts, so following the batch afterwards
 * shows the latest attempt of every input; their outputs land in the same folders as the run's.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Execution } from '../../shared/api/executions.js';
import type { RGridClient } from '../api/client.js';
import { CLI_EXIT } from '../errors.js';
import { detachMessage as execDetachMessage, downloadOutputs } from '../run/execute.js';
import { consoleSink, followLogs } from '../run/follow.js';
import { outcomeOf } from '../run/outcome.js';
import { partials } from '../transfer/download.js';
import { bold, log, note, red } from '../ui.js';
import { followBatch, onBatchInterrupt, type InterruptState } from './follow.js';
import { concludeBatch, newDownloader, newReporter, outputBase, type BatchOutputOptions, type BatchResult } from './run.js';
import { folderNames } from './layout.js';
import { writeFailuresFile } from './summary.js';

export interface RetryBatchResult extends BatchResult {
  retried: { executionId: string; retryOf: string | null; input: string | null }[];
}

/** Retries a batch's failed (and canceled) items, or all with `all`, and follows them. */
export async function retryBatch(client: RGridClient, batchId: string, all: boolean, opts: BatchOutputOptions): Promise<RetryBatchResult> {
  const state: InterruptState = { phase: 'setup', batchId };
  const release = onBatchInterrupt(state, client);
  try {
    const { executions } = await client.retry({ batchId, all });
    const n = executions.length;
    const retried = executions.map((e) => ({ executionId: e.id, retryOf: e.retryOf, input: e.inputName }));
    if (n === 0) {
      const { batch } = await client.getBatch(batchId);
      log.success(`Nothing to retry: no input of ${batchId} failed (${batch.counts.succeeded} of ${batch.counts.total} succeeded).`);
      return { batch, exitCode: 0, remoteOnly: opts.remoteOnly, outputDir: null, failuresFile: null, outputs: [], downloadErrors: [], retried };
    }
    state.phase = 'wait';
    note(all ? `Retrying all ${n} executions from ${bold(batchId)}` : `Retrying ${n} failed ${n === 1 ? 'execution' : 'executions'} from ${bold(batchId)}`);
    const only = new Set(executions.map((e) => e.id));
    const reporter = newReporter();
    state.reporter = reporter;
    // The folders depend on every input of the batch, not only the retried ones.
    const { items } = await client.batchItems(batchId);
    const downloader = newDownloader(client, items.map((i) => i.inputName), opts, reporter);
    const final = await followBatch(client, batchId, { reporter, downloader, only });
    state.phase = 'done';
    const stillFailing = final.failures.filter((f) => only.has(f.executionId));
    const ok = n - stillFailing.length;
    note(`Retried ${n}: ${ok} succeeded, ${n - ok} did not.`);
    const result = await concludeBatch(final, downloader, opts, { prefix: `${batchId} now: ` });
    // The retry's own verdict: like a run, 0 when some retried input succeeded and none was cut short.
    const exitCode = ok === 0 || stillFailing.some((f) => f.status === 'canceled') || result.downloadErrors.length ? 1 : 0;
    return { ...result, exitCode, retried };
  } finally {
    release();
  }
}

/**
 * Retries one execution and follows it like `rgrid run`: its output streams, its outputs are
 * downloaded (a batch item's into its folder of the batch layout), and the exit code is its own.
 */
export async function retryExecution(client: RGridClient, id: string, opts: BatchOutputOptions): Promise<{ execution: Execution; exitCode: number; outputs: string[] }> {
  const { executions } = await client.retry({ executionIds: [id] });
  let execution = executions[0]!;
  const what = execution.inputName ? ` (input ${execution.inputName} of ${execution.batchId})` : '';
  note(`Retrying ${id} as ${bold(execution.id)}${what}. Ctrl+C detaches; the retry continues.`);
  const onInt = () => {
    for (const p of partials) rmSync(p, { force: true });
    note(execDetachMessage(execution.id));
    process.exit(CLI_EXIT.interrupted);
  };
  process.on('SIGINT', onInt);
  try {
    await followLogs(client, execution.id, { follow: true, sink: consoleSink({ jsonMode: opts.json }) });
    execution = (await client.poll(execution.id)).execution;
    const outcome = outcomeOf(execution);
    if (outcome.ok) log.success(outcome.summary);
    else note(`${red('Failed:')} ${outcome.summary}`);
    let outputs: string[] = [];
    if (opts.remoteOnly) note(`Outputs stored remotely. Download with: rgrid download ${execution.id}`);
    else if (outcome.ok) {
      let dir = opts.outputDir ?? opts.cwd;
      if (execution.batchId && execution.inputName) {
        const { items } = await client.batchItems(execution.batchId);
        const folders = folderNames(items.map((i) => i.inputName));
        dir = opts.flat ? outputBase(opts) : join(outputBase(opts), folders.get(execution.inputName)!);
      }
      outputs = (await downloadOutputs(client, execution.id, dir, opts.cwd)).map((d) => d.localPath);
    }
    if (execution.batchId && !opts.remoteOnly) {
      // Keep the batch's failure list in step with the latest attempt of each input.
      const { batch } = await client.getBatch(execution.batchId);
      await writeFailuresFile(outputBase(opts), batch);
    }
    return { execution, exitCode: outcome.exitCode, outputs };
  } finally {
    process.off('SIGINT', onInt);
  }
}
