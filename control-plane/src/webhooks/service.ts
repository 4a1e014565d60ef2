/** Webhooks: stored templates that a signed POST turns into a batch. */
import { and, eq, isNull } from 'drizzle-orm';
import { newId, randomToken } from '../../../shared/ids.js';
import { sha256Hex } from '../../../shared/hashing.js';
import type { CreateWebhookRequest, WebhookDelivery, WebhookView } from '../../../shared/api/webhooks.js';
import { MAX_INLINE_INPUT_BYTES } from '../../../shared/api/webhooks.js';
import type { z } from 'zod';
import { schema } from '../db/client.js';
import { ApiError, badRequest, notFound } from '../errors.js';
import { blobKey } from '../storage/s3.js';
import { requirePool, uploadsFor, validateRequirements } from '../executions/service.js';
import { createBatch, submitBatch, tracker } from '../batches/service.js';
import { confirmBlobs } from '../executions/blobs.js';
import type { AppContext } from '../context.js';

type Create = z.output<typeof CreateWebhookRequest>;
type Delivery = z.output<typeof WebhookDelivery>;
export type WebhookTemplate = Create['template'] & { parallel?: number };

export function toView(row: typeof schema.webhooks.$inferSelect): WebhookView {
  return { id: row.id, name: row.name, path: `/hooks/${row.id}`, allowedHosts: row.allowedHosts, createdAt: new Date(row.createdAt).toISOString() };
}

export async function createWebhook(c: AppContext, req: Create) {
  validateRequirements(req.template.requirements);
  await requirePool(c.get('db'), req.template.pool);
  const secret = `whsec_${randomToken(40)}`;
  const row = {
    id: newId('webhook'),
    accountId: c.get('caller').accountId,
    name: req.name,
    secret,
    template: { ...req.template, parallel: req.parallel },
    allowedHosts: req.allowedHosts.map((h) => h.toLowerCase()),
    createdAt: c.get('now')(),
  };
  await c.get('db').insert(schema.webhooks).values(row);
  return { webhook: toView(row as typeof schema.webhooks.$inferSelect), secret, uploads: await uploadsFor(c, [req.template.script.sha256]) };
}

export async function listWebhooks(c: AppContext) {
  const rows = await c
    .get('db')
    .select()
    .from(schema.webhooks)
    .where(and(eq(schema.webhooks.accountId, c.get('caller').accountId), isNull(schema.webhooks.deletedAt)))
    .all();
  return rows.map(toView);
}

export async function deleteWebhook(c: AppContext, id: string) {
  const row = await c
    .get('db')
    .update(schema.webhooks)
    .set({ deletedAt: c.get('now')() })
    .where(and(eq(schema.webhooks.id, id), eq(schema.webhooks.accountId, c.get('caller').accountId), isNull(schema.webhooks.deletedAt)))
    .returning()
    .get();
  if (!row) throw notFound('Webhook', id);
  return toView(row);
}

function decodeInline(name: string, content: string, encoding: 'utf8' | 'base64'): Uint8Array {
  if (encoding === 'utf8') return new TextEncoder().encode(content);
  let bin: string;
  try {
    bin = atob(content);
  } catch {
    // atob throws on characters outside the base64 alphabet and on a bad length: the sender's mistake.
    throw badRequest(`input ${name}: content is not valid base64`, 'Encode the file with standard base64 (A-Z a-z 0-9 + /, = padding), or send text with encoding "utf8".');
  }
  return Uint8Array.from(bin, (ch) => ch.charCodeAt(0));
}

/**
 * Turns a verified delivery into a submitted batch: inline inputs are stored as blobs by the
 * control plane (small by contract), sha256 inputs must be the account's blobs already.
 */
export async function deliver(c: AppContext, hook: typeof schema.webhooks.$inferSelect, body: Delivery, deliveryId: string): Promise<{ batchId: string; items: number }> {
  const template = hook.template as WebhookTemplate;
  const store = c.get('store');
  const db = c.get('db');
  const names = new Set<string>();
  const items = [];
  const remote = new Map<string, { path: string; url: string; arg?: number }[]>();
  for (const input of body.inputs) {
    if (names.has(input.name)) throw badRequest(`input "${input.name}" appears twice`, 'Give each input a distinct name.');
    names.add(input.name);
    let ref: { sha256: string; size: number } | null;
    if (input.content !== undefined) {
      const bytes = decodeInline(input.name, input.content, input.encoding);
      if (bytes.length > MAX_INLINE_INPUT_BYTES) throw new ApiError('payload_too_large', `inline input ${input.name} is larger than ${MAX_INLINE_INPUT_BYTES} bytes`, 'Upload larger files first and pass their sha256.');
      const sha256 = await sha256Hex(bytes);
      await store.put(blobKey(hook.accountId, sha256), bytes);
      ref = { sha256, size: bytes.length };
    } else if (input.sha256 !== undefined) {
      ref = { sha256: input.sha256, size: input.size! };
    } else {
      const url = new URL(input.url!);
      if (url.protocol !== 'https:' || !hook.allowedHosts.includes(url.host.toLowerCase())) {
        throw badRequest(`input ${input.name}: ${url.protocol}//${url.host} is not an allowed source`, `This webhook fetches only https URLs on hosts it allows (${hook.allowedHosts.join(', ') || 'none'}); recreate it with --allow-host.`);
      }
      ref = null;
    }
    const args = template.args.includes('{}') ? template.args.map((a) => (a === '{}' ? input.name : a)) : [...template.args, input.name];
    const argIndex = args.indexOf(input.name);
    const arg = argIndex >= 0 ? { arg: argIndex } : {};
    if (ref) items.push({ inputName: input.name, args, inputs: [{ path: input.name, ...ref, ...arg }], metadata: {} });
    else {
      items.push({ inputName: input.name, args, inputs: [], metadata: {} });
      remote.set(input.name, [{ path: input.name, url: input.url!, ...arg }]);
    }
  }
  await confirmBlobs(
    db,
    store,
    hook.accountId,
    items.filter((i) => i.inputs.length).map((i) => ({ ...i.inputs[0]!, label: `input ${i.inputName}` })),
    'Store the file first with `rgrid upload FILE` (or POST /api/v1/blobs), then send the delivery again.',
  );
  const { parallel, args: _args, ...batchTemplate } = template;
  const created = await createBatch(c, {
    name: `webhook ${hook.name}`,
    template: batchTemplate,
    items,
    parallel,
    failFast: false,
    reuseResults: false,
    forceUpload: false,
    noCache: false,
    metadata: { ...body.metadata, 'rgrid.webhook': hook.id, 'rgrid.delivery': deliveryId },
  }, remote);
  await db.update(schema.batches).set({ webhookId: hook.id, callbackUrl: body.callback_url ?? null }).where(eq(schema.batches.id, created.batch.id));
  if (body.callback_url) await tracker(c, created.batch.id).setCallback(body.callback_url, hook.secret);
  await submitBatch(c, created.batch.id);
  return { batchId: created.batch.id, items: items.length };
}
