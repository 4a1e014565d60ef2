/** `rgrid download ID`: fetch an execution's output files (never overwriting local files). */
import { isFinal } from '../../shared/lifecycle.js';
import { CliError, usageError } from '../errors.js';
import { downloadOutputs } from '../run/execute.js';
import { partials } from '../transfer/download.js';
import { rmSync } from 'node:fs';
import { downloadBatch } from '../batch/download.js';
import { API_FLAGS, JSON_FLAG, bool, str, type CommandSpec } from './_args.js';
import { BATCH_OUTPUT_FLAGS, batchIdArg, outputOptions, printBatchResult } from './_batch.js';
import { apiContext, command, executionIdArg, printJson } from './_shared.js';

export const spec: CommandSpec = {
  name: 'download',
  description: "Download an execution's (or a whole batch's) output files; existing files are kept (new ones become name (1).ext)",
  positionals: [{ name: 'ID', description: 'Execution id (exec_…) or batch id (batch_…)', required: true }],
  flags: {
    'output-dir': { type: 'string', valueHint: 'dir', description: 'Where to put them (default: the current directory; batches: ./outputs)' },
    ...BATCH_OUTPUT_FLAGS,
    ...JSON_FLAG,
    ...API_FLAGS,
  },
};

function removePartialsOnInterrupt(): () => void {
  const onInt = () => {
    for (const p of partials) rmSync(p, { force: true });
    process.exit(130);
  };
  process.on('SIGINT', onInt);
  return () => process.off('SIGINT', onInt);
}

export default command(spec, async (args) => {
  if (args.positionals[0]?.startsWith('batch_')) {
    const batchId = batchIdArg(args.positionals[0]);
    const { client } = await apiContext(args);
    const release = removePartialsOnInterrupt();
    try {
      return printBatchResult(await downloadBatch(client, batchId, outputOptions(args, process.cwd())), bool(args, 'json'));
    } finally {
      release();
    }
  }
  if (bool(args, 'flat')) throw usageError('--flat applies to batches', 'rgrid download batch_… --flat');
  const id = executionIdArg(args.positionals[0]);
  const { client } = await apiContext(args);
  const { execution } = await client.get(id);
  if (!isFinal(execution.status)) {
    throw new CliError(`${id} is ${execution.status}; its outputs are uploaded when it finishes`, { hint: `Follow it with \`rgrid logs ${id} -f\`, then download.` });
  }
  const release = removePartialsOnInterrupt();
  try {
    const cwd = process.cwd();
    const done = await downloadOutputs(client, id, str(args, 'output-dir') ?? cwd, cwd);
    if (bool(args, 'json')) printJson({ executionId: id, outputs: done.map((d) => ({ path: d.remotePath, localPath: d.localPath, size: d.size, renamed: d.renamed })) });
  } finally {
    release();
  }
});
