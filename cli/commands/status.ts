/** `rgrid status ID`: where an execution is, and how it ended. */
import type { Execution } from '../../shared/api/executions.js';
import { isFinal } from '../../shared/lifecycle.js';
import { durationMs, outcomeOf } from '../run/outcome.js';
import { formatDuration, out } from '../ui.js';
import { formatBatchStatus } from '../batch/status.js';
import { API_FLAGS, JSON_FLAG, bool, type CommandSpec } from './_args.js';
import { batchIdArg } from './_batch.js';
import { apiContext, command, executionIdArg, printJson } from './_shared.js';

const { bold, dim, green, red, yellow } = out;

export const spec: CommandSpec = {
  name: 'status',
  description: 'Show the state of an execution (or a batch: counts and failures) and how it ended',
  positionals: [{ name: 'ID', description: 'Execution id (exec_…) or batch id (batch_…)', required: true }],
  flags: { ...JSON_FLAG, ...API_FLAGS },
};

export function colorStatus(status: Execution['status']): string {
  switch (status) {
    case 'succeeded':
      return green(status);
    case 'failed':
      return red(status);
    case 'canceled':
      return yellow(status);
    default:
      return status;
  }
}

function ago(iso: string, now = Date.now()): string {
  return `${formatDuration(Math.max(0, now - Date.parse(iso)))} ago`;
}

export function formatStatus(e: Execution): string {
  const rows: [string, string][] = [];
  rows.push(['status', colorStatus(e.status) + (e.status === 'failed' && e.failureKind ? ` (${e.failureKind})` : '')]);
  if (isFinal(e.status)) rows.push(['outcome', outcomeOf(e).summary + (e.exitCode !== null && e.failureKind !== 'script_error' ? `; exit code ${e.exitCode}` : '')]);
  if (e.message && e.status !== 'succeeded') rows.push(['message', e.message]);
  rows.push(['script', `${e.script.name} (${e.runtime})`]);
  if (e.args.length) rows.push(['args', e.args.map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(' ')]);
  if (e.inputs.length) rows.push(['inputs', e.inputs.map((i) => i.path).join(', ')]);
  rows.push(['limits', `timeout ${formatDuration(e.limits.timeoutSeconds * 1000)}, memory ${e.limits.memoryMb} MB, cpus ${e.limits.cpus}`]);
  rows.push(['pool', e.pool + (e.runnerId ? `, runner ${e.runnerId}` : '')]);
  if (e.attempt > 1 || (e.attempt === 1 && !isFinal(e.status))) rows.push(['attempt', `${e.attempt} of ${e.maxAttempts}`]);
  rows.push(['created', `${e.createdAt} (${ago(e.createdAt)})`]);
  if (e.startedAt) rows.push(['started', e.startedAt]);
  if (e.finishedAt) {
    const ms = durationMs(e);
    rows.push(['finished', e.finishedAt + (ms !== undefined ? ` (ran ${formatDuration(ms)})` : '')]);
  }
  const meta = Object.entries(e.metadata);
  if (meta.length) rows.push(['metadata', meta.map(([k, v]) => `${k}=${v}`).join(' ')]);
  const width = Math.max(...rows.map(([k]) => k.length));
  const lines = [bold(e.id), ...rows.map(([k, v]) => `  ${dim(k.padEnd(width))}  ${v}`)];
  if (!isFinal(e.status)) lines.push('', dim(`Follow its output: rgrid logs ${e.id} -f`));
  else lines.push('', dim(`Output files: rgrid download ${e.id}    Logs: rgrid logs ${e.id}`));
  return lines.join('\n');
}

export default command(spec, async (args) => {
  if (args.positionals[0]?.startsWith('batch_')) {
    const batchId = batchIdArg(args.positionals[0]);
    const { client } = await apiContext(args);
    const { batch } = await client.getBatch(batchId);
    if (bool(args, 'json')) printJson({ batch });
    else process.stdout.write(formatBatchStatus(batch) + '\n');
    return;
  }
  const id = executionIdArg(args.positionals[0]);
  const { client } = await apiContext(args);
  const { execution } = await client.get(id);
  if (bool(args, 'json')) printJson({ execution });
  else process.stdout.write(formatStatus(execution) + '\n');
});
