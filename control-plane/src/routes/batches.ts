/** Client API: /api/v1/batches and /api/v1/executions/retry. */
import { Hono } from 'hono';
import { AppendBatchItemsRequest, CreateBatchRequest, ListBatchesQuery, RetryRequest, type BatchItemsResponse } from '../../../shared/api/batches.js';
import { BatchId } from '../../../shared/ids.js';
import { parseWith, readJson, readQuery } from '../validate.js';
import { appendItems, cancelBatch, createBatch, getBatch, listBatches, loadBatch, retry, settle, submitBatch, tracker } from '../batches/service.js';
import type { AppContext, AppEnv } from '../context.js';

export const batchRoutes = new Hono<AppEnv>();
const idParam = (c: AppContext) => parseWith(BatchId, c.req.param('id'), 'batch id');

batchRoutes.post('/', async (c) => c.json(await createBatch(c, await readJson(c, CreateBatchRequest)), 201));
batchRoutes.get('/', async (c) => {
  const q = readQuery(c, ListBatchesQuery);
  return c.json(await listBatches(c, q.limit, q.cursor));
});
batchRoutes.get('/:id', async (c) => c.json({ batch: await getBatch(c, idParam(c)) }));
batchRoutes.post('/:id/items', async (c) => {
  const id = idParam(c);
  return c.json(await appendItems(c, id, await readJson(c, AppendBatchItemsRequest)), 201);
});
batchRoutes.post('/:id/submit', async (c) => c.json({ batch: await submitBatch(c, idParam(c)) }));
batchRoutes.post('/:id/cancel', async (c) => c.json({ batch: await cancelBatch(c, idParam(c)) }));
batchRoutes.get('/:id/items', async (c) => {
  const id = idParam(c);
  await settle(c, await loadBatch(c, id));
  return c.json({ items: await tracker(c, id).items() } satisfies BatchItemsResponse);
});
/** WebSocket: the snapshot at once, then throttled progress deltas and a final snapshot (see BatchEvent). */
batchRoutes.get('/:id/watch', async (c) => {
  const id = idParam(c);
  await loadBatch(c, id);
  return tracker(c, id).fetch(c.req.raw);
});

export const retryRoutes = new Hono<AppEnv>();
retryRoutes.post('/retry', async (c) => c.json(await retry(c, await readJson(c, RetryRequest)), 201));
