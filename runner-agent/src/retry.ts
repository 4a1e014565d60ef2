/**
 * Retry policy (STYLE.md #2): only network errors, 429 and 5xx are retried, with exponential
 * backoff and full jitter, within a time budget the caller states. Everything else (4xx, and
 * 409 stale_attempt above all) is final at once.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiCallError } from './api.js';

export interface RetryOptions {
  /** Give up after this long (ms) of failures. */
  budgetMs: number;
  baseMs?: number;
  maxMs?: number;
  signal?: AbortSignal;
  /** Which errors are worth another try; isRetryable (API calls) unless stated. */
  retryIf?: (err: unknown) => boolean;
  onRetry?: (err: unknown, delayMs: number) => void;
}

/** Exponential backoff with full jitter: the delay before retry number `attempt` (0-based). */
export function backoffDelay(attempt: number, baseMs = 250, maxMs = 5000): number {
  return Math.round(Math.random() * Math.min(maxMs, baseMs * 2 ** attempt));
}

export function isRetryable(err: unknown): boolean {
  if (err instanceof ApiCallError) return err.status === 429 || err.status >= 500;
  if (err instanceof Error && err.name === 'AbortError') return false;
  // fetch failures (ECONNREFUSED, reset, DNS) surface as TypeError "fetch failed".
  return err instanceof TypeError || (err instanceof Error && 'code' in err);
}

export async function withRetry<T>(fn: () => Promise<T>, opts: RetryOptions): Promise<T> {
  const start = Date.now();
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!(opts.retryIf ?? isRetryable)(err) || opts.signal?.aborted) throw err;
      const delay = backoffDelay(attempt, opts.baseMs, opts.maxMs);
      if (Date.now() - start + delay > opts.budgetMs) throw err;
      opts.onRetry?.(err, delay);
      await sleep(delay, undefined, opts.signal ? { signal: opts.signal } : undefined).catch(() => undefined);
      if (opts.signal?.aborted) throw err;
    }
  }
}
