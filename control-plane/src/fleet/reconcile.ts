/**
 * The autoscaler's executor: for one pool, look (Hetzner's servers carrying the pool's labels,
 * our server rows, their runners, the dispatcher's queue), decide (decide.ts), act (create,
 * drain, delete) and record every decision with its reason in D1.
 *
 * Order, and why:
 *   - a D1 lock per pool first: the cron and the immediate check may run at once, and two
 *     checks seeing the same queue would both create servers;
 *   - Hetzner is listed before D1 is read: a server created by a check that died before writing
 *     its row is still found (by its labels) and judged like any other;
 *   - on create, the server row and its one-time registration token are written before the
 *     Hetzner call, so a server always has its token, and a failed call leaves a `failed` row;
 *   - on scale-down the runner is only asked to drain (its next heartbeat tells it); the server
 *     is deleted by a later check, once the runner reports idle or stops heartbeating.
 */
import { and, eq, isNull } from 'drizzle-orm';
import { newId, newSecret, randomToken } from '../../../shared/ids.js';
import { sha256Hex } from '../../../shared/hashing.js';
import { FLEET_LABELS, managedLabels, managedSelector, serverName } from '../../../shared/fleet/labels.js';
import { renderUserData } from '../../../shared/fleet/user-data.js';
import type { FleetDecision } from '../../../shared/fleet/api.js';
import { schema, type Db } from '../db/client.js';
import type { Config } from '../env.js';
import { decide, type FleetAction, type ServerView } from './decide.js';
import { HetznerError, type HetznerClient, type HetznerServer } from './hetzner.js';
import {
  acquireLock,
  decisionView,
  getPoolEntry,
  latestDecisions,
  liveServerRows,
  pruneDecisions,
  recordDecisions,
  releaseLock,
  runnersOfServers,
  serverOfRunner,
  type NewDecision,
  type PoolEntry,
  type RunnerRow,
  type ServerRow,
} from './store.js';

/** Long enough for a check with rate-limit backoff and a few creates; a dead holder frees it then. */
const LOCK_TTL_MS = 120_000;
/** The runner version servers install when neither the pool nor RUNNER_PACKAGE says otherwise. */
export const RUNNER_VERSION = '0.1.0';

export interface FleetContext {
  db: Db;
  config: Config;
  hetzner: HetznerClient;
  /** Ready and leased jobs of a pool (the Dispatcher's stats). */
  queue: (pool: string) => Promise<{ ready: number; leased: number }>;
  /** Tells the runner's Dispatcher that it was asked to drain (after D1 records it). */
  drainRunner?: (runnerId: string) => Promise<void>;
  now?: () => number;
}

export interface ReconcileOutcome {
  pool: string;
  skipped: string | null;
  decisions: FleetDecision[];
}

const skipped = (pool: string, why: string): ReconcileOutcome => ({ pool, skipped: why, decisions: [] });
/** Compares hold reasons without their changing numbers, so a steady hold is logged once. */
const shape = (reason: string) => reason.replace(/\d+/g, '#');

export async function reconcilePool(ctx: FleetContext, poolName: string): Promise<ReconcileOutcome> {
  const now = (ctx.now ?? Date.now)();
  const entry = await getPoolEntry(ctx.db, poolName);
  if (!entry) return skipped(poolName, `pool ${poolName} does not exist`);
  if (!entry.config.enabled) return skipped(poolName, 'autoscaling is disabled for this pool');
  const holder = randomToken(16);
  if (!(await acquireLock(ctx.db, entry.pool.id, holder, now, LOCK_TTL_MS))) return skipped(poolName, 'another check of this pool is running');
  try {
    const rows = await run(ctx, entry, now);
    await pruneDecisions(ctx.db, entry.pool.id, now);
    return { pool: poolName, skipped: null, decisions: rows.map((d) => decisionView(d, poolName)) };
  } finally {
    await releaseLock(ctx.db, entry.pool.id, holder);
  }
}

async function run(ctx: FleetContext, entry: PoolEntry, now: number) {
  const { db } = ctx;
  const { pool, config } = entry;
  const record = (rows: Omit<NewDecision, 'poolId' | 'at'>[]) => recordDecisions(db, rows.map((r) => ({ ...r, poolId: pool.id, at: now })));

  let listed: HetznerServer[];
  try {
    listed = await ctx.hetzner.listServers(managedSelector(pool.name));
  } catch (err) {
    return record([{ action: 'error', reason: 'could not list the pool\'s servers at Hetzner; nothing was changed', outcome: 'failed', error: message(err) }]);
  }
  const queue = await ctx.queue(pool.name);
  const rows = await liveServerRows(db, pool.id);
  const views = merge(listed, rows);
  const runners = await runnersOfServers(db, pool.id, views.map((v) => v.view.id));
  await attachRunners(db, views, runners, now);

  const decision = decide({ now, policy: config, queue, servers: views.map((v) => v.view) });
  const details = {
    ready: queue.ready,
    leased: queue.leased,
    servers: views.filter((v) => v.view.inProvider).length,
    runners: views.filter((v) => v.view.runner).length,
  };
  const out: Omit<NewDecision, 'poolId' | 'at'>[] = [];
  const byId = new Map(views.map((v) => [v.view.id, v]));
  let stopCreating: string | null = null;
  for (const action of decision.actions) {
    const target = action.kind === 'create' ? undefined : byId.get(action.serverId);
    if (action.kind === 'create' && stopCreating) {
      out.push({ action: 'create', reason: action.reason, outcome: 'skipped', error: stopCreating, details });
      continue;
    }
    try {
      const done = await act(ctx, entry, action, target, now);
      out.push({ action: action.kind, reason: action.reason, outcome: 'ok', error: null, details, ...done });
    } catch (err) {
      out.push({ action: action.kind, reason: action.reason, outcome: 'failed', error: message(err), details, serverId: action.kind === 'create' ? (err as CreateFailure).serverId ?? null : action.serverId, providerId: target?.view.providerId?.toString() ?? null });
      // A quota, a refused token or a missing setting fails every further create the same way:
      // say so once, then skip the rest of this check's creates.
      if (err instanceof CreateFailure) {
        const c = err.cause;
        if (!(c instanceof HetznerError)) stopCreating = 'not tried: an earlier create in this check failed';
        else if (c.quota || c.status === 401 || c.status === 403) stopCreating = `not tried: ${c.code} on an earlier create in this check`;
      }
    }
  }
  if (decision.holds.length) {
    // A hold repeats every check while it lasts; log it once an hour, not every check.
    const recent = new Set((await latestDecisions(db, pool.id, 20, 'hold')).filter((d) => d.at > now - 3600_000).map((d) => shape(d.reason)));
    for (const hold of decision.holds) {
      if (recent.has(shape(hold))) continue;
      out.push({ action: 'hold', reason: hold, outcome: 'ok', error: null, details });
    }
  }
  return out.length ? record(out) : [];
}

interface Merged {
  view: ServerView;
  row: ServerRow | undefined;
}

/** Joins Hetzner's servers with our rows by the rgrid-server label; either side may be missing. */
function merge(listed: HetznerServer[], rows: ServerRow[]): Merged[] {
  const byId = new Map(rows.map((r) => [r.id, r]));
  const out: Merged[] = [];
  const seen = new Set<string>();
  for (const h of listed) {
    const id = h.labels[FLEET_LABELS.server] ?? `hcloud-${h.id}`;
    const row = byId.get(id);
    seen.add(id);
    const created = Date.parse(h.created);
    out.push({
      row,
      view: {
        id,
        providerId: h.id,
        name: h.name,
        createdAt: Number.isFinite(created) ? created : (row?.createdAt ?? 0),
        inProvider: true,
        drainRequestedAt: row?.drainRequestedAt ?? null,
        idleSince: row?.idleSince ?? null,
        runner: null,
      },
    });
  }
  for (const row of rows) {
    if (seen.has(row.id)) continue;
    const providerId = row.providerId ? Number(row.providerId) : null;
    out.push({ row, view: { id: row.id, providerId, name: row.name, createdAt: row.createdAt, inProvider: false, drainRequestedAt: row.drainRequestedAt, idleSince: row.idleSince, runner: null } });
  }
  return out;
}

/** Matches runners to servers, and keeps the bookkeeping current: active status, idle-since. */
async function attachRunners(db: Db, views: Merged[], runners: RunnerRow[], now: number): Promise<void> {
  const latest = new Map<string, RunnerRow>();
  for (const r of runners) {
    const sid = serverOfRunner(r);
    if (sid && (!latest.has(sid) || latest.get(sid)!.lastSeenAt < r.lastSeenAt)) latest.set(sid, r);
  }
  const updates = [];
  for (const m of views) {
    const r = latest.get(m.view.id);
    if (!r) continue;
    m.view.runner = { id: r.id, slots: r.slots, activeJobs: r.activeJobs, draining: r.draining, lastSeenAt: r.lastSeenAt };
    m.view.idleSince = r.activeJobs > 0 ? null : (m.view.idleSince ?? now);
    if (r.serverId !== m.view.id) updates.push(db.update(schema.runners).set({ serverId: m.view.id }).where(eq(schema.runners.id, r.id)));
    if (m.row && (m.row.runnerId !== r.id || m.row.idleSince !== m.view.idleSince || m.row.status === 'booting' || m.row.status === 'creating')) {
      const status = m.row.status === 'draining' ? 'draining' : 'active';
      updates.push(db.update(schema.servers).set({ runnerId: r.id, idleSince: m.view.idleSince, status }).where(eq(schema.servers.id, m.row.id)));
    }
  }
  if (updates.length) await db.batch(updates as [(typeof updates)[number], ...(typeof updates)[number][]]);
}

class CreateFailure extends Error {
  constructor(
    readonly serverId: string,
    override readonly cause: unknown,
  ) {
    super(message(cause));
  }
}

type Done = { serverId?: string | null; providerId?: string | null };

async function act(ctx: FleetContext, entry: PoolEntry, action: FleetAction, target: Merged | undefined, now: number): Promise<Done> {
  const { db } = ctx;
  switch (action.kind) {
    case 'create':
      return createServer(ctx, entry, now);
    case 'drain': {
      const runnerId = target?.view.runner?.id;
      if (runnerId) {
        await db.update(schema.runners).set({ drainRequested: true }).where(eq(schema.runners.id, runnerId));
        // The runner's Dispatcher hands it no more work and tells it at its next heartbeat.
        await ctx.drainRunner?.(runnerId);
      }
      if (target?.row) await db.update(schema.servers).set({ status: 'draining', drainRequestedAt: now }).where(eq(schema.servers.id, target.row.id));
      return { serverId: action.serverId, providerId: target?.view.providerId?.toString() ?? null };
    }
    case 'delete': {
      const providerId = target?.view.providerId ?? null;
      if (providerId !== null) await ctx.hetzner.deleteServer(providerId);
      await retire(ctx, target, now, action.reason);
      return { serverId: action.serverId, providerId: providerId?.toString() ?? null };
    }
    case 'forget':
      await retire(ctx, target, now, action.reason);
      return { serverId: action.serverId, providerId: target?.view.providerId?.toString() ?? null };
    default: {
      const never: never = action;
      throw new Error(`unknown action ${JSON.stringify(never)}`);
    }
  }
}

/** Marks a server deleted, revokes its unused token, and tells its runner (if it ever returns) to drain. */
async function retire(ctx: FleetContext, target: Merged | undefined, now: number, reason: string): Promise<void> {
  const { db } = ctx;
  const runnerId = target?.view.runner?.id;
  if (runnerId) {
    await db.update(schema.runners).set({ drainRequested: true }).where(eq(schema.runners.id, runnerId));
    await ctx.drainRunner?.(runnerId);
  }
  const row = target?.row;
  if (!row) return;
  await db.update(schema.servers).set({ status: 'deleted', deletedAt: now, deletedReason: reason }).where(eq(schema.servers.id, row.id));
  if (row.registrationTokenId) {
    await db
      .update(schema.registrationTokens)
      .set({ revokedAt: now })
      .where(and(eq(schema.registrationTokens.id, row.registrationTokenId), isNull(schema.registrationTokens.revokedAt)));
  }
}

async function createServer(ctx: FleetContext, entry: PoolEntry, now: number): Promise<Done> {
  const { db, config: worker } = ctx;
  const { pool, config } = entry;
  const serverId = newId('server');
  const publicUrl = worker.fleet.publicUrl;
  if (!publicUrl) throw new CreateFailure(serverId, new Error('PUBLIC_URL is not set: servers would not know where the control plane is (set it in wrangler.toml [vars])'));
  const name = serverName(pool.name, serverId);
  const token = newSecret('registrationToken');
  const tokenId = newId('registrationToken');
  // The token is good for one registration, and only until the boot timeout would delete the server anyway.
  const expiresAt = now + (config.bootTimeoutSeconds + 600) * 1000;
  await db.batch([
    db.insert(schema.registrationTokens).values({ id: tokenId, poolId: pool.id, tokenHash: await sha256Hex(token), maxUses: 1, expiresAt, createdAt: now }),
    db.insert(schema.servers).values({ id: serverId, poolId: pool.id, name, status: 'creating', registrationTokenId: tokenId, createdAt: now }),
  ]);
  try {
    const userData = renderUserData({
      apiUrl: publicUrl,
      registrationToken: token,
      pool: pool.name,
      slots: config.slotsPerServer,
      serverId,
      name,
      runnerPackage: config.runnerPackage ?? worker.fleet.runnerPackage ?? `rgrid@${RUNNER_VERSION}`,
      runnerEnv: config.runnerEnv,
      prePullImages: config.prePullImages,
    });
    const res = await ctx.hetzner.createServer({
      name,
      server_type: config.serverType,
      image: config.image,
      location: config.location,
      ...(config.sshKeys.length ? { ssh_keys: config.sshKeys } : {}),
      user_data: userData,
      labels: { ...config.labels, ...managedLabels(pool.name), [FLEET_LABELS.server]: serverId },
      start_after_create: true,
    });
    const created = Date.parse(res.server.created);
    await db
      .update(schema.servers)
      .set({ providerId: String(res.server.id), status: 'booting', createdAt: Number.isFinite(created) ? created : now })
      .where(eq(schema.servers.id, serverId));
    return { serverId, providerId: String(res.server.id) };
  } catch (err) {
    await db.batch([
      db.update(schema.servers).set({ status: 'failed', deletedAt: now, deletedReason: message(err) }).where(eq(schema.servers.id, serverId)),
      db.update(schema.registrationTokens).set({ revokedAt: now }).where(eq(schema.registrationTokens.id, tokenId)),
    ]);
    throw new CreateFailure(serverId, err);
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
