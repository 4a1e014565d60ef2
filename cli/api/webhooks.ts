/** /api/v1/webhooks: one function per call, no retries here (see client.ts). */
import { CreateWebhookResponse, DeleteWebhookResponse, ListWebhooksResponse, type CreateWebhookRequest } from '../../shared/api/webhooks.js';
import type { Http } from './http.js';

// The delete response is part of the shared contract; re-exported for callers that used it from here.
export { DeleteWebhookResponse };

export function create(http: Http, body: CreateWebhookRequest, signal?: AbortSignal) {
  return http.request('POST', '/api/v1/webhooks', { body, schema: CreateWebhookResponse, signal });
}

export function list(http: Http, signal?: AbortSignal) {
  return http.request('GET', '/api/v1/webhooks', { schema: ListWebhooksResponse, signal });
}

export function remove(http: Http, id: string, signal?: AbortSignal) {
  return http.request('DELETE', `/api/v1/webhooks/${encodeURIComponent(id)}`, { schema: DeleteWebhookResponse, signal });
}
