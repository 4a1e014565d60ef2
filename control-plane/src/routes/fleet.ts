/**
 * Fleet admin API, mounted at /admin/v1/fleet (ADMIN_SECRET): per-pool autoscaling config,
 * fleet status (servers, runners, slots, queue depth, latest decisions), and an on-demand check.
 */
import { Hono } from 'hono';
import { and, desc, eq, gt, isNull, or } from 'drizzle-orm';
import { FleetPoolConfig, ReconcileRequest, type FleetPoolStatus, type FleetStatusResponse, type PutFleetPoolResponse, type ReconcileResponse } from '../../../shared/fleet/api.js';
import { schema, type Db } from '../db/client.js';
import { ApiError } from '../errors.js';
import { readJson } from '../validate.js';
import { poolShards, poolStats } from '../dispatch/shards.js';
import { fleetContext } from '../fleet/check.js';
import { reconcilePool } from '../fleet/reconcile.js';
import { decisionView, getPoolEntry, latestDecisions, listPoolEntries, putPoolConfig, serverOfRunner, type PoolEntry } from '../fleet/store.js';
import type { AppContext, AppEnv } from '../context.js';

export const fleetRoutes = new Hono<AppEnv>();

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
/** Recently deleted servers and recently seen runners stay in the status for this long. */
const RECENT_MS = 3600_000;

async function poolOrThrow(c: AppContext, name: string): Promise<PoolEntry> {
  const entry = await getPoolEntry(c.get('db'), name);
  if (!entry) throw new ApiError('not_found', `pool ${name} not found`, 'Create it first with POST /admin/v1/pools.');
  return entry;
}

fleetRoutes.get('/pools', async (c) => {
  const entries = await listPoolEntries(c.get('db'));
  return c.json({ pools: entries.map((e) => ({ pool: e.pool.name, config: e.config })) });
});

/** Sets a pool's autoscaling config (the whole config; omitted fields take their defaults). POST is the same as PUT. */
fleetRoutes.on(['PUT', 'POST'], '/pools/:name', async (c) => {
  const config = await readJson(c, FleetPoolConfig);
  const { pool } = await poolOrThrow(c, c.req.param('name'));
  await putPoolConfig(c.get('db'), pool.id, config, c.get('now')());
  return c.json({ pool: pool.name, config } satisfies PutFleetPoolResponse);
});

fleetRoutes.get('/status', async (c) => {
  const name = c.req.query('pool');
  const db = c.get('db');
  const entries = name ? [await poolOrThrow(c, name)] : await listPoolEntries(db);
  const pools = await Promise.all(entries.map((e) => poolStatus(c, db, e)));
  return c.json({ pools } satisfies FleetStatusResponse);
});

async function poolStatus(c: AppContext, db: Db, entry: PoolEntry): Promise<FleetPoolStatus> {
  const now = c.get('now')();
  const { pool } = entry;
  const configured = await db.select().from(schema.fleetPools).where(eq(schema.fleetPools.poolId, pool.id)).get();
  const stats = await poolStats(c.env, pool.name, await poolShards(c.env, pool.name));
  const s = schema.servers;
  const servers = await db
    .select()
    .from(s)
    .where(and(eq(s.poolId, pool.id), or(isNull(s.deletedAt), gt(s.deletedAt, now - RECENT_MS))))
    .orderBy(desc(s.createdAt))
    .limit(200)
    .all();
  const r = schema.runners;
  const runners = await db
    .select()
    .from(r)
    .where(and(eq(r.poolId, pool.id), gt(r.lastSeenAt, now - RECENT_MS)))
    .orderBy(desc(r.lastSeenAt))
    .limit(500)
    .all();
  const silentMs = entry.config.silentTimeoutSeconds * 1000;
  const live = runners.filter((x) => now - x.lastSeenAt <= silentMs && !x.draining && !x.drainRequested);
  const total = live.reduce((n, x) => n + x.slots, 0);
  const busy = live.reduce((n, x) => n + Math.min(x.slots, x.activeJobs), 0);
  const decisions = await latestDecisions(db, pool.id, 20);
  return {
    pool: pool.name,
    config: configured ? entry.config : null,
    queue: { ready: stats.ready, leased: stats.leased },
    slots: { total, busy, free: Math.max(0, total - busy) },
    servers: servers.map((x) => ({
      id: x.id,
      name: x.name,
      providerId: x.providerId,
      status: x.status as FleetPoolStatus['servers'][number]['status'],
      createdAt: new Date(x.createdAt).toISOString(),
      runnerId: x.runnerId,
      idleSince: iso(x.idleSince),
      drainRequestedAt: iso(x.drainRequestedAt),
    })),
    runners: runners.map((x) => ({
      id: x.id,
      name: x.name,
      serverId: serverOfRunner(x),
      slots: x.slots,
      activeJobs: x.activeJobs,
      draining: x.draining,
      drainRequested: x.drainRequested,
      lastSeenAt: new Date(x.lastSeenAt).toISOString(),
    })),
    decisions: decisions.map((d) => decisionView(d, pool.name)),
  };
}

/** Runs the autoscaler now, for one pool or every enabled one, and returns what it decided. */
fleetRoutes.post('/reconcile', async (c) => {
  const body = await readJson(c, ReconcileRequest);
  const ctx = fleetContext(c.env);
  if (!ctx) throw new ApiError('conflict', 'the autoscaler is off: HETZNER_TOKEN is not set', 'Set it with `wrangler secret put HETZNER_TOKEN` (docs/deploy.md).');
  ctx.now = c.get('now');
  const names = body.pool ? [(await poolOrThrow(c, body.pool)).pool.name] : (await listPoolEntries(ctx.db)).filter((e) => e.config.enabled).map((e) => e.pool.name);
  const results = [];
  for (const name of names) results.push(await reconcilePool(ctx, name));
  return c.json({ results } satisfies ReconcileResponse);
});
