/** One error class, turned into the shared JSON error envelope by app.onError (STYLE.md #8). */
import { ERROR_CODES, errorEnvelope, type ErrorCode } from '../../shared/errors.js';

export class ApiError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly hint?: string,
    readonly details?: unknown,
  ) {
    super(message);
  }

  get status(): number {
    return ERROR_CODES[this.code];
  }

  toJSON() {
    return errorEnvelope(this.code, this.message, this.hint, this.details);
  }
}

export const notFound = (what: string, id: string) =>
  new ApiError('not_found', `${what} ${id} not found`, `Check the id; \`rgrid list\` shows your ${what.toLowerCase()}s.`);

export const badRequest = (message: string, hint?: string, details?: unknown) => new ApiError('bad_request', message, hint, details);
