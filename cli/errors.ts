/**
 * One error format for every command: what went wrong, then what to do next. The stack trace is
 * printed only with --verbose. Exit codes are documented in docs/cli.md; outcomes of executions
 * (timeout, oom, ...) use EXIT_CODES from shared/lifecycle.ts, the CLI's own failures these.
 */
import { EXIT_CODES } from '../shared/lifecycle.js';
import { ApiError, NetworkError, ResponseError } from './api/http.js';
import { dim, note, red } from './ui.js';

export const CLI_EXIT = {
  /** Any failure not listed below. */
  error: 1,
  /** Bad flags, bad values, missing files: nothing was sent. */
  usage: EXIT_CODES.usage,
  /** Ctrl+C: the CLI stopped waiting (a submitted execution keeps running). */
  interrupted: 130,
  /** The control plane (or object store) could not be reached. */
  unavailable: 69,
  /** No API key configured, or the control plane refused it. */
  auth: 77,
} as const;

export class CliError extends Error {
  readonly hint: string | undefined;
  readonly exitCode: number;

  constructor(message: string, opts: { hint?: string; exitCode?: number; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'CliError';
    this.hint = opts.hint;
    this.exitCode = opts.exitCode ?? CLI_EXIT.error;
  }
}

export function usageError(message: string, hint?: string): CliError {
  return new CliError(message, { hint, exitCode: CLI_EXIT.usage });
}

/** Maps any thrown value to a CliError with a message a user can act on. */
export function toCliError(err: unknown): CliError {
  if (err instanceof CliError) return err;
  if (err instanceof ApiError) {
    if (err.status === 401) {
      return new CliError(`The control plane refused the API key: ${err.message}`, {
        hint: err.hint ?? 'Run `rgrid login --api-url URL --api-key KEY` (or restart `rgrid dev`, which writes a working config).',
        exitCode: CLI_EXIT.auth,
        cause: err,
      });
    }
    const usage = err.status === 400 || err.status === 413 || err.status === 422;
    return new CliError(err.message, { hint: err.hint, exitCode: usage ? CLI_EXIT.usage : CLI_EXIT.error, cause: err });
  }
  if (err instanceof NetworkError) {
    return new CliError(err.message, {
      hint: err.hint,
      exitCode: CLI_EXIT.unavailable,
      cause: err,
    });
  }
  if (err instanceof ResponseError) {
    return new CliError(err.message, { hint: 'Check that --api-url points at an RGrid control plane of the same version as this CLI.', cause: err });
  }
  const e = err instanceof Error ? err : new Error(String(err));
  return new CliError(`Unexpected error: ${e.message}`, {
    hint: 'Run again with --verbose for details; if it persists, report it with that output.',
    cause: e,
  });
}

export function printError(err: CliError, verbose: boolean): void {
  note(`${red('Error:')} ${err.message}`);
  if (err.hint) note(`  ${err.hint}`);
  if (verbose) {
    const origin = err.cause instanceof Error ? err.cause : err;
    if (origin.stack) note(dim(origin.stack));
  }
}
