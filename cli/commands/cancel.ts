/** `rgrid cancel ID`: stop an execution (queued ones never start; running ones are stopped). */
import { ApiError } from '../api/http.js';
import { CliError } from '../errors.js';
import { log } from '../ui.js';
import { API_FLAGS, JSON_FLAG, bool, type CommandSpec } from './_args.js';
import { batchIdArg } from './_batch.js';
import { cancelBatch } from '../batch/cancel.js';
import { apiContext, command, executionIdArg, printJson } from './_shared.js';

export const spec: CommandSpec = {
  name: 'cancel',
  description: 'Cancel an execution, or every unfinished execution of a batch',
  positionals: [{ name: 'ID', description: 'Execution id (exec_…) or batch id (batch_…)', required: true }],
  flags: { ...JSON_FLAG, ...API_FLAGS },
};

export default command(spec, async (args) => {
  if (args.positionals[0]?.startsWith('batch_')) {
    const batchId = batchIdArg(args.positionals[0]);
    const { client } = await apiContext(args);
    const batch = await cancelBatch(client, batchId);
    if (bool(args, 'json')) printJson({ batch });
    return;
  }
  const id = executionIdArg(args.positionals[0]);
  const { client } = await apiContext(args);
  let execution;
  try {
    ({ execution } = await client.cancel(id));
  } catch (err) {
    if (err instanceof ApiError && err.status === 409) {
      throw new CliError(`Cannot cancel ${id}: ${err.message}`, { hint: `It has already finished; \`rgrid status ${id}\` shows how.`, cause: err });
    }
    throw err;
  }
  if (bool(args, 'json')) printJson({ execution });
  else if (execution.status === 'canceled') log.success(`Canceled ${id}`);
  else log.info(`Cancel requested for ${id} (now ${execution.status}); the runner stops it at its next heartbeat.`);
});
