/**
 * OpenAPI 3.1 document generated from the shared zod schemas (zod's own JSON Schema output).
 * The route table below is the API's index; tests check that every documented route exists.
 */
import { z } from 'zod';
import * as api from '../../shared/index.js';
import * as blobs from '../../shared/api/blobs.js';

interface RouteDoc {
  method: 'get' | 'post' | 'delete';
  path: string;
  summary: string;
  auth: 'user' | 'runner' | 'admin' | 'none' | 'registration';
  body?: z.ZodType;
  query?: z.ZodType;
  response: z.ZodType;
}

export const ROUTES: RouteDoc[] = [
  { method: 'get', path: '/health', summary: 'Liveness', auth: 'none', response: api.HealthResponse },
  { method: 'get', path: '/api/v1/whoami', summary: 'The account and key making the call', auth: 'user', response: api.WhoAmIResponse },
  { method: 'post', path: '/api/v1/executions', summary: 'Create an execution; returns presigned PUTs for blobs not stored yet', auth: 'user', body: api.CreateExecutionRequest, response: api.CreateExecutionResponse },
  { method: 'get', path: '/api/v1/executions', summary: 'List executions, newest first', auth: 'user', query: api.ListExecutionsQuery, response: api.ListExecutionsResponse },
  { method: 'get', path: '/api/v1/executions/{id}', summary: 'Get an execution', auth: 'user', response: api.ExecutionResponse },
  { method: 'post', path: '/api/v1/executions/{id}/submit', summary: 'Queue an execution once its blobs are uploaded', auth: 'user', response: api.SubmitExecutionResponse },
  { method: 'post', path: '/api/v1/executions/{id}/cancel', summary: 'Cancel an execution', auth: 'user', response: api.CancelExecutionResponse },
  { method: 'get', path: '/api/v1/executions/{id}/artifacts', summary: 'Outputs and logs with presigned download URLs', auth: 'user', response: api.ListArtifactsResponse },
  { method: 'get', path: '/api/v1/executions/{id}/logs', summary: 'Log chunks after a cursor', auth: 'user', query: api.LogsQuery, response: api.LogsResponse },
  { method: 'post', path: '/api/v1/batches', summary: 'Create a batch: one execution per input, in bulk', auth: 'user', body: api.CreateBatchRequest, response: api.CreateBatchResponse },
  { method: 'get', path: '/api/v1/batches', summary: 'List batches, newest first', auth: 'user', query: api.ListBatchesQuery, response: api.ListBatchesResponse },
  { method: 'get', path: '/api/v1/batches/{id}', summary: 'Batch snapshot: counts, ETA, failures', auth: 'user', response: api.BatchResponse },
  { method: 'post', path: '/api/v1/batches/{id}/items', summary: 'Append items before submit', auth: 'user', body: api.AppendBatchItemsRequest, response: api.AppendBatchItemsResponse },
  { method: 'get', path: '/api/v1/batches/{id}/items', summary: 'The latest execution of each input, with its status', auth: 'user', response: api.BatchItemsResponse },
  { method: 'post', path: '/api/v1/batches/{id}/submit', summary: 'Verify uploads and queue every item', auth: 'user', response: api.BatchResponse },
  { method: 'post', path: '/api/v1/batches/{id}/cancel', summary: 'Cancel every unfinished item', auth: 'user', response: api.BatchResponse },
  { method: 'get', path: '/api/v1/batches/{id}/watch', summary: 'WebSocket: BatchEvents (a snapshot, throttled progress deltas, the final snapshot)', auth: 'user', response: api.BatchEvent },
  { method: 'post', path: '/api/v1/executions/retry', summary: 'Retry failed items of a batch, or listed executions', auth: 'user', body: api.RetryRequest, response: api.RetryResponse },
  { method: 'post', path: '/api/v1/webhooks', summary: 'Create a webhook (job template); returns its signing secret once', auth: 'user', body: api.CreateWebhookRequest, response: api.CreateWebhookResponse },
  { method: 'get', path: '/api/v1/webhooks', summary: 'List webhooks', auth: 'user', response: api.ListWebhooksResponse },
  { method: 'delete', path: '/api/v1/webhooks/{id}', summary: 'Delete a webhook: its deliveries answer 404 from then on', auth: 'user', response: api.DeleteWebhookResponse },
  { method: 'post', path: '/hooks/{id}', summary: 'Deliver inputs to a webhook (HMAC-signed): starts a batch', auth: 'none', body: api.WebhookDelivery, response: api.WebhookDeliveryResponse },
  { method: 'get', path: '/api/v1/cache/stats', summary: 'Hit rates per cache kind', auth: 'user', response: api.CacheStatsResponse },
  { method: 'post', path: '/api/v1/cache/explain', summary: 'What a run would reuse, and why not (nothing is created)', auth: 'user', body: api.CreateExecutionRequest, response: z.object({ cache: api.CacheReport }) },
  { method: 'post', path: '/api/v1/uploads/multipart', summary: 'Start a multipart upload of a large blob', auth: 'user', body: api.CreateMultipartRequest, response: api.CreateMultipartResponse },
  { method: 'post', path: '/api/v1/uploads/multipart/complete', summary: 'Complete a multipart upload (aborted if parts are wrong)', auth: 'user', body: api.CompleteMultipartRequest, response: z.object({ ok: z.literal(true) }) },
  { method: 'post', path: '/api/v1/uploads/multipart/abort', summary: 'Abort a multipart upload', auth: 'user', body: api.AbortMultipartRequest, response: z.object({ ok: z.literal(true) }) },
  { method: 'post', path: '/api/v1/blobs', summary: 'Presigned PUTs for the blobs (files by sha256) the account does not have yet', auth: 'user', body: blobs.CreateBlobUploadsRequest, response: blobs.CreateBlobUploadsResponse },
  { method: 'post', path: '/api/v1/blobs/confirm', summary: 'Check uploaded blobs in the object store and record them (409 names one never uploaded)', auth: 'user', body: blobs.ConfirmBlobsRequest, response: blobs.ConfirmBlobsResponse },
  { method: 'get', path: '/api/v1/executions/{id}/artifacts/{artifactId}', summary: 'One artifact; 404 "expired on <date>" after retention', auth: 'user', response: api.ArtifactResponse },
  { method: 'post', path: '/runner/v1/register', summary: 'Exchange a registration token for a runner id and token', auth: 'registration', body: api.RegisterRunnerRequest, response: api.RegisterRunnerResponse },
  { method: 'post', path: '/runner/v1/heartbeat', summary: 'Runner liveness; renews (and acknowledges) the lease of every job it holds; answers cancels, stale jobs and lease timing', auth: 'runner', body: api.RunnerHeartbeatRequest, response: api.RunnerHeartbeatResponse },
  { method: 'post', path: '/runner/v1/claim', summary: 'Long-poll for jobs, for all free slots at once (503 with Retry-After while the control plane catches up)', auth: 'runner', body: api.ClaimRequest, response: api.ClaimResponse },
  { method: 'post', path: '/runner/v1/complete', summary: 'Finish several attempts; one result per completion, in order', auth: 'runner', body: api.CompleteManyRequest, response: api.CompleteManyResponse },
  { method: 'post', path: '/runner/v1/executions/{id}/release', summary: 'Give a job back for immediate requeue (costs no attempt)', auth: 'runner', body: api.ReleaseRequest, response: z.object({ ok: z.literal(true) }) },
  { method: 'post', path: '/runner/v1/executions/{id}/logs', summary: 'Append ordered log chunks', auth: 'runner', body: api.AppendLogsRequest, response: api.AppendLogsResponse },
  { method: 'post', path: '/runner/v1/executions/{id}/outputs/presign', summary: 'Presigned PUTs for output blobs', auth: 'runner', body: api.PresignOutputsRequest, response: api.PresignOutputsResponse },
  { method: 'post', path: '/runner/v1/executions/{id}/complete', summary: 'Finish the current attempt', auth: 'runner', body: api.CompleteRequest, response: api.CompleteResponse },
  { method: 'post', path: '/admin/v1/accounts', summary: 'Create an account', auth: 'admin', body: api.CreateAccountRequest, response: api.CreateAccountResponse },
  { method: 'post', path: '/admin/v1/accounts/{id}/api-keys', summary: 'Create an API key (shown once)', auth: 'admin', body: api.CreateApiKeyRequest, response: api.CreateApiKeyResponse },
  { method: 'post', path: '/admin/v1/api-keys/{id}/revoke', summary: 'Revoke an API key', auth: 'admin', response: api.RevokeApiKeyResponse },
  { method: 'post', path: '/admin/v1/pools', summary: 'Create a runner pool', auth: 'admin', body: api.CreatePoolRequest, response: api.CreatePoolResponse },
  { method: 'post', path: '/admin/v1/pools/{name}/registration-tokens', summary: 'Create a runner registration token (shown once)', auth: 'admin', body: api.CreateRegistrationTokenRequest, response: api.CreateRegistrationTokenResponse },
];

const json = (schema: z.ZodType, io: 'input' | 'output') => z.toJSONSchema(schema, { io, unrepresentable: 'any' });

export function openApiDocument(version: string) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of ROUTES) {
    const parameters = [...r.path.matchAll(/\{(\w+)\}/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
    if (r.query) {
      const q = json(r.query, 'input') as { properties?: Record<string, unknown> };
      for (const [name, schema] of Object.entries(q.properties ?? {})) parameters.push({ name: name!, in: 'query', required: false, schema: schema as { type: string } });
    }
    (paths[r.path] ??= {})[r.method] = {
      summary: r.summary,
      security: r.auth === 'none' || r.auth === 'registration' ? [] : [{ [r.auth]: [] }],
      parameters,
      ...(r.body ? { requestBody: { required: true, content: { 'application/json': { schema: json(r.body, 'input') } } } } : {}),
      responses: {
        '200': { description: 'OK', content: { 'application/json': { schema: json(r.response, 'output') } } },
        default: { description: 'Error', content: { 'application/json': { schema: json(api.ErrorEnvelope, 'output') } } },
      },
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'RGrid API', version },
    components: {
      securitySchemes: {
        user: { type: 'http', scheme: 'bearer', description: 'User API key rgrid_sk_…' },
        runner: { type: 'http', scheme: 'bearer', description: 'Runner token rgrid_rt_…' },
        admin: { type: 'http', scheme: 'bearer', description: 'ADMIN_SECRET' },
      },
    },
    paths,
  };
}
