/** `rgrid run SCRIPT [ARGS...]`: run a script remotely as if it ran here. */
import { LIMITS } from '../../shared/limits.js';
import { usageError } from '../errors.js';
import { executeRun } from '../run/execute.js';
import { prepareRun } from '../run/prepare.js';
import { parseCpus, parseDuration, parseMemory, parsePairs } from '../run/values.js';
import { API_FLAGS, JSON_FLAG, bool, list, str, type CommandSpec } from './_args.js';
import { apiContext, command, printJson } from './_shared.js';

export const spec: CommandSpec = {
  name: 'run',
  description: 'Run a script remotely: upload it and its input files, stream its output, download what it writes',
  positionals: [
    { name: 'SCRIPT', description: 'The script to run (e.g. analyze.py)', required: true },
    { name: 'ARGS', description: 'Arguments for the script; existing files among them are uploaded as inputs', variadic: true },
  ],
  flags: {
    runtime: { type: 'string', valueHint: 'name', description: 'python3.11 (default for .py), python3.12, python3.10 or node20 (default for .js)' },
    env: { type: 'string', multiple: true, valueHint: 'K=V', description: 'Environment variable for the script; a bare K copies your local value' },
    timeout: { type: 'string', valueHint: 'duration', description: 'Stop the script after this long: 90, 90s, 10m, 2h (default 1h)' },
    memory: { type: 'string', valueHint: 'size', description: 'Memory limit: 512m, 2g (default 2g)' },
    cpus: { type: 'string', valueHint: 'n', description: 'CPU limit, fractions allowed (default 1)' },
    metadata: { type: 'string', multiple: true, valueHint: 'K=V', description: 'Label the execution (filter with `rgrid list --metadata`)' },
    pool: { type: 'string', valueHint: 'name', description: 'Runner pool (default "default")' },
    'remote-only': { type: 'boolean', description: 'Do not download outputs; print how to download them later' },
    'output-dir': { type: 'string', valueHint: 'dir', description: 'Where outputs go (default: the current directory)' },
    ...JSON_FLAG,
    ...API_FLAGS,
  },
  examples: [
    'rgrid run analyze.py data.csv',
    'rgrid run train.py --memory 8g --timeout 2h --env SEED=42 data/train.csv',
    'rgrid run report.py data.csv -- --format html   (after --: passed as is)',
  ],
};

export default command(spec, async (args) => {
  const [script, ...scriptArgs] = args.positionals;
  if (!script) throw usageError('Missing SCRIPT', 'Usage: rgrid run [OPTIONS] SCRIPT [ARGS...]');
  const limits: { timeoutSeconds?: number; memoryMb?: number; cpus?: number } = {};
  const timeout = str(args, 'timeout');
  const memory = str(args, 'memory');
  const cpus = str(args, 'cpus');
  if (timeout !== undefined) limits.timeoutSeconds = parseDuration(timeout);
  if (memory !== undefined) limits.memoryMb = parseMemory(memory);
  if (cpus !== undefined) limits.cpus = parseCpus(cpus);
  const pool = str(args, 'pool');
  if (pool !== undefined && !/^[a-z0-9][a-z0-9-]{0,63}$/.test(pool)) throw usageError(`Invalid --pool "${pool}"`, 'Pool names are lowercase letters, digits and -.');
  if (scriptArgs.length > LIMITS.maxArgs) throw usageError(`Too many arguments (${scriptArgs.length}); the limit is ${LIMITS.maxArgs}`);

  const cwd = process.cwd();
  const prepared = await prepareRun({
    script,
    args: scriptArgs,
    // positionals[0] is the script, so the script's own argument indexes are one less.
    verbatimFrom: Math.max(0, args.verbatimFrom - 1),
    runtime: str(args, 'runtime'),
    env: parsePairs(list(args, 'env'), 'env', process.env),
    metadata: parsePairs(list(args, 'metadata'), 'metadata'),
    limits,
    pool,
    cwd,
  });
  // Configuration problems (no API key) surface after local checks, so a typo in a file name
  // is reported first: it is the cheaper fix.
  const { client } = await apiContext(args);
  const json = bool(args, 'json');
  const result = await executeRun(client, prepared, { remoteOnly: bool(args, 'remote-only'), outputDir: str(args, 'output-dir'), json, cwd });
  if (json) printJson(result);
  return result.exitCode;
});
