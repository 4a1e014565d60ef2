/**
 * The execution lifecycle: the one state machine every component follows.
 *
 *   created ──reuse (identical earlier result)──▶ succeeded
 *   created ──submit──▶ queued ──claim──▶ running ──complete──▶ succeeded | failed
 *      │                  ▲  │                │ │
 *      │                  │  └──cancel──┐     │ └──lease expired (attempts left)──▶ queued
 *      └──cancel──────────┼─────────────┴─────┴──cancel / fail──▶ canceled | failed
 *
 * - created: declared, inputs may still be uploading. Nothing runs before submit.
 * - queued: inputs verified, waiting in the pool's dispatcher for a runner.
 * - running: leased to a runner for one attempt (attempt number + deadline).
 * - succeeded / failed / canceled: final. A failed execution carries a failure kind.
 *
 * Users see an outcome; only the engine moves states, and only through `transition`.
 */
import { z } from 'zod';

export const EXECUTION_STATES = ['created', 'queued', 'running', 'succeeded', 'failed', 'canceled'] as const;
export const ExecutionState = z.enum(EXECUTION_STATES);
export type ExecutionState = z.infer<typeof ExecutionState>;

export const FAILURE_KINDS = [
  'script_error',
  'timeout',
  'oom',
  'build_failed',
  'input_error',
  'runner_lost',
  'canceled',
  'internal',
] as const;
export const FailureKind = z.enum(FAILURE_KINDS);
export type FailureKind = z.infer<typeof FailureKind>;

export type LifecycleEvent =
  | { type: 'submit' }
  | { type: 'claim' }
  | { type: 'lease_expired'; attemptsLeft: boolean }
  | { type: 'complete'; outcome: 'succeeded' }
  | { type: 'complete'; outcome: 'failed'; failureKind: FailureKind }
  | { type: 'cancel' }
  | { type: 'fail'; failureKind: FailureKind }
  /** Result reuse: an identical earlier execution succeeded; its outputs stand in, nothing runs. */
  | { type: 'reuse' };

export type TransitionResult =
  | { ok: true; state: ExecutionState; failureKind?: FailureKind }
  | { ok: false; reason: string };

export function isFinal(state: ExecutionState): boolean {
  return state === 'succeeded' || state === 'failed' || state === 'canceled';
}

export function assertNever(value: never): never {
  throw new Error(`unexpected value: ${JSON.stringify(value)}`);
}

function refuse(state: ExecutionState, event: LifecycleEvent): TransitionResult {
  return { ok: false, reason: `cannot ${event.type.replace('_', ' ')} an execution that is ${state}` };
}

/** The only place where an execution's state changes. */
export function transition(state: ExecutionState, event: LifecycleEvent): TransitionResult {
  if (isFinal(state)) return refuse(state, event);
  switch (event.type) {
    case 'submit':
      return state === 'created' ? { ok: true, state: 'queued' } : refuse(state, event);
    case 'claim':
      return state === 'queued' ? { ok: true, state: 'running' } : refuse(state, event);
    case 'lease_expired':
      if (state !== 'running') return refuse(state, event);
      return event.attemptsLeft ? { ok: true, state: 'queued' } : { ok: true, state: 'failed', failureKind: 'runner_lost' };
    case 'complete':
      if (state !== 'running') return refuse(state, event);
      if (event.outcome === 'succeeded') return { ok: true, state: 'succeeded' };
      // A runner reporting "canceled" ends in the canceled state, not failed.
      return event.failureKind === 'canceled'
        ? { ok: true, state: 'canceled', failureKind: 'canceled' }
        : { ok: true, state: 'failed', failureKind: event.failureKind };
    case 'cancel':
      return { ok: true, state: 'canceled', failureKind: 'canceled' };
    case 'reuse':
      return state === 'created' ? { ok: true, state: 'succeeded' } : refuse(state, event);
    case 'fail':
      return event.failureKind === 'canceled'
        ? { ok: true, state: 'canceled', failureKind: 'canceled' }
        : { ok: true, state: 'failed', failureKind: event.failureKind };
    default:
      return assertNever(event);
  }
}

/** How an outcome reads to a user, and the exit code the CLI ends with. */
export interface OutcomeDescription {
  summary: string;
  exitCode: number;
}

/** CLI exit codes for outcomes that are not the script's own exit code. Documented in docs/cli.md. */
export const EXIT_CODES = {
  usage: 2,
  timeout: 124,
  oom: 137,
  canceled: 130,
  build_failed: 78,
  input_error: 66,
  runner_lost: 75,
  internal: 70,
} as const;

export function describeFailure(kind: FailureKind, exitCode: number | null): OutcomeDescription {
  switch (kind) {
    case 'script_error':
      return { summary: `Script exited with code ${exitCode ?? 'unknown'}`, exitCode: exitCode && exitCode > 0 && exitCode < 256 ? exitCode : 1 };
    case 'timeout':
      return { summary: 'Script ran past its timeout and was stopped (raise it with --timeout)', exitCode: EXIT_CODES.timeout };
    case 'oom':
      return { summary: 'Script ran out of memory and was killed (raise it with --memory)', exitCode: EXIT_CODES.oom };
    case 'build_failed':
      return { summary: 'The environment could not be built (see the build log for pip\'s error)', exitCode: EXIT_CODES.build_failed };
    case 'input_error':
      return { summary: 'An input file could not be fetched or verified', exitCode: EXIT_CODES.input_error };
    case 'runner_lost':
      return { summary: 'The runner stopped responding on every attempt', exitCode: EXIT_CODES.runner_lost };
    case 'canceled':
      return { summary: 'Execution was canceled', exitCode: EXIT_CODES.canceled };
    case 'internal':
      return { summary: 'Internal error in RGrid (not caused by your script)', exitCode: EXIT_CODES.internal };
    default:
      return assertNever(kind);
  }
}
