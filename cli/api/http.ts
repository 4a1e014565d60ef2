/**
 * The HTTP transport of the API client: one request, no retries (retry.ts decides that, one
 * layer up). Every answer is validated with a shared zod schema; every failure becomes one of
 * three errors: ApiError (the server answered with the shared error envelope), NetworkError (no
 * answer), ResponseError (an answer that is not what the contract says).
 */
import { request } from 'undici';
import type { z } from 'zod';
import { ErrorEnvelope, isRetryableStatus, type ErrorCode } from '../../shared/errors.js';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode | 'unknown',
    message: string,
    readonly hint?: string,
    readonly details?: unknown,
    /** Seconds from a Retry-After header, if any. */
    readonly retryAfter?: number,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  get retryable(): boolean {
    return isRetryableStatus(this.status);
  }
}

export class NetworkError extends Error {
  constructor(
    message: string,
    readonly hint: string,
    /** undici / Node error code (ECONNREFUSED, UND_ERR_SOCKET, ...). */
    readonly code: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'NetworkError';
  }

  /** The connection was never made, so the server cannot have acted on the request. */
  get notSent(): boolean {
    return this.code === 'ECONNREFUSED' || this.code === 'ENOTFOUND' || this.code === 'UND_ERR_CONNECT_TIMEOUT' || this.code === 'EAI_AGAIN';
  }
}

export class ResponseError extends Error {
  override readonly name = 'ResponseError';
}

export interface HttpOptions {
  /** Base URL of the control plane, e.g. http://127.0.0.1:8787. */
  baseUrl: string;
  /** Bearer token: a user API key, or the admin secret for /admin/v1. */
  token?: string;
  /** Per-request timeout for headers and body. */
  timeoutMs?: number;
  userAgent?: string;
}

export interface RequestOptions<S extends z.ZodType> {
  query?: Record<string, string | number | string[] | undefined>;
  body?: unknown;
  schema: S;
  /** Abort the request (Ctrl+C). */
  signal?: AbortSignal;
}

export class Http {
  readonly baseUrl: string;

  constructor(readonly opts: HttpOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/+$/, '');
  }

  async request<S extends z.ZodType>(method: 'GET' | 'POST' | 'DELETE', path: string, ro: RequestOptions<S>): Promise<z.output<S>> {
    const url = new URL(this.baseUrl + path);
    for (const [k, v] of Object.entries(ro.query ?? {})) {
      if (v === undefined) continue;
      for (const item of Array.isArray(v) ? v : [v]) url.searchParams.append(k, String(item));
    }
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': this.opts.userAgent ?? 'rgrid-cli' };
    if (this.opts.token) headers.authorization = `Bearer ${this.opts.token}`;
    let body: string | undefined;
    if (ro.body !== undefined) {
      body = JSON.stringify(ro.body);
      headers['content-type'] = 'application/json';
    }
    const timeout = this.opts.timeoutMs ?? 30_000;
    let res;
    try {
      res = await request(url, { method, headers, body, signal: ro.signal, headersTimeout: timeout, bodyTimeout: timeout });
    } catch (err) {
      throw networkError(err, this.baseUrl);
    }
    let text: string;
    try {
      text = await res.body.text();
    } catch (err) {
      throw networkError(err, this.baseUrl);
    }
    const where = `${method} ${path}`;
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (res.statusCode >= 400) throw apiError(res.statusCode, json, text, where, res.headers['retry-after']);
    const parsed = ro.schema.safeParse(json);
    if (!parsed.success) {
      const first = parsed.error.issues[0];
      const field = first?.path.length ? `${first.path.join('.')}: ` : '';
      throw new ResponseError(`Unexpected answer from the control plane to ${where} (status ${res.statusCode}): ${field}${first?.message ?? 'invalid'}`);
    }
    return parsed.data;
  }
}

function apiError(status: number, json: unknown, text: string, where: string, retryAfterHeader: string | string[] | undefined): ApiError {
  const retryAfterRaw = Array.isArray(retryAfterHeader) ? retryAfterHeader[0] : retryAfterHeader;
  const retryAfter = retryAfterRaw !== undefined && /^\d+$/.test(retryAfterRaw) ? Number(retryAfterRaw) : undefined;
  const env = ErrorEnvelope.safeParse(json);
  if (env.success) {
    const e = env.data.error;
    return new ApiError(status, e.code, e.message, e.hint, e.details, retryAfter);
  }
  // Not our envelope: a proxy, a load balancer, or the wrong URL altogether.
  const snippet = text.replace(/\s+/g, ' ').trim().slice(0, 120);
  return new ApiError(status, 'unknown', `${where} failed with HTTP ${status}${snippet ? `: ${snippet}` : ''}`, 'Check that the API URL points at an RGrid control plane.', undefined, retryAfter);
}

export function errorCode(err: unknown): string | undefined {
  let e: unknown = err;
  // undici wraps the socket error: TypeError('fetch failed', {cause}) or its own errors with .code.
  for (let i = 0; i < 4 && e && typeof e === 'object'; i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

export function networkError(err: unknown, baseUrl: string): NetworkError | Error {
  if (err instanceof Error && err.name === 'AbortError') return err;
  const code = errorCode(err);
  const reason = code === 'ECONNREFUSED' ? 'connection refused' : code === 'ENOTFOUND' ? 'host not found' : code?.startsWith('UND_ERR_') && code.includes('TIMEOUT') ? 'timed out' : code ?? (err as Error)?.message ?? 'network error';
  return new NetworkError(
    `Cannot reach the control plane at ${baseUrl} (${reason})`,
    'Is it running? Start a local one with `rgrid dev`, or point the CLI elsewhere with --api-url / RGRID_API_URL.',
    code,
    { cause: err },
  );
}
