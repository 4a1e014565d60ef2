/**
 * What an execution's end means for the user: one line, and the exit code the CLI ends with.
 * The script's own exit code when the script failed; the codes of shared/lifecycle.ts otherwise.
 */
import type { Execution } from '../../shared/api/executions.js';
import { EXIT_CODES, describeFailure, isFinal } from '../../shared/lifecycle.js';
import { formatDuration } from '../ui.js';

export interface Outcome {
  ok: boolean;
  exitCode: number;
  summary: string;
}

export function durationMs(e: Execution): number | undefined {
  if (!e.startedAt || !e.finishedAt) return undefined;
  return Date.parse(e.finishedAt) - Date.parse(e.startedAt);
}

export function outcomeOf(e: Execution): Outcome {
  if (!isFinal(e.status)) return { ok: false, exitCode: 0, summary: `Execution is ${e.status}` };
  if (e.status === 'succeeded') {
    const ms = durationMs(e);
    return { ok: true, exitCode: 0, summary: `Succeeded${ms === undefined ? '' : ` in ${formatDuration(ms)}`}` };
  }
  if (e.status === 'canceled') return { ok: false, exitCode: EXIT_CODES.canceled, summary: 'Execution was canceled' };
  const d = describeFailure(e.failureKind ?? 'internal', e.exitCode);
  // The runner's message adds what the kind alone cannot say (which package failed to build...).
  const detail = e.message && e.failureKind !== 'script_error' ? `: ${e.message}` : '';
  return { ok: false, exitCode: d.exitCode, summary: d.summary + detail };
}
