/** /api/v1/blobs: one function per call, no retries here (see client.ts for budgets). */
import { ConfirmBlobsResponse, CreateBlobUploadsResponse, type ConfirmBlobsRequest, type CreateBlobUploadsRequest } from '../../shared/api/blobs.js';
import type { Http } from './http.js';

export function uploads(http: Http, body: CreateBlobUploadsRequest, signal?: AbortSignal) {
  return http.request('POST', '/api/v1/blobs', { body, schema: CreateBlobUploadsResponse, signal });
}

export function confirm(http: Http, body: ConfirmBlobsRequest, signal?: AbortSignal) {
  return http.request('POST', '/api/v1/blobs/confirm', { body, schema: ConfirmBlobsResponse, signal });
}
