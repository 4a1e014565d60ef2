/** `rgrid list`: recent executions, newest first. */
import type { Execution } from '../../shared/api/executions.js';
import { EXECUTION_STATES, type ExecutionState } from '../../shared/lifecycle.js';
import { LIMITS } from '../../shared/limits.js';
import { usageError } from '../errors.js';
import { durationMs } from '../run/outcome.js';
import { parsePairs, parsePositiveInt } from '../run/values.js';
import { formatDuration, out } from '../ui.js';
import { API_FLAGS, JSON_FLAG, bool, list, str, type CommandSpec } from './_args.js';
import { colorStatus } from './status.js';
import { formatBatchTable } from '../batch/status.js';
import { apiContext, command, printJson } from './_shared.js';

const { dim } = out;

export const spec: CommandSpec = {
  name: 'list',
  description: 'List your executions (or, with --batches, your batches), newest first',
  positionals: [],
  flags: {
    status: { type: 'string', valueHint: 'state', description: `Only executions in this state: ${EXECUTION_STATES.join(', ')}` },
    metadata: { type: 'string', multiple: true, valueHint: 'K=V', description: 'Only executions labeled K=V (all given pairs must match)' },
    limit: { type: 'string', valueHint: 'n', description: `How many (1-${LIMITS.maxPageSize}, default 20)` },
    batches: { type: 'boolean', description: 'List batches (id, status, progress, failures) instead of executions' },
    ...JSON_FLAG,
    ...API_FLAGS,
  },
};

function pad(s: string, visible: number, width: number): string {
  return s + ' '.repeat(Math.max(0, width - visible));
}

export function formatTable(executions: Execution[]): string {
  const rows = executions.map((e) => {
    const ms = durationMs(e);
    return [e.id, e.status, e.script.name, e.createdAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z'), ms === undefined ? '-' : formatDuration(ms), e.exitCode === null ? '-' : String(e.exitCode)];
  });
  const header = ['ID', 'STATUS', 'SCRIPT', 'CREATED', 'DURATION', 'EXIT'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[], render: (c: string, i: number) => string) => cells.map((c, i) => pad(render(c, i), c.length, widths[i]!)).join('  ').trimEnd();
  return [line(header, (c) => dim(c)), ...rows.map((r) => line(r, (c, i) => (i === 1 ? colorStatus(c as ExecutionState) : c)))].join('\n');
}

export default command(spec, async (args) => {
  const status = str(args, 'status');
  if (status !== undefined && !(EXECUTION_STATES as readonly string[]).includes(status)) {
    throw usageError(`Invalid --status "${status}"`, `Use one of: ${EXECUTION_STATES.join(', ')}.`);
  }
  const limitRaw = str(args, 'limit');
  const limit = limitRaw === undefined ? 20 : parsePositiveInt(limitRaw, 'limit', LIMITS.maxPageSize);
  const pairs = parsePairs(list(args, 'metadata'), 'metadata');
  if (bool(args, 'batches')) {
    if (status !== undefined || list(args, 'metadata').length) throw usageError('--status and --metadata filter executions, not batches', 'Use `rgrid list --batches` alone (with --limit), or without --batches.');
    const { client } = await apiContext(args);
    const res = await client.listBatches({ limit });
    if (bool(args, 'json')) printJson(res);
    else if (!res.batches.length) process.stdout.write('No batches yet.\n');
    else {
      process.stdout.write(formatBatchTable(res.batches) + '\n');
      if (res.nextCursor) process.stdout.write(dim(`Showing the newest ${res.batches.length}; use --limit to see more.`) + '\n');
    }
    return;
  }
  const { client } = await apiContext(args);
  const res = await client.list({
    status: status as ExecutionState | undefined,
    metadata: Object.entries(pairs).map(([k, v]) => `${k}=${v}`),
    limit,
  });
  if (bool(args, 'json')) {
    printJson(res);
    return;
  }
  if (!res.executions.length) {
    process.stdout.write('No executions' + (status || list(args, 'metadata').length ? ' match' : ' yet') + '.\n');
    return;
  }
  process.stdout.write(formatTable(res.executions) + '\n');
  if (res.nextCursor) process.stdout.write(dim(`Showing the newest ${res.executions.length}; use --limit to see more.`) + '\n');
});
