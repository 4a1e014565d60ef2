/**
 * Completions go out in batches (POST /runner/v1/complete). A finished job hands its completion to
 * the batcher and awaits that item's own result. Whatever is queued is sent whenever no request is
 * in flight: under load, completions that became ready during one request share the next, and a
 * lone completion goes out at once, with no added delay.
 *
 * Per item: accepted → resolved; refused with a retryable status (429, 5xx) → that item alone is
 * retried with backoff within its budget; refused otherwise → rejected with the ApiCallError the
 * single route would have thrown (the caller decides: a 409/410 means the attempt is over). A
 * request that fails whole (network error, timeout, 429/5xx) retries every item in it: the server
 * treats a repeated completion of the same attempt as a duplicate, so resending is safe.
 */
import { isRetryableStatus } from '../../shared/errors.js';
import { LIMITS } from '../../shared/limits.js';
import type { CompletionResult, Completion } from '../../shared/api/runner.js';
import type { ExecutionState } from '../../shared/lifecycle.js';
import { ApiCallError, type Fenced, type RunnerApi } from './api.js';
import { backoffDelay, isRetryable } from './retry.js';

export type JobCompletion = Fenced<Completion>;

export interface Accepted {
  status: ExecutionState;
  duplicate: boolean;
}

export interface CompletionBatcherOptions {
  /** How long one completion may keep failing before its error is final (from its first send). */
  budgetMs?: number;
  /** Backoff between retries of one item: exponential from baseMs up to maxMs, full jitter. */
  baseMs?: number;
  maxMs?: number;
  /**
   * Serialized completions per request. A completion may list thousands of outputs; counting items
   * alone could build a body over the API's 1 MiB limit, and a refused (413) batch fails every item
   * in it (the lesson of F7 in logs.ts). One completion always goes, whatever its size.
   */
  maxRequestBytes?: number;
  log?: (line: string) => void;
}

interface Item {
  completion: JobCompletion;
  bytes: number;
  /** When it was first sent: its retry budget counts from there. */
  firstSentAt: number | undefined;
  tries: number;
  /** Not sent again before this (backoff after a retryable failure). */
  notBefore: number;
  resolve(accepted: Accepted): void;
  reject(err: unknown): void;
}

export class CompletionBatcher {
  private readonly queue: Item[] = [];
  private inFlight = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly budgetMs: number;
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly maxRequestBytes: number;
  private readonly log: (line: string) => void;

  constructor(
    private readonly api: Pick<RunnerApi, 'completeMany'>,
    opts: CompletionBatcherOptions = {},
  ) {
    this.budgetMs = opts.budgetMs ?? 5 * 60_000;
    this.baseMs = opts.baseMs ?? 250;
    this.maxMs = opts.maxMs ?? 5000;
    this.maxRequestBytes = opts.maxRequestBytes ?? 512 * 1024;
    this.log = opts.log ?? (() => undefined);
  }

  /** Reports one attempt; resolves when the control plane accepted it, rejects when it is final. */
  complete(completion: JobCompletion): Promise<Accepted> {
    return new Promise((resolve, reject) => {
      const bytes = Buffer.byteLength(JSON.stringify(completion)) + 1;
      this.queue.push({ completion, bytes, firstSentAt: undefined, tries: 0, notBefore: 0, resolve, reject });
      this.pump();
    });
  }

  /** Sends every ready item unless a request is in flight (its end pumps again). */
  private pump(): void {
    if (this.inFlight) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    const now = Date.now();
    const batch = this.takeReady(now);
    if (!batch.length) return this.wakeForRetries(now);
    this.inFlight = true;
    void this.send(batch).finally(() => {
      this.inFlight = false;
      this.pump();
    });
  }

  /** Ready items in queue order, up to the per-request count and byte limits. */
  private takeReady(now: number): Item[] {
    const batch: Item[] = [];
    let bytes = 0;
    for (let i = 0; i < this.queue.length && batch.length < LIMITS.maxClaimJobs; ) {
      const item = this.queue[i]!;
      if (item.notBefore > now) {
        i++;
        continue;
      }
      if (batch.length && bytes + item.bytes > this.maxRequestBytes) break;
      this.queue.splice(i, 1);
      batch.push(item);
      bytes += item.bytes;
    }
    return batch;
  }

  /** Nothing ready but retries waiting: pump again when the first one is due. */
  private wakeForRetries(now: number): void {
    if (!this.queue.length) return;
    const due = Math.min(...this.queue.map((i) => i.notBefore));
    this.timer = setTimeout(() => this.pump(), Math.max(0, due - now));
  }

  private async send(batch: Item[]): Promise<void> {
    const now = Date.now();
    for (const item of batch) {
      item.firstSentAt ??= now;
      item.tries++;
    }
    let results: CompletionResult[];
    try {
      ({ results } = await this.api.completeMany(batch.map((i) => i.completion)));
    } catch (err) {
      // Failed together, retried together: one backoff for the whole request.
      const delay = this.backoff(Math.max(...batch.map((i) => i.tries)));
      for (const item of batch) this.retryOrFail(item, err, isRetryable(err), delay);
      return;
    }
    batch.forEach((item, i) => this.settle(item, results[i]));
  }

  private settle(item: Item, result: CompletionResult | undefined): void {
    const { executionId } = item.completion;
    if (result?.executionId !== executionId) {
      // An answer that does not match the request (a control plane bug): resending is safe.
      return this.retryOrFail(item, new Error(`the control plane's answer has no result for ${executionId}`), true);
    }
    if (result.ok) return item.resolve({ status: result.status, duplicate: result.duplicate });
    const err = new ApiCallError(result.status, result.error.code, result.error.message, result.error.details);
    this.retryOrFail(item, err, isRetryableStatus(result.status));
  }

  private backoff(tries: number): number {
    return backoffDelay(tries - 1, this.baseMs, this.maxMs);
  }

  /** Back into the queue after a backoff while the item's budget lasts; otherwise its error is final. */
  private retryOrFail(item: Item, err: unknown, retryable: boolean, delay = this.backoff(item.tries)): void {
    if (!retryable || Date.now() - item.firstSentAt! + delay > this.budgetMs) return item.reject(err);
    this.log(`completing ${item.completion.executionId}: ${(err as Error).message}; retrying in ${delay} ms`);
    item.notBefore = Date.now() + delay;
    this.queue.push(item);
  }
}
