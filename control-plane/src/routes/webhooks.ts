/** Webhooks: management under /api/v1/webhooks, deliveries at POST /hooks/{id} (HMAC-signed, no API key). */
import { Hono } from 'hono';
import { and, eq, isNull } from 'drizzle-orm';
import { CreateWebhookRequest, WebhookDelivery, type DeleteWebhookResponse } from '../../../shared/api/webhooks.js';
import { idSchema } from '../../../shared/ids.js';
import { LIMITS } from '../../../shared/limits.js';
import { schema } from '../db/client.js';
import { ApiError } from '../errors.js';
import { parseWith, readBody, readJson } from '../validate.js';
import { verify } from '../webhooks/signature.js';
import { createWebhook, deleteWebhook, deliver, listWebhooks } from '../webhooks/service.js';
import type { AppEnv } from '../context.js';

const WebhookId = idSchema('webhook');

export const webhookRoutes = new Hono<AppEnv>();
webhookRoutes.post('/', async (c) => c.json(await createWebhook(c, await readJson(c, CreateWebhookRequest)), 201));
webhookRoutes.get('/', async (c) => c.json({ webhooks: await listWebhooks(c) }));
webhookRoutes.delete('/:id', async (c) => c.json({ webhook: await deleteWebhook(c, parseWith(WebhookId, c.req.param('id'), 'webhook id')) } satisfies DeleteWebhookResponse));

export const hookRoutes = new Hono<AppEnv>();
hookRoutes.post('/:id', async (c) => {
  const id = parseWith(WebhookId, c.req.param('id'), 'webhook id');
  // Read with its size counted as it arrives: the sender is not authenticated yet.
  const raw = await readBody(c);
  if (raw === null) throw new ApiError('payload_too_large', `delivery body is larger than ${LIMITS.maxJsonBodyBytes} bytes`, 'Upload big inputs first and pass their sha256.');
  const db = c.get('db');
  const hook = await db.select().from(schema.webhooks).where(and(eq(schema.webhooks.id, id), isNull(schema.webhooks.deletedAt))).get();
  if (!hook) throw new ApiError('not_found', `webhook ${id} not found`, 'Check the URL; `rgrid webhook list` shows yours.');
  const check = await verify(hook.secret, c.req.raw.headers, raw, c.get('now')());
  if (!check.ok) throw new ApiError('unauthorized', `webhook signature rejected: ${check.reason}`, 'Sign "<timestamp>.<delivery id>.<body>" with HMAC-SHA256 and the webhook secret (docs/batches.md).');
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    throw new ApiError('bad_request', 'delivery body is not valid JSON');
  }
  const body = parseWith(WebhookDelivery, json, 'delivery');
  // Replay protection: a delivery id is accepted once, ever.
  const fresh = await db
    .insert(schema.webhookDeliveries)
    .values({ webhookId: id, deliveryId: check.deliveryId, receivedAt: c.get('now')() })
    .onConflictDoNothing()
    .returning()
    .get();
  if (!fresh) throw new ApiError('conflict', `delivery ${check.deliveryId} was already received`, 'Send each delivery with a new X-RGrid-Delivery id.');
  c.set('caller', { accountId: hook.accountId, accountName: '', apiKeyId: '', apiKeyPrefix: '' });
  try {
    const res = await deliver(c, hook, body, check.deliveryId);
    await db.update(schema.webhookDeliveries).set({ batchId: res.batchId }).where(and(eq(schema.webhookDeliveries.webhookId, id), eq(schema.webhookDeliveries.deliveryId, check.deliveryId)));
    return c.json(res, 201);
  } catch (err) {
    // A delivery that could not be turned into a batch may be sent again with the same id.
    await db.delete(schema.webhookDeliveries).where(and(eq(schema.webhookDeliveries.webhookId, id), eq(schema.webhookDeliveries.deliveryId, check.deliveryId)));
    throw err;
  }
});
