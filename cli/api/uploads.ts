/** /api/v1/uploads/multipart: one function per call, no retries here (see client.ts for budgets). */
import { z } from 'zod';
import {
  CreateMultipartResponse,
  type AbortMultipartRequest,
  type CompleteMultipartRequest,
  type CreateMultipartRequest,
} from '../../shared/api/common.js';
import type { Http } from './http.js';

const Ok = z.object({ ok: z.literal(true) });

export function createMultipart(http: Http, body: CreateMultipartRequest, signal?: AbortSignal) {
  return http.request('POST', '/api/v1/uploads/multipart', { body, schema: CreateMultipartResponse, signal });
}

export function completeMultipart(http: Http, body: CompleteMultipartRequest, signal?: AbortSignal) {
  return http.request('POST', '/api/v1/uploads/multipart/complete', { body, schema: Ok, signal });
}

export function abortMultipart(http: Http, body: AbortMultipartRequest, signal?: AbortSignal) {
  return http.request('POST', '/api/v1/uploads/multipart/abort', { body, schema: Ok, signal });
}
