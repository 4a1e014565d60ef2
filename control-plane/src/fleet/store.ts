/** D1 access of the autoscaler: pool configs, the per-pool lock, server rows and decisions. */
import { and, desc, eq, inArray, isNull, lt, or, sql } from 'drizzle-orm';
import { FleetPoolConfig, type FleetDecision } from '../../../shared/fleet/api.js';
import { RUNNER_SERVER_LABEL } from '../../../shared/fleet/labels.js';
import { schema, type Db } from '../db/client.js';

export type ServerRow = typeof schema.servers.$inferSelect;
export type RunnerRow = typeof schema.runners.$inferSelect;
export type DecisionRow = typeof schema.fleetDecisions.$inferSelect;
export type NewDecision = typeof schema.fleetDecisions.$inferInsert;

export interface PoolEntry {
  pool: { id: string; name: string };
  config: FleetPoolConfig;
}

/** Decisions older than this are pruned by the check itself. */
export const DECISION_RETENTION_MS = 30 * 86400_000;

export async function getPoolEntry(db: Db, poolName: string): Promise<PoolEntry | null> {
  const row = await db
    .select({ id: schema.pools.id, name: schema.pools.name, config: schema.fleetPools.config })
    .from(schema.pools)
    .leftJoin(schema.fleetPools, eq(schema.fleetPools.poolId, schema.pools.id))
    .where(eq(schema.pools.name, poolName))
    .get();
  if (!row) return null;
  return { pool: { id: row.id, name: row.name }, config: FleetPoolConfig.parse(row.config ?? { enabled: false }) };
}

/** Pools that have a fleet config (enabled or not). */
export async function listPoolEntries(db: Db): Promise<PoolEntry[]> {
  const rows = await db
    .select({ id: schema.pools.id, name: schema.pools.name, config: schema.fleetPools.config })
    .from(schema.fleetPools)
    .innerJoin(schema.pools, eq(schema.pools.id, schema.fleetPools.poolId))
    .orderBy(schema.pools.name)
    .all();
  return rows.map((r) => ({ pool: { id: r.id, name: r.name }, config: FleetPoolConfig.parse(r.config) }));
}

export async function putPoolConfig(db: Db, poolId: string, config: FleetPoolConfig, now: number): Promise<void> {
  await db
    .insert(schema.fleetPools)
    .values({ poolId, config, updatedAt: now })
    .onConflictDoUpdate({ target: schema.fleetPools.poolId, set: { config, updatedAt: now } });
}

/**
 * Takes the pool's lock unless someone holds an unexpired one: one statement, so two checks
 * racing for it cannot both win. A holder that died frees it when it expires.
 */
export async function acquireLock(db: Db, poolId: string, holder: string, now: number, ttlMs: number): Promise<boolean> {
  const l = schema.fleetLocks;
  const res = await db
    .insert(l)
    .values({ poolId, holder, expiresAt: now + ttlMs })
    .onConflictDoUpdate({ target: l.poolId, set: { holder, expiresAt: now + ttlMs }, setWhere: lt(l.expiresAt, now) })
    .run();
  return res.meta.changes === 1;
}

export async function releaseLock(db: Db, poolId: string, holder: string): Promise<void> {
  await db.delete(schema.fleetLocks).where(and(eq(schema.fleetLocks.poolId, poolId), eq(schema.fleetLocks.holder, holder)));
}

/** The pool's servers that are not deleted. */
export async function liveServerRows(db: Db, poolId: string): Promise<ServerRow[]> {
  return db.select().from(schema.servers).where(and(eq(schema.servers.poolId, poolId), isNull(schema.servers.deletedAt))).all();
}

/** Runners of the pool that run on one of these servers (by their rgrid.server label or server_id). */
export async function runnersOfServers(db: Db, poolId: string, serverIds: string[]): Promise<RunnerRow[]> {
  if (!serverIds.length) return [];
  const r = schema.runners;
  const label = sql<string>`json_extract(${r.labels}, ${`$."${RUNNER_SERVER_LABEL}"`})`;
  const out: RunnerRow[] = [];
  for (let i = 0; i < serverIds.length; i += 40) {
    const part = serverIds.slice(i, i + 40);
    out.push(...(await db.select().from(r).where(and(eq(r.poolId, poolId), or(inArray(label, part), inArray(r.serverId, part)))).all()));
  }
  return out;
}

export function serverOfRunner(r: RunnerRow): string | null {
  return r.serverId ?? r.labels[RUNNER_SERVER_LABEL] ?? null;
}

export async function recordDecisions(db: Db, rows: NewDecision[]): Promise<DecisionRow[]> {
  const out: DecisionRow[] = [];
  for (let i = 0; i < rows.length; i += 8) {
    out.push(...(await db.insert(schema.fleetDecisions).values(rows.slice(i, i + 8)).returning().all()));
  }
  return out;
}

export async function latestDecisions(db: Db, poolId: string, limit: number, action?: DecisionRow['action']): Promise<DecisionRow[]> {
  const d = schema.fleetDecisions;
  return db
    .select()
    .from(d)
    .where(action ? and(eq(d.poolId, poolId), eq(d.action, action)) : eq(d.poolId, poolId))
    .orderBy(desc(d.at), desc(d.id))
    .limit(limit)
    .all();
}

export async function pruneDecisions(db: Db, poolId: string, now: number): Promise<void> {
  await db.delete(schema.fleetDecisions).where(and(eq(schema.fleetDecisions.poolId, poolId), lt(schema.fleetDecisions.at, now - DECISION_RETENTION_MS)));
}

export function decisionView(d: DecisionRow, pool: string): FleetDecision {
  return {
    id: d.id,
    pool,
    at: new Date(d.at).toISOString(),
    action: d.action,
    serverId: d.serverId,
    providerId: d.providerId,
    reason: d.reason,
    outcome: d.outcome,
    error: d.error,
  };
}
