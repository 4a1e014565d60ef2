/**
 * Everything `rgrid run` does before the first request: validate the script, requirements.txt,
 * flags and input files, and hash them (streamed). A mistake found here costs nothing remote.
 */
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { CreateExecutionRequest, ScriptRef, type Limits } from '../../shared/api/executions.js';
import { formatRequirementProblems, parseRequirements } from '../../shared/requirements.js';
import { CliError, usageError } from '../errors.js';
import { sha256File } from '../transfer/hash.js';
import { mapLimit } from '../transfer/parallel.js';
import type { LocalBlob } from '../transfer/upload.js';
import { detectInputs, type DetectedInput } from './inputs.js';
import { resolveRuntime } from './values.js';

export interface RunSpec {
  /** The script as the user named it. */
  script: string;
  args: string[];
  /** Arguments from this index on came after `--` (no file detection). */
  verbatimFrom: number;
  runtime?: string;
  env: Record<string, string>;
  metadata: Record<string, string>;
  limits: Partial<Limits>;
  pool?: string;
  cwd: string;
}

export interface PreparedRun {
  body: CreateExecutionRequest;
  /** Local files by sha256, for the uploads the server asks for. */
  blobs: Map<string, LocalBlob>;
  inputs: DetectedInput[];
  /** Number of requirements when a requirements.txt was found next to the script. */
  requirements?: { path: string; count: number };
}

const MAX_SCRIPT_BYTES = 10 * 1024 * 1024;
const MAX_REQUIREMENTS_BYTES = 64 * 1024;
/** S3's largest single PUT; larger files need multipart uploads, which this CLI does not do yet. */
const MAX_SINGLE_PUT_BYTES = 5 * 1024 ** 3;

async function fileInfo(path: string, given: string) {
  try {
    return await stat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') {
      throw usageError(`File not found: ${given}`, 'Check the path to the script (relative paths start from the current directory).');
    }
    throw err;
  }
}

async function readRequirements(scriptPath: string): Promise<{ path: string; text: string; count: number } | undefined> {
  const path = join(dirname(scriptPath), 'requirements.txt');
  let text: string;
  try {
    const info = await stat(path);
    if (!info.isFile()) return undefined;
    if (info.size > MAX_REQUIREMENTS_BYTES) throw usageError(`${path} is larger than 64 KB`, 'List only the packages the script imports.');
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const parsed = parseRequirements(text);
  if (!parsed.ok) {
    throw usageError(`${path} has lines that cannot be used:\n${formatRequirementProblems(parsed.problems)}`, 'List packages as names with optional versions (e.g. numpy==1.26.4); package sources are set by the runner operator.');
  }
  return { path, text, count: parsed.requirements.length };
}

export async function prepareRun(spec: RunSpec): Promise<PreparedRun> {
  const scriptPath = resolve(spec.cwd, spec.script);
  const info = await fileInfo(scriptPath, spec.script);
  if (!info.isFile()) throw usageError(`${spec.script} is not a file`, 'Name the script to run, e.g. `rgrid run analyze.py data.csv`.');
  if (info.size > MAX_SCRIPT_BYTES) throw usageError(`${spec.script} is larger than 10 MB`, 'Scripts are code; pass data files as arguments instead.');
  const name = basename(scriptPath);
  if (!ScriptRef.shape.name.safeParse(name).success) throw usageError(`The script's file name "${name}" contains characters that are not allowed`, 'Rename it.');
  const runtime = resolveRuntime(spec.runtime, name);

  const requirements = runtime.startsWith('python') ? await readRequirements(scriptPath) : undefined;
  const inputs = await detectInputs(spec.args, { cwd: spec.cwd, reserved: [name], verbatimFrom: spec.verbatimFrom });

  for (const i of inputs) {
    const size = (await stat(i.localPath)).size;
    if (size > MAX_SINGLE_PUT_BYTES) {
      throw usageError(`${i.given} is larger than 5 GB, which this version of the CLI cannot upload`, 'Split the file, or pass a smaller one; multipart uploads are planned.');
    }
  }

  // Hash the script and every distinct input file, a few at a time.
  const files = [{ path: scriptPath, label: spec.script }, ...inputs.map((i) => ({ path: i.localPath, label: i.given }))];
  const distinct = [...new Map(files.map((f) => [f.path, f])).values()];
  const digests = new Map<string, { sha256: string; size: number }>();
  await mapLimit(distinct, 4, async (f) => {
    try {
      digests.set(f.path, await sha256File(f.path));
    } catch (err) {
      throw new CliError(`Cannot read ${f.label}: ${(err as Error).message}`, { hint: 'Check that the file is readable.' });
    }
  });
  const blobs = new Map<string, LocalBlob>();
  for (const f of distinct) {
    const d = digests.get(f.path)!;
    if (!blobs.has(d.sha256)) blobs.set(d.sha256, { ...d, path: f.path, label: f.label });
  }

  const script = digests.get(scriptPath)!;
  const body: CreateExecutionRequest = {
    runtime,
    script: { name, sha256: script.sha256, size: script.size },
    ...(requirements ? { requirements: requirements.text } : {}),
    inputs: inputs.map((i) => ({ path: i.remotePath, ...digests.get(i.localPath)!, arg: i.arg })),
    args: spec.args,
    env: spec.env,
    ...(Object.keys(spec.limits).length ? { limits: spec.limits as Limits } : {}),
    metadata: spec.metadata,
    ...(spec.pool ? { pool: spec.pool } : {}),
    autoSubmit: true,
  };
  // The server checks this too; checking here turns a 400 into a usage error before any upload.
  const checked = CreateExecutionRequest.safeParse(body);
  if (!checked.success) {
    const issue = checked.error.issues[0]!;
    throw usageError(`Invalid run request: ${issue.path.join('.')}: ${issue.message}`, '`rgrid run --help` lists the options and their limits.');
  }
  return { body, blobs, inputs, ...(requirements ? { requirements: { path: requirements.path, count: requirements.count } } : {}) };
}
