/** `rgrid run SCRIPT [ARGS...]`: run a script remotely as if it ran here. */
import { executeRun } from '../run/execute.js';
import { prepareRun } from '../run/prepare.js';
import { API_FLAGS, JSON_FLAG, bool, str, type CommandSpec } from './_args.js';
import { BATCH_FLAGS, runBatchFromArgs, wantsBatch } from './_batch.js';
import { RUN_REQUEST_FLAGS, runSpecFromArgs } from './_run-request.js';
import { apiContext, command, printJson } from './_shared.js';

export const spec: CommandSpec = {
  name: 'run',
  description: 'Run a script remotely: upload it and its input files, stream its output, download what it writes',
  positionals: [
    { name: 'SCRIPT', description: 'The script to run (e.g. analyze.py)', required: true },
    { name: 'ARGS', description: 'Arguments for the script; existing files among them are uploaded as inputs', variadic: true },
  ],
  flags: {
    // runtime, env, limits, metadata, pool, requirements and the cache flags (shared with `cache explain`)
    ...RUN_REQUEST_FLAGS,
    'remote-only': { type: 'boolean', description: 'Do not download outputs; print how to download them later' },
    'output-dir': { type: 'string', valueHint: 'dir', description: 'Where outputs go (default: the current directory; batches: ./outputs)' },
    ...BATCH_FLAGS,
    ...JSON_FLAG,
    ...API_FLAGS,
  },
  examples: [
    'rgrid run analyze.py data.csv',
    'rgrid run train.py --memory 8g --timeout 2h --env SEED=42 data/train.csv',
    'rgrid run report.py data.csv -- --format html   (after --: passed as is)',
    "rgrid run process.py --batch 'data/*.csv' --parallel 10   (one execution per file)",
    'rgrid run analyze.py data.csv --reuse-results   (identical earlier run: its outputs, nothing runs)',
  ],
};

export default command(spec, async (args) => {
  const cwd = process.cwd();
  const prepared = await prepareRun(runSpecFromArgs(args, cwd));
  if (wantsBatch(args)) return runBatchFromArgs(args, prepared, cwd);
  // Configuration problems (no API key) surface after local checks, so a typo in a file name
  // is reported first: it is the cheaper fix.
  const { client } = await apiContext(args);
  const json = bool(args, 'json');
  const result = await executeRun(client, prepared, { remoteOnly: bool(args, 'remote-only'), outputDir: str(args, 'output-dir'), json, cwd });
  if (json) printJson(result);
  return result.exitCode;
});
