/**
 * The API as commands use it: each call is the thin resource call wrapped in its retry budget,
 * stated in the doc comment (STYLE.md #2). Commands never retry on their own.
 */
import type { CreateExecutionRequest } from '../../shared/api/executions.js';
import * as account from './account.js';
import * as executions from './executions.js';
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
}
