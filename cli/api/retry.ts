/**
 * Retry policy, one layer above the thin API client (STYLE.md #2): only rate limits (429), server
 * errors (5xx) and network errors are retried, with exponential backoff and jitter, and every
 * retry is announced on stderr so a slow command never looks hung. 4xx answers (bad request,
 * conflict, gone...) end the call at once: asking again would get the same answer.
 */
import { ApiError, NetworkError } from './http.js';

export interface RetryPolicy {
  /** Total tries, the first included. */
  tries: number;
  /** First delay; doubles on each retry, capped at maxDelayMs, then jittered to 50-100%. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** Which errors may be retried. */
  retryOn: (err: unknown) => boolean;
}

/** Whether a failure is transient: 429, 5xx, no answer, or an error that says so itself. */
export function isTransient(err: unknown): boolean {
  if (err instanceof ApiError) return err.retryable;
  if (err instanceof NetworkError) return true;
  return typeof err === 'object' && err !== null && (err as { retryable?: unknown }).retryable === true;
}

/** For calls that are safe to repeat: reads, submit, cancel, presigned PUT/GET of blobs. */
export const IDEMPOTENT: RetryPolicy = { tries: 5, baseDelayMs: 500, maxDelayMs: 8_000, retryOn: isTransient };

/** For polling loops that should ride out a restart of the control plane (~1 minute). */
export const PATIENT: RetryPolicy = { tries: 10, baseDelayMs: 500, maxDelayMs: 10_000, retryOn: isTransient };

/**
 * For calls that are not idempotent (create): retried only when the server certainly did not act
 * on the request (it refused to connect, or rate-limited us), never after a timeout or a 5xx.
 */
export const NOT_IDEMPOTENT: RetryPolicy = {
  tries: 5,
  baseDelayMs: 500,
  maxDelayMs: 8_000,
  retryOn: (err) => (err instanceof ApiError && err.status === 429) || (err instanceof NetworkError && err.notSent),
};

export interface RetryHooks {
  /** Told before each wait; the default prints to stderr. */
  onRetry?: (message: string) => void;
  signal?: AbortSignal;
  /** Replaces Math.random (tests). */
  random?: () => number;
}

export function delayFor(policy: RetryPolicy, retry: number, err: unknown, random: () => number = Math.random): number {
  const exp = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (retry - 1));
  const jittered = Math.round(exp * (0.5 + random() * 0.5));
  const retryAfter = err instanceof ApiError && err.retryAfter !== undefined ? Math.min(err.retryAfter, 60) * 1000 : 0;
  return Math.max(jittered, retryAfter);
}

export function describeTransient(err: unknown): string {
  if (err instanceof NetworkError) {
    const m = /\(([^)]+)\)$/.exec(err.message);
    return `control plane unreachable${m ? ` (${m[1]})` : ''}`;
  }
  if (err instanceof ApiError) return err.status === 429 ? 'rate limited by the control plane' : `the server answered ${err.status} (${err.message})`;
  return (err as Error)?.message ?? String(err);
}

function formatDelay(ms: number): string {
  return ms < 950 ? `${(ms / 1000).toFixed(1)}s` : `${Math.round(ms / 1000)}s`;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

const defaultOnRetry = (message: string) => process.stderr.write(message + '\n');

/** Runs `fn`, retrying transient failures per `policy`; the last error is rethrown unchanged. */
export async function withRetry<T>(policy: RetryPolicy, fn: (attempt: number) => Promise<T>, hooks: RetryHooks = {}): Promise<T> {
  const onRetry = hooks.onRetry ?? defaultOnRetry;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= policy.tries || !policy.retryOn(err) || hooks.signal?.aborted) throw err;
      const ms = delayFor(policy, attempt, err, hooks.random);
      onRetry(`Retrying in ${formatDelay(ms)}: ${describeTransient(err)}…`);
      await sleep(ms, hooks.signal);
    }
  }
}
