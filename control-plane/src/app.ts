/**
 * createApp(): middleware, one sub-router per resource, and one error handler that turns every
 * failure into the shared JSON error envelope (STYLE.md #8).
 */
import { Hono } from 'hono';
import { errorEnvelope } from '../../shared/errors.js';
import { loadConfig } from './env.js';
import { getDb } from './db/client.js';
import { countingD1 } from './db/counting.js';
import { ObjectStore } from './storage/s3.js';
import { ApiError } from './errors.js';
import { requireAdmin, requireUser } from './auth.js';
import { executionRoutes } from './routes/executions.js';
import { artifactRoutes } from './routes/artifacts.js';
import { runnerRoutes } from './routes/runner.js';
import { adminRoutes } from './routes/admin.js';
import { fleetRoutes } from './routes/fleet.js';
import { batchRoutes, retryRoutes } from './routes/batches.js';
import { hookRoutes, webhookRoutes } from './routes/webhooks.js';
import { uploadRoutes } from './routes/uploads.js';
import { blobRoutes } from './routes/blobs.js';
import { cacheRoutes } from './routes/cache.js';
import { openApiDocument } from './openapi.js';
import type { AppEnv } from './context.js';

export const VERSION = '0.1.0';

const dbs = new WeakMap<D1Database, ReturnType<typeof getDb>>();
function dbFor(d1: D1Database) {
  let db = dbs.get(d1);
  if (!db) dbs.set(d1, (db = getDb(countingD1(d1))));
  return db;
}

/** One object store client per isolate (its signing keys are derived once, not per request). */
const stores = new WeakMap<object, ObjectStore>();
function storeFor(config: { s3: ConstructorParameters<typeof ObjectStore>[0] }): ObjectStore {
  let store = stores.get(config);
  if (!store) stores.set(config, (store = new ObjectStore(config.s3)));
  return store;
}

export interface AppOptions {
  /** Clock override for tests (retention, expiry). */
  now?: () => number;
}

export function createApp(opts: AppOptions = {}) {
  const app = new Hono<AppEnv>();

  app.use('*', async (c, next) => {
    let config;
    try {
      config = loadConfig(c.env);
    } catch (err) {
      throw new ApiError('internal', `control plane is misconfigured: ${(err as Error).message}`, 'Check the Worker vars and secrets (docs/deploy.md).');
    }
    c.set('config', config);
    c.set('db', dbFor(c.env.DB));
    c.set('store', storeFor(config));
    c.set('now', opts.now ?? Date.now);
    await next();
  });

  app.get('/health', (c) => c.json({ ok: true as const, version: VERSION, time: new Date().toISOString() }));
  app.get('/openapi.json', (c) => c.json(openApiDocument(VERSION)));

  const api = new Hono<AppEnv>();
  api.use('*', requireUser);
  api.get('/whoami', (c) => {
    const caller = c.get('caller');
    return c.json({ account: { id: caller.accountId, name: caller.accountName }, apiKey: { id: caller.apiKeyId, prefix: caller.apiKeyPrefix } });
  });
  api.route('/executions', retryRoutes);
  api.route('/executions', executionRoutes);
  api.route('/batches', batchRoutes);
  api.route('/webhooks', webhookRoutes);
  api.route('/uploads', uploadRoutes);
  api.route('/blobs', blobRoutes);
  api.route('/cache', cacheRoutes);
  api.route('/executions', artifactRoutes);
  app.route('/api/v1', api);

  app.route('/runner/v1', runnerRoutes);
  app.route('/hooks', hookRoutes);

  const admin = new Hono<AppEnv>();
  admin.use('*', requireAdmin);
  admin.route('/', adminRoutes);
  admin.route('/fleet', fleetRoutes);
  app.route('/admin/v1', admin);

  app.notFound((c) => c.json(errorEnvelope('not_found', `no route for ${c.req.method} ${new URL(c.req.url).pathname}`, 'See /openapi.json for the API.'), 404));

  app.onError((err, c) => {
    if (err instanceof ApiError) {
      // Server-side failures (e.g. the object store down) are the operator's to see, once per request.
      if (err.status >= 500) console.error(`${c.req.method} ${new URL(c.req.url).pathname}: ${err.code}: ${err.message}`);
      return c.json(err.toJSON(), err.status as 400);
    }
    console.error('unhandled error', err);
    return c.json(errorEnvelope('internal', 'internal error', 'Retry; if it keeps failing, report it with the time of the request.'), 500);
  });

  return app;
}
