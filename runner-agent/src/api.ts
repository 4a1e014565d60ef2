/**
 * Thin client for the runner protocol: one method per endpoint, responses validated with the
 * shared schemas, no retries here (retry.ts states each call's budget one layer up).
 */
import { z } from 'zod';
import { ErrorEnvelope } from '../../shared/errors.js';
import { LIMITS } from '../../shared/limits.js';
import {
  AppendLogsResponse,
  ClaimResponse,
  CompleteManyResponse,
  CompleteResponse,
  PresignOutputsResponse,
  RegisterRunnerResponse,
  RunnerHeartbeatResponse,
  type AppendLogsRequest,
  type ClaimRequest,
  type Completion,
  type CompleteRequest,
  type PresignOutputsRequest,
  type RegisterRunnerRequest,
  type RunnerHeartbeatRequest,
} from '../../shared/api/runner.js';
import { CreateMultipartResponse, type AbortMultipartRequest, type CompleteMultipartRequest, type CreateMultipartRequest } from '../../shared/api/common.js';

export class ApiCallError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'ApiCallError';
  }
}

/** A call the control plane did not answer in time (a network failure: retryable). */
export class ApiTimeoutError extends Error {
  readonly code = 'ETIMEDOUT';
  constructor(message: string) {
    super(message);
    this.name = 'ApiTimeoutError';
  }
}

/**
 * How long one call may take unless it says otherwise. Without a bound, a control plane that drops
 * packets (firewall DROP, dead route) hangs a call for undici's 300 s (F1).
 */
export const CALL_TIMEOUT_MS = 15_000;

export interface CallOptions {
  /** The caller's own abort (not retried). */
  signal?: AbortSignal;
  /** Abort after this long with ApiTimeoutError; CALL_TIMEOUT_MS by default. */
  timeoutMs?: number;
}

/**
 * The body of a call about one job: its attempt (fencing) and the dispatcher shard that leased it
 * are required here, although the wire schema defaults a missing shard to 0, so that a call that
 * forgets the shard does not compile (it would reach the wrong shard).
 */
export interface JobRef {
  attempt: number;
  shard: number;
}
export type Fenced<T> = T & JobRef;

export class RunnerApi {
  token: string | undefined;

  constructor(
    readonly baseUrl: string,
    token?: string,
  ) {
    this.token = token;
  }

  private async call<S extends z.ZodType>(path: string, body: unknown, schema: S, opts: CallOptions = {}): Promise<z.output<S>> {
    const timeoutMs = opts.timeoutMs ?? CALL_TIMEOUT_MS;
    const timeout = AbortSignal.timeout(timeoutMs);
    // The timeout covers reading the body too: the signal stays attached to the response stream.
    const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
    let res: Response;
    let text: string;
    try {
      res = await fetch(this.baseUrl.replace(/\/+$/, '') + path, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(this.token ? { authorization: `Bearer ${this.token}` } : {}) },
        body: JSON.stringify(body),
        signal,
      });
      text = await res.text();
    } catch (err) {
      if (timeout.aborted && !opts.signal?.aborted) throw new ApiTimeoutError(`control plane did not answer ${path} within ${timeoutMs} ms`);
      throw err;
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new ApiCallError(res.status, 'invalid_response', `control plane answered ${res.status} with non-JSON: ${text.slice(0, 200)}`);
    }
    if (!res.ok) {
      const env = ErrorEnvelope.safeParse(json);
      if (env.success) throw new ApiCallError(res.status, env.data.error.code, env.data.error.message, env.data.error.details);
      throw new ApiCallError(res.status, 'invalid_response', `control plane answered ${res.status}`);
    }
    return schema.parse(json);
  }

  register(body: RegisterRunnerRequest) {
    return this.call('/runner/v1/register', body, RegisterRunnerResponse);
  }
  /**
   * Liveness, and the renewal (and acknowledgement) of every lease the runner holds.
   * `timeoutMs`: the heartbeat interval, so a hung call never delays the next one by more.
   */
  heartbeat(body: RunnerHeartbeatRequest, timeoutMs?: number) {
    return this.call('/runner/v1/heartbeat', body, RunnerHeartbeatResponse, { timeoutMs });
  }
  /** A long poll: it may take `waitSeconds`, plus 10 s for the answer. */
  claim(body: ClaimRequest, signal?: AbortSignal) {
    return this.call('/runner/v1/claim', body, ClaimResponse, { signal, timeoutMs: ((body.waitSeconds ?? LIMITS.maxClaimWaitSeconds) + 10) * 1000 });
  }
  /** Gives a job back (kill, shutdown): requeued at once, at no cost of an attempt. */
  release(executionId: string, ref: JobRef) {
    return this.call(`/runner/v1/executions/${executionId}/release`, { attempt: ref.attempt, shard: ref.shard }, z.object({ ok: z.literal(true) }));
  }
  appendLogs(executionId: string, body: Fenced<AppendLogsRequest>, signal?: AbortSignal) {
    return this.call(`/runner/v1/executions/${executionId}/logs`, body, AppendLogsResponse, { signal });
  }
  /** Up to 1000 files at once: more time than the default. */
  presignOutputs(executionId: string, body: Fenced<PresignOutputsRequest>, signal?: AbortSignal) {
    return this.call(`/runner/v1/executions/${executionId}/outputs/presign`, body, PresignOutputsResponse, { signal, timeoutMs: 60_000 });
  }
  multipartCreate(executionId: string, body: Fenced<CreateMultipartRequest>) {
    return this.call(`/runner/v1/executions/${executionId}/uploads/multipart`, body, CreateMultipartResponse);
  }
  multipartComplete(executionId: string, body: Fenced<CompleteMultipartRequest>) {
    return this.call(`/runner/v1/executions/${executionId}/uploads/multipart/complete`, body, z.object({ ok: z.literal(true) }));
  }
  multipartAbort(executionId: string, body: Fenced<AbortMultipartRequest>) {
    return this.call(`/runner/v1/executions/${executionId}/uploads/multipart/abort`, body, z.object({ ok: z.literal(true) }));
  }
  /**
   * One completion. The agent sends completions through completeMany (completions.ts); this
   * single route stays for tools that report one job. The control plane checks every output in
   * the object store first: more time than the default.
   */
  complete(executionId: string, body: Fenced<CompleteRequest>) {
    return this.call(`/runner/v1/executions/${executionId}/complete`, body, CompleteResponse, { timeoutMs: 60_000 });
  }
  /**
   * Several completions, one result each, in order: a 2xx answer can still hold refused items
   * (each with the status and error it would have had alone). Like complete(), the control plane
   * checks outputs in the object store first: more time than the default.
   */
  completeMany(completions: Fenced<Completion>[], timeoutMs = 60_000) {
    return this.call('/runner/v1/complete', { completions }, CompleteManyResponse, { timeoutMs });
  }
}

/** 409 (stale attempt) and 410 mean "this attempt is over": stop, never retry. */
export function isAttemptOver(err: unknown): boolean {
  return err instanceof ApiCallError && (err.status === 409 || err.status === 410) && err.code !== 'conflict';
}
