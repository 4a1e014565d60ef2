/**
 * From `rgrid run SCRIPT [ARGS] --batch GLOB` to a batch request, with no network: the template
 * comes from the prepared single run (script, requirements, flags, the input files named in
 * ARGS, which every item shares), and each matched file becomes one item: the file is uploaded
 * as that item's input and passed as its last argument, or in place of a `{}` argument.
 * Matched files are hashed here, several at a time, so creating the batch needs one request
 * per 1,000 items and uploads only what the server lacks.
 */
import { realpath, stat } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { BatchItem, MAX_BATCH_ITEMS, type CreateBatchRequest } from '../../shared/api/batches.js';
import { RelativePath } from '../../shared/api/common.js';
import type { InputFile } from '../../shared/api/executions.js';
import { LIMITS } from '../../shared/limits.js';
import { CliError, usageError } from '../errors.js';
import type { PreparedRun } from '../run/prepare.js';
import { encodingFor } from '../transfer/encoding.js';
import { sha256File } from '../transfer/hash.js';
import { firstFree } from '../transfer/naming.js';
import { mapLimit } from '../transfer/parallel.js';
import type { LocalBlob } from '../transfer/upload.js';

export const PLACEHOLDER = '{}';

export interface BatchOptions {
  parallel?: number;
  failFast: boolean;
  /** Shown in `rgrid list --batches`. */
  name?: string;
}

export interface BatchPlan {
  /** The create request without items (they are sent in chunks). */
  request: Omit<CreateBatchRequest, 'items'>;
  items: BatchItem[];
  blobs: Map<string, LocalBlob>;
}

/** Where the matched file goes in an item's arguments: the `{}` argument, else appended. */
export function itemArgs(args: readonly string[], file: string): { args: string[]; arg: number } {
  const at = args.indexOf(PLACEHOLDER);
  if (at < 0) return { args: [...args, file], arg: args.length };
  return { args: args.map((a, i) => (i === at ? file : a)), arg: at };
}

/** `{}` must be a whole argument, and there can be one (the runner rewrites one argument per input). */
export function checkPlaceholder(args: readonly string[]): void {
  const whole = args.filter((a) => a === PLACEHOLDER).length;
  if (whole > 1) throw usageError(`{} appears ${whole} times in the arguments`, 'Use {} once: it stands for the batch file of each execution.');
  const inside = args.find((a) => a !== PLACEHOLDER && a.includes(PLACEHOLDER));
  if (inside !== undefined) {
    throw usageError(`{} must be an argument of its own, not part of "${inside}"`, 'Write the file as a separate argument, e.g. `--in {}` instead of `--in={}`.');
  }
}


/**
 * The name an item's input goes by (batch status, failures, output folders): the path as matched,
 * made relative: `data/x.csv` stays, `/srv/data/x.csv` → `srv/data/x.csv`, `../in/x.csv` →
 * `in/x.csv`. Two files that would share a name get the next free variant (`x (1).csv`).
 */
export function inputNameFor(file: string, taken: Set<string>): string {
  const segs = file.split('/').filter((s) => s !== '' && s !== '.' && s !== '..');
  const name = segs.join('/') || basename(file) || 'input';
  const unique = firstFree(name, (c) => taken.has(c));
  taken.add(unique);
  return unique;
}

export async function planBatch(prepared: PreparedRun, files: readonly string[], cwd: string, opts: BatchOptions): Promise<BatchPlan> {
  const body = prepared.body;
  const args = body.args ?? [];
  checkPlaceholder(args);
  if (files.length > MAX_BATCH_ITEMS) throw usageError(`--batch matched ${files.length} files; a batch holds at most ${MAX_BATCH_ITEMS}`, 'Split the inputs over several batches (narrower patterns).');
  if (args.length + (args.includes(PLACEHOLDER) ? 0 : 1) > LIMITS.maxArgs) throw usageError(`Too many arguments; the limit is ${LIMITS.maxArgs} including the batch file`);

  // The same file named twice (a relative and an absolute pattern) is one input.
  const real = await mapLimit(files, 16, (f) => realpath(resolve(cwd, f)));
  const seen = new Set<string>();
  const unique = files.filter((_, i) => !seen.has(real[i]!) && seen.add(real[i]!));

  const shared = body.inputs ?? [];
  const taken = new Set([body.script.name, ...shared.map((i) => i.path)]);
  const digests = new Map<string, { sha256: string; size: number }>();
  await mapLimit(unique, 8, async (file) => {
    const path = resolve(cwd, file);
    const info = await stat(path);
    if (!info.isFile()) return;
    if (info.size > LIMITS.maxFileBytes) throw usageError(`${file} is larger than ${LIMITS.maxFileBytes / 1024 ** 3} GB, the largest input RGrid takes`, 'Split the file, or leave it out of the pattern.');
    try {
      digests.set(file, await sha256File(path));
    } catch (err) {
      throw new CliError(`Cannot read ${file}: ${(err as Error).message}`, { hint: 'Check that the file is readable, or leave it out of the pattern.' });
    }
  });

  const blobs = new Map(prepared.blobs);
  const items: BatchItem[] = [];
  const names = new Set<string>();
  for (const file of unique) {
    const d = digests.get(file);
    if (!d) continue;
    const path = resolve(cwd, file);
    // Each item runs in its own /work: the file keeps its name unless the script or a shared input has it.
    const remote = firstFree(basename(path), (c) => taken.has(c));
    if (!RelativePath.safeParse(remote).success) throw usageError(`Cannot use ${file} as an input: its name contains characters that are not allowed`, 'Rename the file, or leave it out of the pattern.');
    // One encoding per blob, as for `rgrid run`: the first file with that content decides (text is
    // uploaded gzip-compressed), and every input with that content declares it.
    if (!blobs.has(d.sha256)) blobs.set(d.sha256, { ...d, path, label: file, encoding: encodingFor(path, d.size) });
    const gzip = blobs.get(d.sha256)!.encoding === 'gzip';
    const placed = itemArgs(args, file);
    const input: InputFile = { path: remote, sha256: d.sha256, size: d.size, arg: placed.arg, ...(gzip ? { encoding: 'gzip' as const } : {}) };
    const item: BatchItem = { inputName: inputNameFor(file, names), args: placed.args, inputs: [...shared, input], metadata: {} };
    const checked = BatchItem.safeParse(item);
    if (!checked.success) {
      const issue = checked.error.issues[0]!;
      throw usageError(`Invalid batch item for ${file}: ${issue.path.join('.')}: ${issue.message}`, '`rgrid run --help` lists the options and their limits.');
    }
    items.push(item);
  }
  if (!items.length) throw new CliError('--batch matched no files', { hint: 'Check the pattern; quote it so the shell does not expand it.' });

  const request: Omit<CreateBatchRequest, 'items'> = {
    ...(opts.name ? { name: opts.name.slice(0, 200) } : {}),
    template: {
      runtime: body.runtime,
      script: body.script,
      ...(body.requirements !== undefined ? { requirements: body.requirements } : {}),
      env: body.env ?? {},
      ...(body.limits ? { limits: body.limits } : {}),
      ...(body.pool ? { pool: body.pool } : {}),
    },
    ...(opts.parallel !== undefined ? { parallel: opts.parallel } : {}),
    failFast: opts.failFast,
    metadata: body.metadata ?? {},
    // Cache choices of `rgrid run` apply to every item.
    ...(body.reuseResults !== undefined ? { reuseResults: body.reuseResults } : {}),
    ...(body.forceUpload !== undefined ? { forceUpload: body.forceUpload } : {}),
    ...(body.noCache !== undefined ? { noCache: body.noCache } : {}),
  };
  return { request, items, blobs };
}
