/**
 * Webhooks: a stored job template that an HTTP POST turns into a batch. Deliveries are signed
 * with HMAC-SHA256 over "<timestamp>.<delivery id>.<body>" (headers X-RGrid-Timestamp,
 * X-RGrid-Delivery, X-RGrid-Signature: sha256=<hex>); the completion callback is signed the same way.
 */
import { z } from 'zod';
import { LIMITS } from '../limits.js';
import { BatchId } from '../ids.js';
import { BlobUpload, FileName, Sha256, StringMap, Timestamp } from './common.js';
import { BatchTemplate } from './batches.js';

/** Inline input content is for small files; bigger ones are uploaded first and named by sha256. */
export const MAX_INLINE_INPUT_BYTES = 256 * 1024;

export const CreateWebhookRequest = z.strictObject({
  name: z.string().min(1).max(100),
  template: BatchTemplate.extend({ args: z.array(z.string().max(LIMITS.maxArgBytes)).max(LIMITS.maxArgs).default([]) }),
  parallel: z.number().int().min(1).max(10_000).optional(),
  /** Hosts whose https URLs deliveries may name as inputs (fetched by the runner). */
  allowedHosts: z.array(z.string().regex(/^[a-z0-9.-]+(:\d+)?$/i, 'a host name, e.g. data.example.com')).max(50).default([]),
});
export type CreateWebhookRequest = z.input<typeof CreateWebhookRequest>;

export const WebhookView = z.object({
  id: z.string(),
  name: z.string(),
  /** Path to POST deliveries to, relative to the API URL. */
  path: z.string(),
  allowedHosts: z.array(z.string()),
  createdAt: Timestamp,
});
export type WebhookView = z.infer<typeof WebhookView>;

export const CreateWebhookResponse = z.object({
  webhook: WebhookView,
  /** HMAC signing secret: shown once. */
  secret: z.string(),
  /** Presigned PUT for the script when the account does not have it yet. */
  uploads: z.array(BlobUpload),
});
export type CreateWebhookResponse = z.infer<typeof CreateWebhookResponse>;
export const ListWebhooksResponse = z.object({ webhooks: z.array(WebhookView) });
export type ListWebhooksResponse = z.infer<typeof ListWebhooksResponse>;
/** DELETE /api/v1/webhooks/{id}: the webhook as it was; deliveries to it answer 404 from now on. */
export const DeleteWebhookResponse = z.object({ webhook: WebhookView });
export type DeleteWebhookResponse = z.infer<typeof DeleteWebhookResponse>;

export const WebhookInput = z
  .strictObject({
    /** File name the item sees in /work, and the batch item's input name. */
    name: FileName,
    /** Small inline content (UTF-8 text), or base64 with encoding "base64". */
    content: z.string().max(Math.ceil((MAX_INLINE_INPUT_BYTES * 4) / 3) + 4).optional(),
    encoding: z.enum(['utf8', 'base64']).default('utf8'),
    /** A blob this account already uploaded. */
    sha256: Sha256.optional(),
    size: z.number().int().min(0).optional(),
    /** An https URL on the webhook's allowlist, fetched by the runner before the job. */
    url: z.string().url().optional(),
  })
  .refine((i) => [i.content !== undefined, i.sha256 !== undefined, i.url !== undefined].filter(Boolean).length === 1, 'give exactly one of content, sha256 or url')
  .refine((i) => i.sha256 === undefined || i.size !== undefined, 'size is required with sha256');
export type WebhookInput = z.input<typeof WebhookInput>;

export const WebhookDelivery = z.strictObject({
  inputs: z.array(WebhookInput).min(1).max(1000),
  metadata: StringMap(LIMITS.maxMetadataPairs, LIMITS.maxMetadataValueBytes).default({}),
  /** Receives a signed POST with the batch summary when the batch finishes. */
  callback_url: z.string().url().optional(),
});
export type WebhookDelivery = z.input<typeof WebhookDelivery>;

export const WebhookDeliveryResponse = z.object({ batchId: BatchId, items: z.number().int() });
export type WebhookDeliveryResponse = z.infer<typeof WebhookDeliveryResponse>;
