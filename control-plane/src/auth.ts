/**
 * Three kinds of credentials, never interchangeable:
 * - user API keys (rgrid_sk_…) for /api/v1, scoped to one account;
 * - runner tokens (rgrid_rt_…) for /runner/v1, scoped to one pool;
 * - the admin secret for /admin/v1.
 * Only sha256 hashes of keys and tokens are stored.
 */
import { and, eq, isNull } from 'drizzle-orm';
import { createMiddleware } from 'hono/factory';
import { SECRET_PREFIXES } from '../../shared/ids.js';
import { sha256Hex } from '../../shared/hashing.js';
import { schema } from './db/client.js';
import { ApiError } from './errors.js';
import type { AppEnv, RunnerCaller } from './context.js';

function bearer(header: string | undefined): string | null {
  const m = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  return m ? m[1]! : null;
}

const unauthorized = (message: string, hint: string) => new ApiError('unauthorized', message, hint);

/** Constant-time string comparison (avoids leaking the admin secret through timing). */
function safeEqual(a: string, b: string): boolean {
  const ea = new TextEncoder().encode(a);
  const eb = new TextEncoder().encode(b);
  let diff = ea.length ^ eb.length;
  for (let i = 0; i < Math.max(ea.length, eb.length); i++) diff |= (ea[i] ?? 0) ^ (eb[i] ?? 0);
  return diff === 0;
}

export const requireUser = createMiddleware<AppEnv>(async (c, next) => {
  const token = bearer(c.req.header('authorization'));
  if (!token) throw unauthorized('missing API key', 'Send `Authorization: Bearer rgrid_sk_…`; run `rgrid login` to store a key.');
  if (!token.startsWith(SECRET_PREFIXES.apiKey)) {
    throw unauthorized('this endpoint takes a user API key (rgrid_sk_…)', 'Runner tokens only work on /runner/v1.');
  }
  const db = c.get('db');
  const hash = await sha256Hex(token);
  const row = await db
    .select({ keyId: schema.apiKeys.id, prefix: schema.apiKeys.prefix, accountId: schema.accounts.id, accountName: schema.accounts.name })
    .from(schema.apiKeys)
    .innerJoin(schema.accounts, eq(schema.accounts.id, schema.apiKeys.accountId))
    .where(and(eq(schema.apiKeys.keyHash, hash), isNull(schema.apiKeys.revokedAt)))
    .get();
  if (!row) throw unauthorized('invalid or revoked API key', 'Create a new key and run `rgrid login --api-key …`.');
  c.set('caller', { accountId: row.accountId, accountName: row.accountName, apiKeyId: row.keyId, apiKeyPrefix: row.prefix });
  await next();
});

/**
 * Runner credentials are checked against D1 once per RUNNER_AUTH_TTL_MS per isolate, not on every
 * request: runners call several times a second across a fleet, and D1 is one database for the
 * whole system. The price: a runner whose row is deleted keeps working for up to that long on an
 * isolate that checked it before (docs/ARCHITECTURE.md, "Runner authentication").
 */
export const RUNNER_AUTH_TTL_MS = 30_000;
const runnerCache = new Map<string, { caller: RunnerCaller; until: number }>();
const RUNNER_CACHE_MAX = 10_000;

export const requireRunner = createMiddleware<AppEnv>(async (c, next) => {
  const token = bearer(c.req.header('authorization'));
  if (!token) throw unauthorized('missing runner token', 'Register the runner with a registration token first.');
  if (!token.startsWith(SECRET_PREFIXES.runnerToken)) {
    throw unauthorized('this endpoint takes a runner token (rgrid_rt_…)', 'User API keys only work on /api/v1.');
  }
  const now = Date.now();
  // Keyed by the token itself (kept only in this isolate's memory): a hit costs no hashing either.
  let hit = runnerCache.get(token);
  if (!hit || hit.until <= now) {
    const hash = await sha256Hex(token);
    const row = await c
      .get('db')
      .select({ runnerId: schema.runners.id, poolId: schema.pools.id, poolName: schema.pools.name, shards: schema.pools.dispatchShards })
      .from(schema.runners)
      .innerJoin(schema.pools, eq(schema.pools.id, schema.runners.poolId))
      .where(eq(schema.runners.tokenHash, hash))
      .get();
    if (!row) {
      runnerCache.delete(token);
      throw unauthorized('unknown runner token', 'Register again with a registration token.');
    }
    if (runnerCache.size >= RUNNER_CACHE_MAX) runnerCache.clear();
    runnerCache.set(token, (hit = { caller: row, until: now + RUNNER_AUTH_TTL_MS }));
  }
  c.set('runner', hit.caller);
  await next();
});

export const requireAdmin = createMiddleware<AppEnv>(async (c, next) => {
  const secret = c.get('config').adminSecret;
  if (!secret) throw new ApiError('forbidden', 'admin API is disabled', 'Set the ADMIN_SECRET Worker secret to enable it.');
  const token = bearer(c.req.header('authorization'));
  if (!token || !safeEqual(token, secret)) throw unauthorized('invalid admin secret', 'Send `Authorization: Bearer <ADMIN_SECRET>`.');
  await next();
});
