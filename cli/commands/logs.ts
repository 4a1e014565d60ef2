/** `rgrid logs ID [-f] [--stdout|--stderr]`: an execution's output, optionally followed live. */
import type { LogStream } from '../../shared/api/executions.js';
import { usageError } from '../errors.js';
import { consoleSink, followLogs } from '../run/follow.js';
import { API_FLAGS, bool, type CommandSpec } from './_args.js';
import { apiContext, command, executionIdArg } from './_shared.js';

export const spec: CommandSpec = {
  name: 'logs',
  description: "Print an execution's output (stdout to stdout, stderr to stderr)",
  positionals: [{ name: 'ID', description: 'Execution id (exec_…)', required: true }],
  flags: {
    follow: { type: 'boolean', alias: 'f', description: 'Keep printing new output until the execution finishes' },
    stdout: { type: 'boolean', description: "Only the script's stdout" },
    stderr: { type: 'boolean', description: "Only the script's stderr" },
    ...API_FLAGS,
  },
};

export default command(spec, async (args) => {
  const id = executionIdArg(args.positionals[0]);
  if (bool(args, 'stdout') && bool(args, 'stderr')) throw usageError('--stdout and --stderr exclude each other', 'Give neither to get both streams.');
  const stream: LogStream | undefined = bool(args, 'stdout') ? 'stdout' : bool(args, 'stderr') ? 'stderr' : undefined;
  const { client } = await apiContext(args);
  // Ctrl+C while following only stops printing; the execution is not affected.
  await followLogs(client, id, { follow: bool(args, 'follow'), stream, sink: consoleSink() });
});
