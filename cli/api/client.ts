/**
 * The API as commands use it: each call is the thin resource call wrapped in its retry budget,
 * stated in the doc comment (STYLE.md #2). Commands never retry on their own.
 */
import type { AppendBatchItemsRequest, CreateBatchRequest, RetryRequest } from '../../shared/api/batches.js';
import type { CreateExecutionRequest } from '../../shared/api/executions.js';
import type { AbortMultipartRequest, CompleteMultipartRequest, CreateMultipartRequest } from '../../shared/api/common.js';
import type { CreateWebhookRequest } from '../../shared/api/webhooks.js';
import type { ConfirmBlobsRequest, CreateBlobUploadsRequest } from '../../shared/api/blobs.js';
import * as account from './account.js';
import * as cache from './cache.js';
import * as batches from './batches.js';
import * as blobs from './blobs.js';
import * as executions from './executions.js';
import * as uploads from './uploads.js';
import * as webhooks from './webhooks.js';
import { Http, type HttpOptions } from './http.js';
import { IDEMPOTENT, NOT_IDEMPOTENT, PATIENT, withRetry, type RetryHooks } from './retry.js';

export class RGridClient {
  readonly http: Http;

  constructor(
    opts: HttpOptions,
    private readonly hooks: RetryHooks = {},
  ) {
    this.http = new Http(opts);
  }

  get baseUrl(): string {
    return this.http.baseUrl;
  }

  /** Retries: IDEMPOTENT (5 tries, ~8 s). */
  whoami() {
    return withRetry(IDEMPOTENT, () => account.whoami(this.http, this.hooks.signal), this.hooks);
  }

  /** Retries: NOT_IDEMPOTENT: a second create would make a second execution, so only 429 and refused connections. */
  create(body: CreateExecutionRequest) {
    return withRetry(NOT_IDEMPOTENT, () => executions.create(this.http, body, this.hooks.signal), this.hooks);
  }

  /** Retries: IDEMPOTENT. Submitting twice is harmless (the server answers with the current state). */
  submit(id: string) {
    return withRetry(IDEMPOTENT, () => executions.submit(this.http, id, this.hooks.signal), this.hooks);
  }

  /** Retries: IDEMPOTENT. */
  get(id: string) {
    return withRetry(IDEMPOTENT, () => executions.get(this.http, id, this.hooks.signal), this.hooks);
  }

  /** Retries: PATIENT (~1 min): used while waiting for a running execution. */
  poll(id: string) {
    return withRetry(PATIENT, () => executions.get(this.http, id, this.hooks.signal), this.hooks);
  }

  /** Retries: IDEMPOTENT. Canceling a canceled execution answers with its state. */
  cancel(id: string) {
    return withRetry(IDEMPOTENT, () => executions.cancel(this.http, id, this.hooks.signal), this.hooks);
  }

  /** Retries: IDEMPOTENT. */
  list(q: executions.ListQuery) {
    return withRetry(IDEMPOTENT, () => executions.list(this.http, q, this.hooks.signal), this.hooks);
  }

  /** Retries: IDEMPOTENT. Presigned URLs in the answer are fresh on every call. */
  artifacts(id: string) {
    return withRetry(IDEMPOTENT, () => executions.artifacts(this.http, id, this.hooks.signal), this.hooks);
  }

  /** Retries: PATIENT: a cursor read is repeatable, and `logs -f` should survive a control-plane restart. */
  logs(id: string, q: executions.LogsQuery) {
    return withRetry(PATIENT, () => executions.logs(this.http, id, q, this.hooks.signal), this.hooks);
  }

  /** Retries: IDEMPOTENT. A 404 "… expired on <date>" is final (not retried). */
  artifact(id: string, artifactId: string) {
    return withRetry(IDEMPOTENT, () => executions.artifact(this.http, id, artifactId, this.hooks.signal), this.hooks);
  }

  /**
   * Retries: IDEMPOTENT. A repeat after a lost answer starts a second, empty upload that nobody
   * completes; the bucket's lifecycle rule removes it (an upload without completion is never an object).
   */
  createMultipart(body: CreateMultipartRequest) {
    return withRetry(IDEMPOTENT, () => uploads.createMultipart(this.http, body, this.hooks.signal), this.hooks);
  }

  /** Retries: IDEMPOTENT for the request; a repeat after a lost answer is a 409 that multipart.ts resolves. */
  completeMultipart(body: CompleteMultipartRequest) {
    return withRetry(IDEMPOTENT, () => uploads.completeMultipart(this.http, body, this.hooks.signal), this.hooks);
  }

  /** Retries: IDEMPOTENT (aborting an aborted upload is harmless). */
  abortMultipart(body: AbortMultipartRequest) {
    return withRetry(IDEMPOTENT, () => uploads.abortMultipart(this.http, body, this.hooks.signal), this.hooks);
  }

  /** Retries: IDEMPOTENT: asking which blobs are missing creates nothing (the presigned URLs are fresh each time). */
  blobUploads(body: CreateBlobUploadsRequest) {
    return withRetry(IDEMPOTENT, () => blobs.uploads(this.http, body, this.hooks.signal), this.hooks);
  }

  /** Retries: IDEMPOTENT: confirming a stored blob again answers `known`. A 409 (never uploaded) is final. */
  confirmBlobs(body: ConfirmBlobsRequest) {
    return withRetry(IDEMPOTENT, () => blobs.confirm(this.http, body, this.hooks.signal), this.hooks);
  }

  /** Retries: IDEMPOTENT. */
  cacheStats() {
    return withRetry(IDEMPOTENT, () => cache.stats(this.http, this.hooks.signal), this.hooks);
  }

  /** Retries: IDEMPOTENT: explaining creates nothing. */
  cacheExplain(body: CreateExecutionRequest) {
    return withRetry(IDEMPOTENT, () => cache.explain(this.http, body, this.hooks.signal), this.hooks);
  }

  /** Retries: NOT_IDEMPOTENT: a second create would make a second batch. */
  createBatch(body: CreateBatchRequest) {
    return withRetry(NOT_IDEMPOTENT, () => batches.create(this.http, body, this.hooks.signal), this.hooks);
  }

  /** Retries: NOT_IDEMPOTENT: a repeated append after a lost answer is refused (the inputs exist). */
  appendBatchItems(id: string, body: AppendBatchItemsRequest) {
    return withRetry(NOT_IDEMPOTENT, () => batches.append(this.http, id, body, this.hooks.signal), this.hooks);
  }

  /** Retries: IDEMPOTENT. Submitting twice queues nothing twice (only `created` items are queued). */
  submitBatch(id: string) {
    return withRetry(IDEMPOTENT, () => batches.submit(this.http, id, this.hooks.signal), this.hooks);
  }

  /** Retries: IDEMPOTENT. */
  getBatch(id: string) {
    return withRetry(IDEMPOTENT, () => batches.get(this.http, id, this.hooks.signal), this.hooks);
  }

  /** Retries: PATIENT: the snapshot poll of a batch being watched should survive a restart. */
  pollBatch(id: string) {
    return withRetry(PATIENT, () => batches.get(this.http, id, this.hooks.signal), this.hooks);
  }

  /** Retries: PATIENT (read while a batch runs, for downloads as items finish). */
  batchItems(id: string) {
    return withRetry(PATIENT, () => batches.items(this.http, id, this.hooks.signal), this.hooks);
  }

  /** Retries: IDEMPOTENT. Canceling a canceled batch answers with its snapshot. */
  cancelBatch(id: string) {
    return withRetry(IDEMPOTENT, () => batches.cancel(this.http, id, this.hooks.signal), this.hooks);
  }

  /** Retries: IDEMPOTENT. */
  listBatches(q: { limit?: number; cursor?: string }) {
    return withRetry(IDEMPOTENT, () => batches.list(this.http, q, this.hooks.signal), this.hooks);
  }

  /** Retries: NOT_IDEMPOTENT: each retry makes new executions. */
  retry(body: RetryRequest) {
    return withRetry(NOT_IDEMPOTENT, () => batches.retry(this.http, body, this.hooks.signal), this.hooks);
  }

  /** Retries: NOT_IDEMPOTENT: a second create would make a second webhook (with another secret). */
  createWebhook(body: CreateWebhookRequest) {
    return withRetry(NOT_IDEMPOTENT, () => webhooks.create(this.http, body, this.hooks.signal), this.hooks);
  }

  /** Retries: IDEMPOTENT. */
  listWebhooks() {
    return withRetry(IDEMPOTENT, () => webhooks.list(this.http, this.hooks.signal), this.hooks);
  }

  /** Retries: NOT_IDEMPOTENT: after a lost answer a repeated delete is a 404 that would hide the success. */
  deleteWebhook(id: string) {
    return withRetry(NOT_IDEMPOTENT, () => webhooks.remove(this.http, id, this.hooks.signal), this.hooks);
  }
}
