import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { errorEnvelope, type ErrorCode } from '../../shared/errors.js';
import { newId } from '../../shared/ids.js';
import { LIMITS } from '../../shared/limits.js';
import type { CompletionResult } from '../../shared/api/runner.js';
import { ApiCallError, isAttemptOver, RunnerApi } from './api.js';
import { CompletionBatcher, type JobCompletion } from './completions.js';

/**
 * A real HTTP server in place of POST /runner/v1/complete. `answer` decides each item's result
 * (by its execution id and how often that id was seen); `hold` keeps requests unanswered until
 * `release()`, so the test controls when a request is in flight; `whole` can fail a request whole.
 */
type Answer = CompletionResult | 'ok';
let server: Server;
let api: RunnerApi;
let requests: JobCompletion[][] = [];
let seen = new Map<string, number>();
let answer: (c: JobCompletion, nth: number) => Answer = () => 'ok';
let whole: ((n: number) => 'reset' | 503 | undefined) | undefined;
let hold = false;
let held: (() => void)[] = [];
let arrivals: (() => void)[] = [];

function respond(res: ServerResponse, completions: JobCompletion[]): void {
  const results = completions.map((c) => {
    const nth = (seen.get(c.executionId) ?? 0) + 1;
    seen.set(c.executionId, nth);
    const a = answer(c, nth);
    return a === 'ok' ? { executionId: c.executionId, ok: true, status: c.outcome, duplicate: nth > 1 } : a;
  });
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ results }));
}

function handle(req: IncomingMessage, res: ServerResponse, body: string): void {
  expect(req.url).toBe('/runner/v1/complete');
  const { completions } = JSON.parse(body) as { completions: JobCompletion[] };
  requests.push(completions);
  arrivals.splice(0).forEach((f) => f());
  const failure = whole?.(requests.length);
  if (failure === 'reset') return void req.socket.destroy();
  if (failure === 503) return void res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify(errorEnvelope('unavailable', 'overloaded')));
  if (hold) held.push(() => respond(res, completions));
  else respond(res, completions);
}

/** Resolves once the server has received `n` requests in all. */
function requestCount(n: number): Promise<void> {
  return new Promise((resolve) => {
    const check = () => (requests.length >= n ? resolve() : arrivals.push(check));
    check();
  });
}

function release(): void {
  hold = false;
  held.splice(0).forEach((f) => f());
}

const refused = (c: JobCompletion, status: number, code: ErrorCode): CompletionResult => ({ executionId: c.executionId, ok: false, status, error: errorEnvelope(code, `${code} for ${c.executionId}`).error });

function completion(shard = 0): JobCompletion {
  return { executionId: newId('execution'), attempt: 1, shard, outcome: 'succeeded', exitCode: 0, outputs: [], logs: [] };
}

/** Fast backoff: the retry paths are under test, not their delays. */
const batcher = (opts: ConstructorParameters<typeof CompletionBatcher>[1] = {}) => new CompletionBatcher(api, { baseMs: 1, maxMs: 5, ...opts });

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c));
    req.on('end', () => handle(req, res, body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  api = new RunnerApi(`http://127.0.0.1:${(server.address() as { port: number }).port}`, 'token');
});
afterAll(() => {
  release();
  server.close();
});
beforeEach(() => {
  requests = [];
  seen = new Map();
  answer = () => 'ok';
  whole = undefined;
  hold = false;
  held = [];
  arrivals = [];
});

describe('CompletionBatcher', () => {
  it('sends a lone completion at once, in the same tick, with its attempt and shard', async () => {
    const calls: JobCompletion[][] = [];
    const spy = new CompletionBatcher({ completeMany: async (cs) => (calls.push(cs), { results: cs.map((c) => ({ executionId: c.executionId, ok: true as const, status: 'succeeded' as const, duplicate: false })) }) });
    const c = completion(5);
    const result = spy.complete(c);
    expect(calls).toEqual([[c]]); // no timer, no microtask between complete() and the request
    await expect(result).resolves.toEqual({ status: 'succeeded', duplicate: false });

    const real = batcher();
    const d = completion(9);
    await expect(real.complete(d)).resolves.toEqual({ status: 'succeeded', duplicate: false });
    expect(requests).toEqual([[expect.objectContaining({ executionId: d.executionId, attempt: 1, shard: 9 })]]);
  });

  it('coalesces: the completions queued while one request is in flight go out together in the next', async () => {
    const b = batcher();
    hold = true;
    const first = completion();
    const p1 = b.complete(first);
    await requestCount(1);
    const queued = Array.from({ length: 5 }, (_, i) => completion(i));
    const ps = queued.map((c) => b.complete(c));
    await new Promise((r) => setTimeout(r, 50));
    expect(requests.length).toBe(1); // nothing more while the first is in flight
    release();
    await Promise.all([p1, ...ps]);
    expect(requests.map((r) => r.map((c) => c.executionId))).toEqual([[first.executionId], queued.map((c) => c.executionId)]);
    expect(requests[1]!.map((c) => c.shard)).toEqual([0, 1, 2, 3, 4]);
  });

  it('never puts more than LIMITS.maxClaimJobs completions, nor more than its byte limit, in one request', async () => {
    const b = batcher();
    hold = true;
    const p0 = b.complete(completion());
    await requestCount(1);
    const many = Array.from({ length: LIMITS.maxClaimJobs + 8 }, () => completion());
    const ps = many.map((c) => b.complete(c));
    release();
    await Promise.all([p0, ...ps]);
    expect(requests.map((r) => r.length)).toEqual([1, LIMITS.maxClaimJobs, 8]);

    requests = [];
    const big = (n: number): JobCompletion => ({ ...completion(), message: 'x'.repeat(n) });
    const small = batcher({ maxRequestBytes: 3000 });
    hold = true;
    const q0 = small.complete(completion());
    await requestCount(1);
    // 1200 + 1200 fit in 3000 bytes; the third starts the next request; one item alone always goes.
    const qs = [big(1200), big(1200), big(1200), big(5000)].map((c) => small.complete(c));
    release();
    await Promise.all([q0, ...qs]);
    expect(requests.map((r) => r.length)).toEqual([1, 2, 1, 1]);
  });

  it('routes each result to its own completion; a 503 item alone is retried', async () => {
    const b = batcher();
    hold = true;
    const blocker = b.complete(completion());
    await requestCount(1);
    const [ok, stale, busy, gone, bad] = Array.from({ length: 5 }, () => completion());
    answer = (c, nth) => {
      if (c.executionId === stale!.executionId) return refused(c, 409, 'stale_attempt');
      if (c.executionId === busy!.executionId && nth === 1) return refused(c, 503, 'unavailable');
      if (c.executionId === gone!.executionId) return refused(c, 410, 'gone');
      if (c.executionId === bad!.executionId) return refused(c, 400, 'bad_request');
      return 'ok';
    };
    const results = [ok, stale, busy, gone, bad].map((c) => b.complete(c!).then((v) => ({ v }), (e: unknown) => ({ e })));
    release();
    await blocker;
    const [rOk, rStale, rBusy, rGone, rBad] = await Promise.all(results);
    expect(rOk).toEqual({ v: { status: 'succeeded', duplicate: false } });
    expect(rBusy).toEqual({ v: { status: 'succeeded', duplicate: true } }); // the 503 item, retried and accepted
    for (const [r, status, code] of [[rStale, 409, 'stale_attempt'], [rGone, 410, 'gone']] as const) {
      const err = (r as { e: unknown }).e;
      expect(err).toBeInstanceOf(ApiCallError);
      expect(err).toMatchObject({ status, code });
      expect(isAttemptOver(err)).toBe(true);
    }
    const badErr = (rBad as { e: unknown }).e;
    expect(badErr).toMatchObject({ status: 400, code: 'bad_request' });
    expect(isAttemptOver(badErr)).toBe(false);
    expect(requests.map((r) => r.map((c) => c.executionId))).toEqual([
      [requests[0]![0]!.executionId],
      [ok, stale, busy, gone, bad].map((c) => c!.executionId),
      [busy!.executionId], // only the 503 item went again
    ]);
  });

  it('a refused 409 conflict is final but not "attempt over"', async () => {
    answer = (c) => refused(c, 409, 'conflict');
    const err = await batcher().complete(completion()).catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 409, code: 'conflict' });
    expect(isAttemptOver(err)).toBe(false);
    expect(requests.length).toBe(1);
  });

  it('a request that fails whole (503, connection reset) is retried with every item in it', async () => {
    for (const failure of [503, 'reset'] as const) {
      requests = [];
      seen = new Map();
      whole = (n) => (n === 2 ? failure : undefined);
      const b = batcher();
      hold = true;
      const blocker = b.complete(completion());
      await requestCount(1);
      const pair = [completion(1), completion(2)];
      const ps = pair.map((c) => b.complete(c));
      release();
      await blocker;
      await expect(Promise.all(ps)).resolves.toEqual([
        { status: 'succeeded', duplicate: false },
        { status: 'succeeded', duplicate: false },
      ]);
      const ids = pair.map((c) => c.executionId);
      expect(requests.slice(1).map((r) => r.map((c) => c.executionId))).toEqual([ids, ids]);
    }
  });

  it('gives up on a retryable item when its budget is spent, with the last error', async () => {
    answer = (c) => refused(c, 503, 'unavailable');
    const t0 = Date.now();
    const err = await batcher({ budgetMs: 200, baseMs: 10, maxMs: 40 }).complete(completion()).catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 503, code: 'unavailable' });
    expect(requests.length).toBeGreaterThan(1);
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it('a final whole-request error (401) fails every item in it at once', async () => {
    const unauthorized = new CompletionBatcher({
      completeMany: async () => {
        throw new ApiCallError(401, 'unauthorized', 'bad token');
      },
    });
    const errs = await Promise.all([completion(), completion()].map((c) => unauthorized.complete(c).catch((e: unknown) => e)));
    for (const e of errs) expect(e).toMatchObject({ status: 401 });
  });
});
