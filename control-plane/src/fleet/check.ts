/**
 * When the autoscaler runs: every pool from the cron trigger (index.ts `scheduled`), one pool
 * right after its queue grew (the Dispatcher's enqueue calls `fleetCheckSoon`), and on demand
 * (POST /admin/v1/fleet/reconcile). All three end in reconcilePool, which serializes per pool.
 */
import { loadConfig, type Bindings } from '../env.js';
import { getDb } from '../db/client.js';
import type { DispatcherStats } from '../dispatch/types.js';
import { HetznerClient } from './hetzner.js';
import { reconcilePool, type FleetContext, type ReconcileOutcome } from './reconcile.js';
import { listPoolEntries } from './store.js';
import { poolQueue, requestDrain } from '../dispatch/shards.js';

/** The autoscaler's dependencies from the Worker's bindings, or null while HETZNER_TOKEN is unset. */
export function fleetContext(env: Bindings, queue?: FleetContext['queue']): FleetContext | null {
  if (!env.HETZNER_TOKEN) return null;
  const config = loadConfig(env);
  const token = config.fleet.hetznerToken;
  if (!token) return null;
  return {
    db: getDb(env.DB),
    config,
    hetzner: new HetznerClient({ token, baseUrl: config.fleet.hetznerApiUrl }),
    drainRunner: (runnerId) => requestDrain(env, runnerId),
    queue: queue ?? ((pool) => poolQueue(env, pool)),
  };
}

/** Cron: checks every pool that has autoscaling enabled, one after the other. */
export async function runFleetCron(env: Bindings): Promise<ReconcileOutcome[]> {
  let ctx: FleetContext | null;
  try {
    ctx = fleetContext(env);
  } catch (err) {
    console.error('fleet: control plane misconfigured, autoscaler not run', err);
    return [];
  }
  if (!ctx) return [];
  const out: ReconcileOutcome[] = [];
  for (const entry of await listPoolEntries(ctx.db)) {
    if (!entry.config.enabled) continue;
    try {
      out.push(await reconcilePool(ctx, entry.pool.name));
    } catch (err) {
      console.error(`fleet: check of pool ${entry.pool.name} failed`, err);
    }
  }
  return out;
}

/** Wait this long after the first enqueue of a burst, so one check sees the whole burst. */
export const SETTLE_MS = 1000;
/** At most one immediate check per pool this often (the cron covers the rest). */
export const MIN_INTERVAL_MS = 10_000;

const pending = new Map<string, { scheduled: boolean; lastRun: number }>();

/**
 * Called by the Dispatcher after it queued work: schedules one check of its pool (debounced per
 * Dispatcher instance) that can add servers before the next cron tick. A no-op without
 * HETZNER_TOKEN. Never throws; the check's own failures are logged and recorded.
 */
export function fleetCheckSoon(env: Bindings, state: DurableObjectState, executionId: string, stats: () => Promise<DispatcherStats>): void {
  if (!env.HETZNER_TOKEN) return;
  const key = state.id.toString();
  const s = pending.get(key) ?? { scheduled: false, lastRun: 0 };
  pending.set(key, s);
  if (s.scheduled) return;
  s.scheduled = true;
  const wait = Math.max(SETTLE_MS, s.lastRun + MIN_INTERVAL_MS - Date.now());
  const check = async () => {
    await new Promise((r) => setTimeout(r, wait));
    // Cleared before the check: work queued while it runs schedules the next one.
    s.scheduled = false;
    s.lastRun = Date.now();
    if ((await stats()).ready === 0) return;
    const row = await env.DB.prepare('SELECT pool FROM executions WHERE id = ?').bind(executionId).first<{ pool: string }>();
    const ctx = row ? fleetContext(env, () => stats()) : null;
    if (row && ctx) await reconcilePool(ctx, row.pool);
  };
  state.waitUntil(
    check().catch((err) => {
      s.scheduled = false;
      console.error('fleet: immediate check failed', err);
    }),
  );
}
