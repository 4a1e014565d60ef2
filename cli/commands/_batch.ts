/**
 * Argument fragments of the batch commands, and the `--batch` branch of `rgrid run` (kept here so
 * run.ts only hands over when --batch is given). The work itself is in cli/batch/.
 */
import { existsSync } from 'node:fs';
import { dirname, extname } from 'node:path';
import { isId } from '../../shared/ids.js';
import { CliError, usageError } from '../errors.js';
import { expandGlobs, hasMagic } from '../batch/glob.js';
import { planBatch } from '../batch/plan.js';
import { runBatch, type BatchOutputOptions, type BatchResult } from '../batch/run.js';
import type { PreparedRun } from '../run/prepare.js';
import { parsePositiveInt } from '../run/values.js';
import { log } from '../ui.js';
import { bool, list, str, type FlagDef, type Parsed } from './_args.js';
import { apiContext, printJson } from './_shared.js';

/** Where batch outputs go: shared by run --batch, retry --batch and download batch_…. */
export const BATCH_OUTPUT_FLAGS: Record<string, FlagDef> = {
  flat: { type: 'boolean', description: 'Batches: put every output in one folder instead of one folder per input (taken names become x (1).csv)' },
};

/** The flags `rgrid run` gains for batches. */
export const BATCH_FLAGS: Record<string, FlagDef> = {
  batch: { type: 'string', multiple: true, valueHint: 'glob', description: "Run once per matching file, e.g. --batch 'data/*.csv' (quote it); the file is the last argument, or replaces {}" },
  parallel: { type: 'string', valueHint: 'n', description: 'Batches: at most N executions at once across all runners' },
  'fail-fast': { type: 'boolean', description: 'Batches: cancel the rest after the first failure' },
  ...BATCH_OUTPUT_FLAGS,
};

const BATCH_ONLY = ['parallel', 'fail-fast', 'flat'];

/** Whether `rgrid run` was asked for a batch (or given batch-only flags, which need --batch). */
export function wantsBatch(args: Parsed): boolean {
  return list(args, 'batch').length > 0 || BATCH_ONLY.some((f) => args.flags[f] !== undefined);
}

/** Validates a batch id argument before any request. */
export function batchIdArg(raw: string | undefined): string {
  if (!raw || !isId('batch', raw)) throw usageError(`"${raw ?? ''}" is not a batch id`, 'Batch ids look like batch_ followed by 24 letters and digits; `rgrid list --batches` shows yours.');
  return raw;
}

export function outputOptions(args: Parsed, cwd: string): BatchOutputOptions {
  return { cwd, outputDir: str(args, 'output-dir'), flat: bool(args, 'flat'), remoteOnly: bool(args, 'remote-only'), json: bool(args, 'json') };
}

/** A --batch value the shell already expanded (`--batch data/*.csv` unquoted) leaves siblings among the arguments. */
function warnIfShellExpanded(patterns: string[], scriptArgs: string[]): void {
  for (const p of patterns) {
    if (hasMagic(p)) continue;
    const sibling = scriptArgs.find((a) => a !== p && dirname(a) === dirname(p) && extname(a) === extname(p) && existsSync(a));
    if (sibling) {
      log.warn(`--batch ${p} has no wildcard, and ${sibling} from the same folder is an argument: did the shell expand the pattern? Quote it: --batch '${dirname(p)}/*${extname(p)}'`);
      return;
    }
  }
}

export function printBatchResult(result: BatchResult, json: boolean): number {
  if (json) printJson(result);
  return result.exitCode;
}

/** `rgrid run SCRIPT [ARGS] --batch GLOB…`: everything after the shared preparation of `run`. */
export async function runBatchFromArgs(args: Parsed, prepared: PreparedRun, cwd: string): Promise<number> {
  const patterns = list(args, 'batch');
  if (!patterns.length) {
    const given = BATCH_ONLY.find((f) => args.flags[f] !== undefined)!;
    throw usageError(`--${given} applies to batches`, `Add --batch 'GLOB' (e.g. --batch 'data/*.csv') to run once per file.`);
  }
  const rawParallel = str(args, 'parallel');
  const parallel = rawParallel === undefined ? undefined : parsePositiveInt(rawParallel, 'parallel', 10_000);
  warnIfShellExpanded(patterns, prepared.body.args ?? []);
  const { files, unmatched } = await expandGlobs(patterns, cwd);
  if (unmatched.length) {
    throw new CliError(`No files match --batch ${unmatched.map((p) => `'${p}'`).join(', ')}`, {
      hint: `Patterns are relative to the current directory (${cwd}); * does not match hidden files or across folders (use **/ for that).`,
    });
  }
  const script = prepared.body.script.name;
  const plan = await planBatch(prepared, files, cwd, { parallel, failFast: bool(args, 'fail-fast'), name: `${script} ${patterns.join(' ')}` });
  const { client } = await apiContext(args);
  return printBatchResult(await runBatch(client, plan, outputOptions(args, cwd)), bool(args, 'json'));
}
