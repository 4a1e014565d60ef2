/** /api/v1/cache: hit rates and dry-run explanations; no retries here (see client.ts). */
import { z } from 'zod';
import { CacheReport, CacheStatsResponse } from '../../shared/api/cache.js';
import type { CreateExecutionRequest } from '../../shared/api/executions.js';
import type { Http } from './http.js';

/** The answer of POST /api/v1/cache/explain (routes/cache.ts): the create-time report, nothing created. */
export const ExplainResponse = z.object({ cache: CacheReport });

export function stats(http: Http, signal?: AbortSignal) {
  return http.request('GET', '/api/v1/cache/stats', { schema: CacheStatsResponse, signal });
}

export function explain(http: Http, body: CreateExecutionRequest, signal?: AbortSignal) {
  return http.request('POST', '/api/v1/cache/explain', { body, schema: ExplainResponse, signal });
}
