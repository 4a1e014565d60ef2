/**
 * The flags that define what runs (script settings, requirements, cache choices), shared by
 * `rgrid run` and `rgrid cache explain`: explain must see exactly the request run would send.
 *
 * The cache flags are named `no-cache` and `no-cache-inputs`. citty's own parser would read
 * `--no-cache` as "cache = false"; ours (node:util parseArgs, _args.ts) takes the name literally,
 * so the flag is declared, documented and read under its real name (tested in _run-request.test.ts).
 */
import { LIMITS } from '../../shared/limits.js';
import { usageError } from '../errors.js';
import type { RunSpec } from '../run/prepare.js';
import { parseCpus, parseDuration, parseMemory, parsePairs } from '../run/values.js';
import { bool, list, str, type FlagDef, type Parsed } from './_args.js';

export const RUN_REQUEST_FLAGS: Record<string, FlagDef> = {
  runtime: { type: 'string', valueHint: 'name', description: 'python3.11 (default for .py), python3.12, python3.10 or node20 (default for .js)' },
  env: { type: 'string', multiple: true, valueHint: 'K=V', description: 'Environment variable for the script; a bare K copies your local value' },
  timeout: { type: 'string', valueHint: 'duration', description: 'Stop the script after this long: 90, 90s, 10m, 2h (default 1h)' },
  memory: { type: 'string', valueHint: 'size', description: 'Memory limit: 512m, 2g (default 2g)' },
  cpus: { type: 'string', valueHint: 'n', description: 'CPU limit, fractions allowed (default 1)' },
  metadata: { type: 'string', multiple: true, valueHint: 'K=V', description: 'Label the execution (filter with `rgrid list --metadata`)' },
  pool: { type: 'string', valueHint: 'name', description: 'Runner pool (default "default")' },
  requirements: { type: 'string', valueHint: 'file', description: 'Python packages to install (default: requirements.txt next to the script)' },
  'no-cache': { type: 'boolean', description: 'Rebuild the environment even if a cached one exists' },
  'no-cache-inputs': { type: 'boolean', description: 'Upload every input again, even those already stored' },
  'reuse-results': { type: 'boolean', description: 'Reuse the outputs of an identical earlier successful run instead of running again' },
};

/** The run request as the flags describe it (values checked; usage errors before anything is sent). */
export function runSpecFromArgs(args: Parsed, cwd: string): RunSpec {
  const [script, ...scriptArgs] = args.positionals;
  // parseCommandArgs already requires SCRIPT; this keeps the type honest.
  if (!script) throw usageError('Missing SCRIPT');
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
  return {
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
    requirementsFile: str(args, 'requirements'),
    cache: { noCache: bool(args, 'no-cache'), forceUpload: bool(args, 'no-cache-inputs'), reuseResults: bool(args, 'reuse-results') },
  };
}
