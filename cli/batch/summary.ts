/**
 * How a batch ended, for people and for scripts: the summary line (`95 succeeded, 5 failed`),
 * one line per failed input (its failure kind and message), `batch_failures.txt` next to the
 * output folders, and the exit code.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BatchFailure, BatchSnapshot } from '../../shared/api/batches.js';
import { describeFailure } from '../../shared/lifecycle.js';
import { FAILURES_FILE } from './layout.js';

export { FAILURES_FILE };

/** "Script exited with code 3", "timed out after 60s", ...: the runner's message when it has one. */
export function failureMessage(f: BatchFailure): string {
  if (f.status === 'canceled') return f.message ?? 'canceled';
  if (f.message) return f.message;
  return describeFailure(f.failureKind ?? 'internal', f.exitCode).summary;
}

export function failureKind(f: BatchFailure): string {
  return f.status === 'canceled' ? 'canceled' : (f.failureKind ?? 'internal');
}

/**
 * `95 succeeded, 5 failed` (and `, 3 canceled` / `, 2 not finished` when there are any; with
 * --reuse-results, `990 succeeded (980 reused earlier results, nothing ran), 0 failed`).
 */
export function summaryLine(s: BatchSnapshot): string {
  const c = s.counts;
  const parts = [`${c.succeeded} succeeded${c.reused ? ` (${c.reused} reused earlier results, nothing ran)` : ''}`, `${c.failed} failed`];
  if (c.canceled) parts.push(`${c.canceled} canceled`);
  const open = c.created + c.queued + c.running;
  if (open) parts.push(`${open} not finished`);
  return parts.join(', ');
}

/**
 * One line per failed (✗) or canceled (⊘) input:
 * `  ✗ data/x.csv  script_error: script exited with code 3  (exec_…)`.
 */
export function failureLines(failures: readonly BatchFailure[]): string[] {
  const width = Math.min(60, Math.max(0, ...failures.map((f) => f.inputName.length)));
  return failures.map((f) => `  ${f.status === 'canceled' ? '⊘' : '✗'} ${f.inputName.padEnd(width)}  ${failureKind(f)}: ${failureMessage(f)}  (${f.executionId})`);
}

/** Tab-separated: a header comment, then `execution_id  input  kind  message` per failure. */
export function failuresFileText(s: BatchSnapshot, now = new Date()): string {
  const clean = (v: string) => v.replace(/[\t\r\n]+/g, ' ');
  const lines = [
    `# rgrid batch ${s.id}: ${s.failures.length} of ${s.counts.total} inputs did not succeed (written ${now.toISOString()})`,
    `# Retry them: rgrid retry --batch ${s.id}`,
    ['execution_id', 'input', 'kind', 'message'].join('\t'),
    ...s.failures.map((f) => [f.executionId, clean(f.inputName), failureKind(f), clean(failureMessage(f))].join('\t')),
  ];
  return lines.join('\n') + '\n';
}

/**
 * Writes (or, once nothing failed any more, removes) `<dir>/batch_failures.txt`. Our own earlier
 * file is replaced; a file of that name that rgrid did not write is left alone.
 */
export async function writeFailuresFile(dir: string, s: BatchSnapshot): Promise<string | undefined> {
  const path = join(dir, FAILURES_FILE);
  let existing: string | undefined;
  try {
    existing = await readFile(path, 'utf8');
  } catch {
    existing = undefined;
  }
  if (existing !== undefined && !existing.startsWith('# rgrid batch ')) return undefined;
  if (!s.failures.length) {
    if (existing !== undefined) await rm(path, { force: true });
    return undefined;
  }
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.${FAILURES_FILE}.${randomBytes(4).toString('hex')}`);
  await writeFile(tmp, failuresFileText(s));
  await rename(tmp, path);
  return path;
}

/**
 * 0 when at least one input succeeded and the batch ran to its end; 1 when every input failed,
 * or when it was cut short (--fail-fast after a failure, or `rgrid cancel`): a script chaining
 * `rgrid run --batch … --fail-fast && next-step` must not go on.
 */
export function batchExitCode(s: BatchSnapshot): number {
  if (s.counts.succeeded === 0) return 1;
  if (s.counts.canceled > 0) return 1;
  return 0;
}
