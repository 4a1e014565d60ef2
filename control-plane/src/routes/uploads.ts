/** Client API: multipart uploads of large input blobs (/api/v1/uploads/multipart). */
import { Hono } from 'hono';
import { AbortMultipartRequest, CompleteMultipartRequest, CreateMultipartRequest } from '../../../shared/api/common.js';
import { readJson } from '../validate.js';
import { abortMultipart, completeMultipart, createMultipart } from '../uploads/multipart.js';
import type { AppEnv } from '../context.js';

export const uploadRoutes = new Hono<AppEnv>();
uploadRoutes.post('/multipart', async (c) => c.json(await createMultipart(c, c.get('caller').accountId, await readJson(c, CreateMultipartRequest)), 201));
uploadRoutes.post('/multipart/complete', async (c) => {
  await completeMultipart(c, c.get('caller').accountId, await readJson(c, CompleteMultipartRequest));
  return c.json({ ok: true as const });
});
uploadRoutes.post('/multipart/abort', async (c) => {
  await abortMultipart(c, c.get('caller').accountId, await readJson(c, AbortMultipartRequest));
  return c.json({ ok: true as const });
});
