/**
 * The one JSON error envelope every API answer uses on failure:
 *   {"error": {"code": "not_found", "message": "...", "hint": "..."}}
 * `code` is stable and machine-readable; `message` says what went wrong; `hint` says what to do.
 */
import { z } from 'zod';

export const ERROR_CODES = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  stale_attempt: 409,
  gone: 410,
  payload_too_large: 413,
  unprocessable: 422,
  rate_limited: 429,
  internal: 500,
  unavailable: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export const ErrorBody = z.object({
  code: z.enum(Object.keys(ERROR_CODES) as [ErrorCode, ...ErrorCode[]]),
  message: z.string(),
  hint: z.string().optional(),
  details: z.unknown().optional(),
});
export type ErrorBody = z.infer<typeof ErrorBody>;

export const ErrorEnvelope = z.object({ error: ErrorBody });
export type ErrorEnvelope = z.infer<typeof ErrorEnvelope>;

export function errorEnvelope(code: ErrorCode, message: string, hint?: string, details?: unknown): ErrorEnvelope {
  return { error: { code, message, ...(hint ? { hint } : {}), ...(details !== undefined ? { details } : {}) } };
}

/** Whether a client may retry a failed call: only rate limits, server errors and network errors. */
export function isRetryableStatus(status: number): boolean {
  return status === 429 || status >= 500;
}
