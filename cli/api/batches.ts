/** /api/v1/batches and /api/v1/executions/retry: one function per call, no retries here (see client.ts). */
import {
  AppendBatchItemsResponse,
  BatchItemsResponse,
  BatchResponse,
  CreateBatchResponse,
  ListBatchesResponse,
  RetryResponse,
  type AppendBatchItemsRequest,
  type BatchItemState,
  type CreateBatchRequest,
  type RetryRequest,
} from '../../shared/api/batches.js';
import type { Http } from './http.js';

// The items response is part of the shared contract; re-exported for the CLI modules using it.
export { BatchItemsResponse, type BatchItemState };

const path = (id: string, rest = '') => `/api/v1/batches/${encodeURIComponent(id)}${rest}`;

export function create(http: Http, body: CreateBatchRequest, signal?: AbortSignal) {
  return http.request('POST', '/api/v1/batches', { body, schema: CreateBatchResponse, signal });
}

export function append(http: Http, id: string, body: AppendBatchItemsRequest, signal?: AbortSignal) {
  return http.request('POST', path(id, '/items'), { body, schema: AppendBatchItemsResponse, signal });
}

export function submit(http: Http, id: string, signal?: AbortSignal) {
  return http.request('POST', path(id, '/submit'), { schema: BatchResponse, signal });
}

export function get(http: Http, id: string, signal?: AbortSignal) {
  return http.request('GET', path(id), { schema: BatchResponse, signal });
}

export function items(http: Http, id: string, signal?: AbortSignal) {
  return http.request('GET', path(id, '/items'), { schema: BatchItemsResponse, signal });
}

export function cancel(http: Http, id: string, signal?: AbortSignal) {
  return http.request('POST', path(id, '/cancel'), { schema: BatchResponse, signal });
}

export function list(http: Http, q: { limit?: number; cursor?: string }, signal?: AbortSignal) {
  return http.request('GET', '/api/v1/batches', { query: { ...q }, schema: ListBatchesResponse, signal });
}

export function retry(http: Http, body: RetryRequest, signal?: AbortSignal) {
  return http.request('POST', '/api/v1/executions/retry', { body, schema: RetryResponse, signal });
}

/** The WebSocket URL of GET /api/v1/batches/{id}/watch (see cli/batch/watch.ts). */
export function watchUrl(http: Http, id: string): string {
  return http.baseUrl.replace(/^http/, 'ws') + path(id, '/watch');
}
