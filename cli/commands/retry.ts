/** `rgrid retry --batch batch_… [--all]` or `rgrid retry exec_…`: run failed executions again. */
import { usageError } from '../errors.js';
import { retryBatch, retryExecution } from '../batch/retry.js';
import { API_FLAGS, JSON_FLAG, bool, str, type CommandSpec } from './_args.js';
import { BATCH_OUTPUT_FLAGS, batchIdArg, outputOptions, printBatchResult } from './_batch.js';
import { apiContext, command, executionIdArg, printJson } from './_shared.js';

export const spec: CommandSpec = {
  name: 'retry',
  description: 'Run failed executions again: a batch\'s failed inputs (--batch), or one execution',
  positionals: [{ name: 'ID', description: 'Execution id (exec_…) to retry; or use --batch' }],
  flags: {
    batch: { type: 'string', valueHint: 'batch_id', description: 'Retry the failed (and canceled) inputs of this batch' },
    all: { type: 'boolean', description: 'With --batch: retry every input, not only the failed ones' },
    'remote-only': { type: 'boolean', description: 'Do not download outputs; print how to download them later' },
    'output-dir': { type: 'string', valueHint: 'dir', description: 'Base of the output folders (default ./outputs for batches, the current directory otherwise)' },
    ...BATCH_OUTPUT_FLAGS,
    ...JSON_FLAG,
    ...API_FLAGS,
  },
  examples: ['rgrid retry --batch batch_…', 'rgrid retry --batch batch_… --all --remote-only', 'rgrid retry exec_…'],
};

export default command(spec, async (args) => {
  const batch = str(args, 'batch');
  const given = args.positionals[0];
  if (batch !== undefined && given !== undefined) throw usageError('Give either an execution id or --batch, not both', 'rgrid retry exec_…   or   rgrid retry --batch batch_…');
  if (batch === undefined && given === undefined) throw usageError('Missing what to retry', 'rgrid retry exec_…   or   rgrid retry --batch batch_…');
  // `rgrid retry batch_…` is what people type first; accept it.
  const batchId = batch !== undefined ? batchIdArg(batch) : given!.startsWith('batch_') ? batchIdArg(given) : undefined;
  if (bool(args, 'all') && !batchId) throw usageError('--all applies to --batch', 'rgrid retry --batch batch_… --all');
  const cwd = process.cwd();
  const opts = outputOptions(args, cwd);
  if (batchId) {
    const { client } = await apiContext(args);
    return printBatchResult(await retryBatch(client, batchId, bool(args, 'all'), opts), opts.json);
  }
  const id = executionIdArg(given);
  if (bool(args, 'flat')) throw usageError('--flat applies to batches', 'rgrid retry --batch batch_… --flat');
  const { client } = await apiContext(args);
  const result = await retryExecution(client, id, opts);
  if (opts.json) printJson(result);
  return result.exitCode;
});
