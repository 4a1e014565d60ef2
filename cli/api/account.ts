/** /api/v1/whoami and /health. */
import { HealthResponse, WhoAmIResponse } from '../../shared/api/executions.js';
import type { Http } from './http.js';

export function whoami(http: Http, signal?: AbortSignal) {
  return http.request('GET', '/api/v1/whoami', { schema: WhoAmIResponse, signal });
}

export function health(http: Http, signal?: AbortSignal) {
  return http.request('GET', '/health', { schema: HealthResponse, signal });
}
