/**
 * Thin client for the runner protocol: one method per endpoint, responses validated with the
 * shared schemas, no retries here (retry.ts states each call's budget one layer up).
 */
import { z } from 'zod';
import { ErrorEnvelope } from '../../shared/errors.js';
import {
  AppendLogsResponse,
  ClaimResponse,
  CompleteResponse,
  JobHeartbeatResponse,
  PresignOutputsResponse,
  RegisterRunnerResponse,
  RunnerHeartbeatResponse,
  type AppendLogsRequest,
  type ClaimRequest,
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

export class RunnerApi {
  token: string | undefined;

  constructor(
    readonly baseUrl: string,
    token?: string,
  ) {
    this.token = token;
  }

  private async call<S extends z.ZodType>(path: string, body: unknown, schema: S, signal?: AbortSignal): Promise<z.output<S>> {
    const res = await fetch(this.baseUrl.replace(/\/+$/, '') + path, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(this.token ? { authorization: `Bearer ${this.token}` } : {}) },
      body: JSON.stringify(body),
      signal,
    });
    const text = await res.text();
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
  heartbeat(body: RunnerHeartbeatRequest) {
    return this.call('/runner/v1/heartbeat', body, RunnerHeartbeatResponse);
  }
  claim(body: ClaimRequest, signal?: AbortSignal) {
    return this.call('/runner/v1/claim', body, ClaimResponse, signal);
  }
  jobHeartbeat(executionId: string, attempt: number) {
    return this.call(`/runner/v1/executions/${executionId}/heartbeat`, { attempt }, JobHeartbeatResponse);
  }
  release(executionId: string, attempt: number) {
    return this.call(`/runner/v1/executions/${executionId}/release`, { attempt }, z.object({ ok: z.literal(true) }));
  }
  appendLogs(executionId: string, body: AppendLogsRequest) {
    return this.call(`/runner/v1/executions/${executionId}/logs`, body, AppendLogsResponse);
  }
  presignOutputs(executionId: string, body: PresignOutputsRequest) {
    return this.call(`/runner/v1/executions/${executionId}/outputs/presign`, body, PresignOutputsResponse);
  }
  multipartCreate(executionId: string, body: CreateMultipartRequest & { attempt: number }) {
    return this.call(`/runner/v1/executions/${executionId}/uploads/multipart`, body, CreateMultipartResponse);
  }
  multipartComplete(executionId: string, body: CompleteMultipartRequest & { attempt: number }) {
    return this.call(`/runner/v1/executions/${executionId}/uploads/multipart/complete`, body, z.object({ ok: z.literal(true) }));
  }
  multipartAbort(executionId: string, body: AbortMultipartRequest & { attempt: number }) {
    return this.call(`/runner/v1/executions/${executionId}/uploads/multipart/abort`, body, z.object({ ok: z.literal(true) }));
  }
  complete(executionId: string, body: CompleteRequest) {
    return this.call(`/runner/v1/executions/${executionId}/complete`, body, CompleteResponse);
  }
}

/** 409 (stale attempt) and 410 mean "this attempt is over": stop, never retry. */
export function isAttemptOver(err: unknown): boolean {
  return err instanceof ApiCallError && (err.status === 409 || err.status === 410) && err.code !== 'conflict';
}
