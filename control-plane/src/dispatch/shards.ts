/**
 * Shards: a pool's queue may be split over several Dispatcher objects (pools.dispatch_shards), so
 * that no single object has to take every request of a large fleet. The Worker routes here:
 * - an execution lives in one shard for its whole life, chosen when it is created and stored in
 *   D1 (executions.shard); runners send it back with every call about the job;
 * - a batch with a --parallel cap lives in one shard, so its cap is decided by one object and
 *   stays exact; other executions spread over the shards by id;
 * - a runner long-polls its home shard and looks into the others when that one is empty (at
 *   once, then every STEAL_MS while it waits), so no work sits in a shard while runners idle.
 * Shard 0 of a pool is the object named after the pool (a pool that never had shards keeps it).
 */
import type { Bindings } from '../env.js';
import type { ClaimArgs, ClaimResult, DispatcherStats } from './types.js';

/** While a runner waits on its home shard, the other shards are looked at this often. */
export const STEAL_MS = 2000;

export function dispatcherAt(env: Bindings, pool: string, shard: number) {
  return env.DISPATCHER.get(env.DISPATCHER.idFromName(shard === 0 ? pool : `${pool}#${shard}`));
}

/** FNV-1a: a stable, cheap spread of ids over shards. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

export function shardFor(shards: number, executionId: string, cappedBatchId: string | null): number {
  return shards <= 1 ? 0 : hash(cappedBatchId ?? executionId) % shards;
}

export function homeShard(shards: number, runnerId: string): number {
  return shards <= 1 ? 0 : hash(runnerId) % shards;
}

/** Claims for a runner over the pool's shards: home first, then the others; long-polls home. */
export async function claimInPool(env: Bindings, pool: string, shards: number, args: ClaimArgs): Promise<{ shard: number; result: ClaimResult }> {
  const home = homeShard(shards, args.runnerId);
  if (shards <= 1) return { shard: 0, result: await dispatcherAt(env, pool, 0).claim(args) };
  const others = Array.from({ length: shards - 1 }, (_, i) => (home + 1 + i) % shards);
  const tryOthers = async () => {
    for (const s of others) {
      const result = await dispatcherAt(env, pool, s).claim({ ...args, waitMs: 0 });
      if (!result.ok || result.jobs.length) return { shard: s, result };
    }
    return undefined;
  };
  const deadline = Date.now() + args.waitMs;
  let first = true;
  for (;;) {
    const result = await dispatcherAt(env, pool, home).claim({ ...args, waitMs: first ? 0 : Math.max(0, Math.min(STEAL_MS, deadline - Date.now())) });
    if (!result.ok || result.jobs.length) return { shard: home, result };
    first = false;
    const stolen = await tryOthers();
    if (stolen) return stolen;
    if (Date.now() >= deadline) return { shard: home, result };
  }
}

/** Cancels a batch in every shard of its pool (each cancels what it holds; created ids go to their own shard). */
export async function cancelBatchInPool(env: Bindings, pool: string, shards: number, batchId: string, accountId: string, created: { id: string; shard: number }[], message: string) {
  const results = await Promise.all(
    Array.from({ length: Math.max(1, shards) }, (_, s) =>
      dispatcherAt(env, pool, s).cancelBatch(
        batchId,
        accountId,
        created.filter((c) => c.shard === s).map((c) => c.id),
        message,
      ),
    ),
  );
  return results.reduce((a, r) => ({ canceled: a.canceled + r.canceled, stopping: a.stopping + r.stopping }), { canceled: 0, stopping: 0 });
}

/** A pool's queue over all its shards (the autoscaler and fleet status read it). */
export async function poolStats(env: Bindings, pool: string, shards: number): Promise<DispatcherStats> {
  const all = await Promise.all(Array.from({ length: Math.max(1, shards) }, (_, s) => dispatcherAt(env, pool, s).stats()));
  return all.reduce((a, s) => ({ ready: a.ready + s.ready, leased: a.leased + s.leased, waiters: a.waiters + s.waiters, outbox: a.outbox + s.outbox }));
}

/** Tells a runner's home shard that the runner was asked to drain (D1 already says so). */
export async function requestDrain(env: Bindings, runnerId: string, drain = true): Promise<void> {
  const r = await env.DB.prepare(`SELECT p.name AS pool, p.dispatch_shards AS shards FROM runners r JOIN pools p ON p.id = r.pool_id WHERE r.id = ?`)
    .bind(runnerId)
    .first<{ pool: string; shards: number }>();
  if (r) await dispatcherAt(env, r.pool, homeShard(r.shards, runnerId)).setDrain(runnerId, drain);
}

/** How many shards a pool has (1 for a pool that does not exist: nothing to route). */
export async function poolShards(env: Bindings, pool: string): Promise<number> {
  return (await env.DB.prepare(`SELECT dispatch_shards AS n FROM pools WHERE name = ?`).bind(pool).first<{ n: number }>())?.n ?? 1;
}

/** Flushes every shard of a pool: D1 and the batch trackers then hold what the Dispatchers decided. */
export async function flushPool(env: Bindings, pool: string, shards: number): Promise<void> {
  await Promise.all(Array.from({ length: Math.max(1, shards) }, (_, s) => dispatcherAt(env, pool, s).flush()));
}

/**
 * The autoscaler's view of a pool: its Dispatchers flush first, so that D1's runner rows (liveness,
 * draining, active jobs) are as current as the queue counts read with them.
 */
export async function poolQueue(env: Bindings, pool: string): Promise<DispatcherStats> {
  const shards = await poolShards(env, pool);
  await flushPool(env, pool, shards);
  return poolStats(env, pool, shards);
}
