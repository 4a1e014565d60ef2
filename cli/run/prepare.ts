/**
 * Everything `rgrid run` does before the first request: validate the script, requirements.txt,
 * flags and input files, and hash them (streamed). A mistake found here costs nothing remote.
 */
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { CreateExecutionRequest, ScriptRef, type Limits } from '../../shared/api/executions.js';
import { parseRequirements, type RequirementProblem } from '../../shared/requirements.js';
import { CliError, usageError } from '../errors.js';
import { displayPath } from '../transfer/download.js';
import { encodingFor } from '../transfer/encoding.js';
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
  /** --requirements FILE; default: requirements.txt next to the script (Python runtimes). */
  requirementsFile?: string;
  /** --no-cache, --no-cache-inputs, --reuse-results. */
  cache?: { noCache?: boolean; forceUpload?: boolean; reuseResults?: boolean };
}

export interface PreparedRun {
  body: CreateExecutionRequest;
  /** Local files by sha256, for the uploads the server asks for. */
  blobs: Map<string, LocalBlob>;
  inputs: DetectedInput[];
  /** The requirements file that was found (or given) and validated. */
  requirements?: { path: string; display: string; count: number };
}

const MAX_SCRIPT_BYTES = 10 * 1024 * 1024;
const MAX_REQUIREMENTS_BYTES = 64 * 1024;

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

/** Each refused line quoted, with the reason under it. */
export function formatRefusedLines(problems: RequirementProblem[]): string {
  return problems.map((p) => `  line ${p.line}: "${p.text}"\n    ${p.reason}`).join('\n');
}

/**
 * Reads and validates the requirements: `given` (--requirements) must exist; otherwise
 * requirements.txt next to the script is used when there is one. Only specifiers and comments
 * pass: a refused line is a usage error quoting it, before anything is sent.
 */
async function readRequirements(scriptPath: string, cwd: string, given?: string): Promise<{ path: string; display: string; text: string; count: number } | undefined> {
  const path = given !== undefined ? resolve(cwd, given) : join(dirname(scriptPath), 'requirements.txt');
  // Errors name the file as the user can find it; the "Detected …" line says requirements.txt.
  const display = given ?? displayPath(path, cwd);
  let text: string;
  try {
    const info = await stat(path);
    if (!info.isFile()) {
      if (given === undefined) return undefined;
      throw usageError(`${given} is not a file`, 'Pass a requirements file to --requirements.');
    }
    if (info.size > MAX_REQUIREMENTS_BYTES) throw usageError(`${display} is larger than 64 KB`, 'List only the packages the script imports.');
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') {
      if (given === undefined) return undefined;
      throw usageError(`Requirements file not found: ${given}`, 'Check the path given to --requirements (relative paths start from the current directory).');
    }
    throw err;
  }
  const parsed = parseRequirements(text);
  if (!parsed.ok) {
    const n = parsed.problems.length;
    throw usageError(
      `${display} has ${n === 1 ? 'a line' : `${n} lines`} that cannot be used:\n${formatRefusedLines(parsed.problems)}`,
      'List packages as names with optional versions (e.g. numpy==1.26.4); package sources are set by the runner operator. Nothing was sent.',
    );
  }
  return { path, display: given ?? 'requirements.txt', text, count: parsed.requirements.length };
}

export async function prepareRun(spec: RunSpec): Promise<PreparedRun> {
  const scriptPath = resolve(spec.cwd, spec.script);
  const info = await fileInfo(scriptPath, spec.script);
  if (!info.isFile()) throw usageError(`${spec.script} is not a file`, 'Name the script to run, e.g. `rgrid run analyze.py data.csv`.');
  if (info.size > MAX_SCRIPT_BYTES) throw usageError(`${spec.script} is larger than 10 MB`, 'Scripts are code; pass data files as arguments instead.');
  const name = basename(scriptPath);
  if (!ScriptRef.shape.name.safeParse(name).success) throw usageError(`The script's file name "${name}" contains characters that are not allowed`, 'Rename it.');
  const runtime = resolveRuntime(spec.runtime, name);

  if (spec.requirementsFile !== undefined && !runtime.startsWith('python')) {
    throw usageError(`--requirements is for Python runtimes; ${runtime} has no requirements`, 'Drop --requirements, or pick a Python --runtime.');
  }
  const requirements = runtime.startsWith('python') ? await readRequirements(scriptPath, spec.cwd, spec.requirementsFile) : undefined;
  const inputs = await detectInputs(spec.args, { cwd: spec.cwd, reserved: [name], verbatimFrom: spec.verbatimFrom });

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
  const script = digests.get(scriptPath)!;
  // One encoding per blob (the first file with that content decides; every input with the same
  // content declares it). The script's blob is never compressed: runners fetch scripts as is.
  const blobs = new Map<string, LocalBlob>();
  for (const f of distinct) {
    const d = digests.get(f.path)!;
    if (blobs.has(d.sha256)) continue;
    const encoding = d.sha256 === script.sha256 ? 'identity' : encodingFor(f.path, d.size);
    blobs.set(d.sha256, { ...d, path: f.path, label: f.label, encoding });
  }

  const body: CreateExecutionRequest = {
    runtime,
    script: { name, sha256: script.sha256, size: script.size },
    ...(requirements ? { requirements: requirements.text } : {}),
    inputs: inputs.map((i) => {
      const d = digests.get(i.localPath)!;
      return { path: i.remotePath, ...d, arg: i.arg, ...(blobs.get(d.sha256)!.encoding === 'gzip' ? { encoding: 'gzip' as const } : {}) };
    }),
    args: spec.args,
    env: spec.env,
    ...(Object.keys(spec.limits).length ? { limits: spec.limits as Limits } : {}),
    metadata: spec.metadata,
    ...(spec.pool ? { pool: spec.pool } : {}),
    autoSubmit: true,
    ...(spec.cache?.reuseResults ? { reuseResults: true } : {}),
    ...(spec.cache?.forceUpload ? { forceUpload: true } : {}),
    ...(spec.cache?.noCache ? { noCache: true } : {}),
  };
  // The server checks this too; checking here turns a 400 into a usage error before any upload.
  const checked = CreateExecutionRequest.safeParse(body);
  if (!checked.success) {
    const issue = checked.error.issues[0]!;
    throw usageError(`Invalid run request: ${issue.path.join('.')}: ${issue.message}`, '`rgrid run --help` lists the options and their limits.');
  }
  return { body, blobs, inputs, ...(requirements ? { requirements: { path: requirements.path, display: requirements.display, count: requirements.count } } : {}) };
}
