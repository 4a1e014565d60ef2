import { describe, expect, it } from 'vitest';
import { ApiCallError, isAttemptOver } from './api.js';
import { isRetryable, withRetry } from './retry.js';

describe('retry policy', () => {
  it('retries network errors, 429 and 5xx, and nothing else', () => {
    expect(isRetryable(new TypeError('fetch failed'))).toBe(true);
    expect(isRetryable(new ApiCallError(503, 'unavailable', 'x'))).toBe(true);
    expect(isRetryable(new ApiCallError(429, 'rate_limited', 'x'))).toBe(true);
    expect(isRetryable(new ApiCallError(409, 'stale_attempt', 'x'))).toBe(false);
    expect(isRetryable(new ApiCallError(400, 'bad_request', 'x'))).toBe(false);
    expect(isAttemptOver(new ApiCallError(409, 'stale_attempt', 'x'))).toBe(true);
  });

  it('succeeds after transient failures and gives up on a final error at once', async () => {
    let calls = 0;
    const v = await withRetry(async () => {
      if (++calls < 3) throw new ApiCallError(502, 'internal', 'bad gateway');
      return 'ok';
    }, { budgetMs: 5000, baseMs: 1 });
    expect(v).toBe('ok');
    expect(calls).toBe(3);

    calls = 0;
    await expect(withRetry(async () => {
      calls++;
      throw new ApiCallError(409, 'stale_attempt', 'gone');
    }, { budgetMs: 5000, baseMs: 1 })).rejects.toThrow('gone');
    expect(calls).toBe(1);
  });

  it('stops when the budget is spent', async () => {
    let calls = 0;
    await expect(withRetry(async () => {
      calls++;
      throw new TypeError('fetch failed');
    }, { budgetMs: 50, baseMs: 10, maxMs: 20 })).rejects.toThrow('fetch failed');
    expect(calls).toBeGreaterThan(1);
  });

  it('retries only what retryIf accepts when the caller states it', async () => {
    let calls = 0;
    const fail = (err: Error) => withRetry(async () => {
      calls++;
      throw err;
    }, { budgetMs: 5000, baseMs: 1, maxMs: 2, retryIf: (e) => (e as Error).message === 'again' });
    await expect(fail(Object.assign(new Error('EEXIST'), { code: 'EEXIST' }))).rejects.toThrow('EEXIST');
    expect(calls).toBe(1); // isRetryable would have taken any error with a code
    calls = 0;
    let n = 0;
    const v = await withRetry(async () => {
      if (++n < 3) throw new Error('again');
      return 'done';
    }, { budgetMs: 5000, baseMs: 1, retryIf: (e) => (e as Error).message === 'again' });
    expect([v, n]).toEqual(['done', 3]);
  });
});
