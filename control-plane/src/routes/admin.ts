/** Admin API: bootstrap accounts, API keys, pools and runner registration tokens. */
import { Hono } from 'hono';
import { eq } from 'drizzle-orm';
import { newId, newSecret, visiblePrefix } from '../../../shared/ids.js';
import { sha256Hex } from '../../../shared/hashing.js';
import {
  CreateAccountRequest,
  CreateApiKeyRequest,
  CreatePoolRequest,
  CreateRegistrationTokenRequest,
  type CreateAccountResponse,
  type CreateApiKeyResponse,
  type CreatePoolResponse,
  type CreateRegistrationTokenResponse,
} from '../../../shared/api/admin.js';
import { schema } from '../db/client.js';
import { dispatcherAt } from '../dispatch/shards.js';
import { d1Counter } from '../db/counting.js';
import { ApiError, notFound } from '../errors.js';
import { readJson } from '../validate.js';
import { z } from 'zod';
import { sweep } from '../retention/sweep.js';
import type { AppEnv } from '../context.js';

export const adminRoutes = new Hono<AppEnv>();

const iso = (ms: number) => new Date(ms).toISOString();

adminRoutes.post('/accounts', async (c) => {
  const body = await readJson(c, CreateAccountRequest);
  const row = { id: newId('account'), name: body.name, createdAt: c.get('now')() };
  await c.get('db').insert(schema.accounts).values(row);
  const res: CreateAccountResponse = { account: { ...row, createdAt: iso(row.createdAt) } };
  return c.json(res, 201);
});

adminRoutes.post('/accounts/:id/api-keys', async (c) => {
  const body = await readJson(c, CreateApiKeyRequest);
  const accountId = c.req.param('id');
  const db = c.get('db');
  const account = await db.select().from(schema.accounts).where(eq(schema.accounts.id, accountId)).get();
  if (!account) throw notFound('Account', accountId);
  const key = newSecret('apiKey');
  const row = { id: newId('apiKey'), accountId, name: body.name, prefix: visiblePrefix(key), keyHash: await sha256Hex(key), createdAt: c.get('now')() };
  await db.insert(schema.apiKeys).values(row);
  const res: CreateApiKeyResponse = {
    apiKey: { id: row.id, name: row.name, prefix: row.prefix, createdAt: iso(row.createdAt), revokedAt: null },
    key,
  };
  return c.json(res, 201);
});

adminRoutes.post('/api-keys/:id/revoke', async (c) => {
  const id = c.req.param('id');
  const db = c.get('db');
  const now = c.get('now')();
  const row = await db.update(schema.apiKeys).set({ revokedAt: now }).where(eq(schema.apiKeys.id, id)).returning().get();
  if (!row) throw notFound('API key', id);
  return c.json({ apiKey: { id: row.id, name: row.name, prefix: row.prefix, createdAt: iso(row.createdAt), revokedAt: iso(now) } });
});

adminRoutes.post('/pools', async (c) => {
  const body = await readJson(c, CreatePoolRequest);
  const db = c.get('db');
  const existing = await db.select().from(schema.pools).where(eq(schema.pools.name, body.name)).get();
  if (existing) {
    const shards = Math.max(existing.dispatchShards, body.dispatchShards ?? 1);
    if (shards !== existing.dispatchShards) await db.update(schema.pools).set({ dispatchShards: shards }).where(eq(schema.pools.id, existing.id));
    const res: CreatePoolResponse = { pool: { ...existing, dispatchShards: shards, createdAt: iso(existing.createdAt) } };
    return c.json(res, 200);
  }
  const row = { id: newId('pool'), name: body.name, dispatchShards: body.dispatchShards ?? 1, createdAt: c.get('now')() };
  await db.insert(schema.pools).values(row);
  const res: CreatePoolResponse = { pool: { ...row, createdAt: iso(row.createdAt) } };
  return c.json(res, 201);
});

adminRoutes.post('/pools/:name/registration-tokens', async (c) => {
  const body = await readJson(c, CreateRegistrationTokenRequest);
  const name = c.req.param('name');
  const db = c.get('db');
  const pool = await db.select().from(schema.pools).where(eq(schema.pools.name, name)).get();
  if (!pool) throw new ApiError('not_found', `pool ${name} not found`, 'Create it first with POST /admin/v1/pools.');
  const token = newSecret('registrationToken');
  const now = c.get('now')();
  const expiresAt = body.expiresInSeconds ? now + body.expiresInSeconds * 1000 : null;
  const id = newId('registrationToken');
  await db.insert(schema.registrationTokens).values({ id, poolId: pool.id, tokenHash: await sha256Hex(token), maxUses: body.maxUses ?? null, expiresAt, createdAt: now });
  const res: CreateRegistrationTokenResponse = { id, pool: pool.name, token, expiresAt: expiresAt === null ? null : iso(expiresAt) };
  return c.json(res, 201);
});

/** Runs the retention sweep now (the cron runs it every 5 minutes); `now` (ms) lets tests move the clock. */
adminRoutes.post('/retention/sweep', async (c) => {
  const body = await readJson(c, z.strictObject({ now: z.number().int().optional(), limit: z.number().int().min(1).max(10_000).optional() }));
  const config = c.get('config');
  return c.json(await sweep(c.get('db'), c.get('store'), body.now ?? c.get('now')(), config.artifactRetentionDays, body.limit));
});

/**
 * The Dispatchers of a pool as they stand, with the D1 round trips made since the isolates
 * started (the dispatch bench divides them by the jobs it ran). Isolates are told apart by id:
 * the Worker and its Durable Objects may share one.
 */
adminRoutes.get('/pools/:name/dispatch', async (c) => {
  const name = c.req.param('name');
  const pool = await c.get('db').select().from(schema.pools).where(eq(schema.pools.name, name)).get();
  if (!pool) throw notFound('Pool', name);
  const shards = await Promise.all(Array.from({ length: pool.dispatchShards }, (_, s) => dispatcherAt(c.env, name, s).d1Stats()));
  const isolates = new Map<string, number>([[d1Counter.isolate, d1Counter.roundTrips]]);
  for (const s of shards) isolates.set(s.isolate, s.roundTrips);
  return c.json({ pool: name, shards: shards.map((s) => s.stats), d1RoundTrips: [...isolates.values()].reduce((a, b) => a + b, 0) });
});

/** Each shard's audit (dispatcher.ts audit()): what the chaos test compares with D1. */
adminRoutes.get('/pools/:name/dispatch/audit', async (c) => {
  const name = c.req.param('name');
  const pool = await c.get('db').select().from(schema.pools).where(eq(schema.pools.name, name)).get();
  if (!pool) throw notFound('Pool', name);
  const shards = await Promise.all(Array.from({ length: pool.dispatchShards }, (_, s) => dispatcherAt(c.env, name, s).audit()));
  return c.json({ pool: name, shards });
});
