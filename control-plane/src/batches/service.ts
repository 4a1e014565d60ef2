/** Batches: bulk create, append, submit, cancel, snapshot; and retries of failed items. */
import { and, desc, eq, inArray, lt, or } from 'drizzle-orm';
import { newId } from '../../../shared/ids.js';
import { DEFAULTS } from '../../../shared/limits.js';
import type { BatchSnapshot, CreateBatchResponse } from '../../../shared/api/batches.js';
import { BatchItem, type CreateBatchRequest, type AppendBatchItemsRequest, type RetryRequest } from '../../../shared/api/batches.js';
import type { Execution } from '../../../shared/api/executions.js';
import { z } from 'zod';
import { schema } from '../db/client.js';
import { ApiError, badRequest, notFound } from '../errors.js';
import { parseWith } from '../validate.js';
import { chunk, confirmBlobs, knownBlobs } from '../executions/blobs.js';
import { applyReuse } from '../cache/reuse.js';
import { count } from '../cache/records.js';
import { checkFileSizes, dispatcherOf, enqueueJobs, insertExecutions, requirePool, uploadsFor, validateRequirements, type ExecutionSpec } from '../executions/service.js';
import { cancelBatchInPool, flushPool } from '../dispatch/shards.js';
import { toExecution, type ExecutionRow } from '../executions/view.js';
import type { AppContext } from '../context.js';

type CreateBatch = z.output<typeof CreateBatchRequest>;
type AppendItems = z.output<typeof AppendBatchItemsRequest>;
type Retry = z.output<typeof RetryRequest>;

export function tracker(c: AppContext, batchId: string) {
  return c.env.BATCHES.get(c.env.BATCHES.idFromName(batchId));
}

export async function loadBatch(c: AppContext, batchId: string) {
  const row = await c
    .get('db')
    .select()
    .from(schema.batches)
    .where(and(eq(schema.batches.id, batchId), eq(schema.batches.accountId, c.get('caller').accountId)))
    .get();
  if (!row) throw notFound('Batch', batchId);
  return row;
}

type Remote = NonNullable<ExecutionSpec['remoteInputs']>;

async function addItems(
  c: AppContext,
  batchId: string,
  template: CreateBatch['template'],
  items: CreateBatch['items'],
  batchMetadata: Record<string, string>,
  opts: { reuseResults: boolean; forceUpload: boolean; noCache: boolean; capped: boolean; remoteInputs?: Map<string, Remote> },
) {
  // The routes parse items already; internal callers (webhook deliveries) build them, so every
  // item passes the contract here too before it can become an execution.
  items = parseWith(z.array(BatchItem), items, 'batch items');
  const names = new Set<string>();
  for (const it of items) {
    if (names.has(it.inputName)) throw badRequest(`input "${it.inputName}" appears twice in the batch`, 'Each batch item needs a distinct inputName.');
    names.add(it.inputName);
  }
  checkFileSizes(c, items.flatMap((it) => it.inputs));
  const specs: ExecutionSpec[] = items.map((it) => ({
    runtime: template.runtime,
    script: template.script,
    requirements: template.requirements ?? null,
    inputs: it.inputs,
    args: it.args,
    env: template.env,
    limits: template.limits,
    metadata: { ...batchMetadata, ...it.metadata },
    pool: template.pool,
    batchId,
    inputName: it.inputName,
    retryOf: null,
    noCache: opts.noCache,
    remoteInputs: opts.remoteInputs?.get(it.inputName) ?? [],
  }));
  const rows = await insertExecutions(c, specs, { cappedBatch: opts.capped });
  await tracker(c, batchId).addItems(rows.map((r) => ({ executionId: r.id, inputName: r.inputName! })));
  await c.get('db').update(schema.batches).set({ total: (await countItems(c, batchId)) }).where(eq(schema.batches.id, batchId));
  const reused = opts.reuseResults ? await applyReuse(c, rows) : new Map<string, string>();
  // Reused items need no uploads; the rest need what the account lacks.
  const pending = items.filter((_, i) => !reused.has(rows[i]!.id));
  const shas = pending.length ? [template.script.sha256, ...pending.flatMap((it) => it.inputs.map((i) => i.sha256))] : [];
  const have = await knownBlobs(c.get('db'), c.get('caller').accountId, shas);
  const s0 = rows[0];
  if (s0) {
    await count(c.get('db'), c.get('caller').accountId, [
      { kind: 'script', key: s0.scriptKey, hit: have.has(template.script.sha256) },
      ...[...new Set(pending.flatMap((it) => it.inputs.map((i) => i.sha256)))].map((sha) => ({ kind: 'input' as const, key: sha, hit: have.has(sha) })),
    ]);
  }
  const uploads = await uploadsFor(c, shas, opts.forceUpload);
  return { items: rows.map((r) => ({ executionId: r.id, inputName: r.inputName!, reusedFrom: reused.get(r.id) ?? null })), uploads };
}

async function countItems(c: AppContext, batchId: string): Promise<number> {
  const snap = await tracker(c, batchId).getSnapshot();
  return snap?.counts.total ?? 0;
}

/** `remoteInputs` (per input name) is only for webhook deliveries, whose hosts were checked. */
export async function createBatch(c: AppContext, req: CreateBatch, remoteInputs?: Map<string, Remote>): Promise<CreateBatchResponse> {
  validateRequirements(req.template.requirements);
  await requirePool(c.get('db'), req.template.pool);
  const { accountId } = c.get('caller');
  const id = newId('batch');
  const now = c.get('now')();
  await c.get('db').insert(schema.batches).values({ id, accountId, name: req.name ?? null, total: 0, parallel: req.parallel ?? null, failFast: req.failFast, metadata: req.metadata, template: req.template, createdAt: now });
  await tracker(c, id).init({
    batchId: id,
    accountId,
    pool: req.template.pool,
    name: req.name ?? null,
    parallel: req.parallel ?? null,
    failFast: req.failFast,
    metadata: req.metadata,
    createdAt: now,
    callbackUrl: null,
    callbackSecret: null,
  });
  await c.get('db').update(schema.batches).set({ template: { ...req.template, reuseResults: req.reuseResults, noCache: req.noCache } }).where(eq(schema.batches.id, id));
  const added = await addItems(c, id, req.template, req.items, req.metadata, { reuseResults: req.reuseResults, forceUpload: req.forceUpload, noCache: req.noCache, capped: req.parallel !== undefined && req.parallel !== null, remoteInputs });
  return { batch: (await tracker(c, id).getSnapshot())!, ...added };
}

export async function appendItems(c: AppContext, batchId: string, req: AppendItems) {
  const batch = await loadBatch(c, batchId);
  if (batch.submittedAt) throw new ApiError('conflict', `batch ${batchId} was already submitted`, 'Create a new batch for more inputs.');
  const template = batch.template as CreateBatch['template'] & { reuseResults?: boolean; noCache?: boolean };
  return addItems(c, batchId, template, req.items, batch.metadata, { reuseResults: !!template.reuseResults, forceUpload: false, noCache: !!template.noCache, capped: batch.parallel !== null });
}

/** Verifies every blob the batch's items need, then queues them all at once. */
export async function submitBatch(c: AppContext, batchId: string): Promise<BatchSnapshot> {
  const batch = await loadBatch(c, batchId);
  const db = c.get('db');
  const { accountId } = c.get('caller');
  if (batch.canceledAt) throw new ApiError('conflict', `batch ${batchId} was canceled`);
  const rows = await db
    .select()
    .from(schema.executions)
    .where(and(eq(schema.executions.batchId, batchId), eq(schema.executions.accountId, accountId), eq(schema.executions.status, 'created')))
    .all();
  if (rows.length) {
    const declared = new Map<string, { sha256: string; size: number; encoding?: 'identity' | 'gzip'; label: string }>();
    for (const r of rows) {
      declared.set(r.scriptSha256, { sha256: r.scriptSha256, size: r.scriptSize, label: `script ${r.scriptName}` });
      for (const i of r.inputs as { path: string; sha256: string; size: number; encoding?: 'identity' | 'gzip' }[]) declared.set(i.sha256, { sha256: i.sha256, size: i.size, encoding: i.encoding, label: `input ${i.path} of ${r.inputName}` });
    }
    const stored = await confirmBlobs(db, c.get('store'), accountId, [...declared.values()]);
    // Sorted batch inputs run in order.
    rows.sort((a, b) => ((a.inputName ?? '') < (b.inputName ?? '') ? -1 : 1));
    await enqueueByShard(c, rows, stored, batch.parallel ? { batchId, parallel: batch.parallel } : undefined);
  }
  const now = c.get('now')();
  if (!batch.submittedAt) await db.update(schema.batches).set({ submittedAt: now }).where(eq(schema.batches.id, batchId));
  await tracker(c, batchId).markSubmitted(now);
  return (await tracker(c, batchId).getSnapshot())!;
}

/** Hands executions to their Dispatcher shards, in order, in requests of at most 500 jobs. */
async function enqueueByShard(c: AppContext, rows: ExecutionRow[], stored: Map<string, 'identity' | 'gzip'>, cap?: { batchId: string; parallel: number }) {
  const groups = new Map<string, ExecutionRow[]>();
  for (const r of rows) {
    const k = `${r.pool}\u0000${r.shard}`;
    (groups.get(k) ?? groups.set(k, []).get(k)!).push(r);
  }
  for (const group of groups.values()) {
    for (const part of chunk(group, 500)) await dispatcherOf(c, part[0]!).enqueue(await enqueueJobs(part, stored), { cap });
  }
}

/**
 * Batch reads first flush what the pool's Dispatchers hold (they tell the tracker after D1), so a
 * snapshot is never behind a transition a runner or a user was already answered about.
 */
export async function settle(c: AppContext, batch: { template: unknown }) {
  const pool = (batch.template as CreateBatch['template']).pool;
  await flushPool(c.env, pool, (await requirePool(c.get('db'), pool)).shards);
}

export async function getBatch(c: AppContext, batchId: string): Promise<BatchSnapshot> {
  await settle(c, await loadBatch(c, batchId));
  const snap = await tracker(c, batchId).getSnapshot();
  if (!snap) throw notFound('Batch', batchId);
  return snap;
}

export async function listBatches(c: AppContext, limit: number = DEFAULTS.pageSize, cursor?: string) {
  const b = schema.batches;
  const where = [eq(b.accountId, c.get('caller').accountId)];
  if (cursor) {
    const m = /^(\d+)\.(batch_[a-z2-7]+)$/.exec(cursor);
    if (!m) throw badRequest('invalid cursor', 'Pass the nextCursor value from the previous page unchanged.');
    where.push(or(lt(b.createdAt, Number(m[1])), and(eq(b.createdAt, Number(m[1])), lt(b.id, m[2]!)))!);
  }
  const rows = await c.get('db').select().from(b).where(and(...where)).orderBy(desc(b.createdAt), desc(b.id)).limit(limit + 1).all();
  const page = rows.slice(0, limit);
  const batches = (await Promise.all(page.map((r) => tracker(c, r.id).getSnapshot()))).filter((s): s is BatchSnapshot => s !== null);
  const last = page[page.length - 1];
  return { batches, nextCursor: rows.length > limit && last ? `${last.createdAt}.${last.id}` : null };
}

export async function cancelBatch(c: AppContext, batchId: string): Promise<BatchSnapshot> {
  const batch = await loadBatch(c, batchId);
  // A batch that ran to its end stays finished: there is nothing left to cancel.
  const before = await getBatch(c, batchId);
  if (before.status === 'finished') return before;
  const now = c.get('now')();
  const template = batch.template as CreateBatch['template'];
  const { shards } = await requirePool(c.get('db'), template.pool);
  const created = await c
    .get('db')
    .select({ id: schema.executions.id, shard: schema.executions.shard })
    .from(schema.executions)
    .where(and(eq(schema.executions.batchId, batchId), eq(schema.executions.status, 'created')))
    .all();
  await cancelBatchInPool(c.env, template.pool, shards, batchId, batch.accountId, created, 'batch canceled by user');
  if (!batch.canceledAt) await c.get('db').update(schema.batches).set({ canceledAt: now }).where(eq(schema.batches.id, batchId));
  await tracker(c, batchId).markCanceled(now);
  return getBatch(c, batchId);
}

/**
 * Retries: each chosen execution gets a new execution (new id, `retryOf` = the original) with
 * the same script, inputs and settings; originals stay in history. Batch items stay in their
 * batch and supersede the originals in its counts.
 */
export async function retry(c: AppContext, req: Retry): Promise<{ executions: Execution[]; batchId: string | null }> {
  const db = c.get('db');
  const { accountId } = c.get('caller');
  let originals: ExecutionRow[] = [];
  let batchId: string | null = null;
  if ('batchId' in req) {
    batchId = req.batchId;
    await settle(c, await loadBatch(c, batchId));
    const items = await tracker(c, batchId).items();
    const wanted = items.filter((i) => req.all || i.status === 'failed' || i.status === 'canceled').map((i) => i.executionId);
    for (const part of chunk(wanted)) originals.push(...(await db.select().from(schema.executions).where(inArray(schema.executions.id, part)).all()));
  } else {
    for (const part of chunk(req.executionIds)) {
      originals.push(...(await db.select().from(schema.executions).where(and(eq(schema.executions.accountId, accountId), inArray(schema.executions.id, part))).all()));
    }
    // Executions D1 still shows live may have just ended in their Dispatcher: flush those first.
    const live = originals.filter((o) => o.status === 'queued' || o.status === 'running');
    if (live.length) {
      await Promise.all(live.map((o) => dispatcherOf(c, o).sync([o.id])));
      const fresh = new Map<string, ExecutionRow>();
      for (const part of chunk(live.map((o) => o.id))) for (const r of await db.select().from(schema.executions).where(inArray(schema.executions.id, part)).all()) fresh.set(r.id, r);
      originals = originals.map((o) => fresh.get(o.id) ?? o);
    }
    const found = new Set(originals.map((o) => o.id));
    const missing = req.executionIds.find((id) => !found.has(id));
    if (missing) throw notFound('Execution', missing);
  }
  const open = originals.find((o) => o.status === 'created' || o.status === 'queued' || o.status === 'running');
  if (open) throw new ApiError('conflict', `execution ${open.id} is still ${open.status}`, 'Retry executions once they have finished, or cancel them first.');
  if (!originals.length) return { executions: [], batchId };

  const rows = await insertExecutions(
    c,
    originals.map((o) => ({
      runtime: o.runtime as ExecutionSpec['runtime'],
      script: { name: o.scriptName, sha256: o.scriptSha256, size: o.scriptSize },
      requirements: o.requirements,
      inputs: o.inputs as ExecutionSpec['inputs'],
      args: o.args,
      env: o.env,
      limits: o.limits as ExecutionSpec['limits'],
      metadata: o.metadata,
      pool: o.pool,
      batchId: o.batchId,
      inputName: o.inputName,
      retryOf: o.id,
      noCache: o.noCache,
      remoteInputs: o.remoteInputs,
    })),
    // Batch items stay in their batch's shard, where its --parallel cap (if any) is kept.
    { cappedBatch: true },
  );
  const byBatch = new Map<string, { originals: string[]; items: { executionId: string; inputName: string }[] }>();
  rows.forEach((r, i) => {
    if (!r.batchId) return;
    const g = byBatch.get(r.batchId) ?? byBatch.set(r.batchId, { originals: [], items: [] }).get(r.batchId)!;
    g.originals.push(originals[i]!.id);
    g.items.push({ executionId: r.id, inputName: r.inputName ?? r.id });
  });
  for (const [b, g] of byBatch) {
    await tracker(c, b).supersede(g.originals, g.items);
    await db.update(schema.batches).set({ finishedAt: null }).where(eq(schema.batches.id, b));
  }
  const declared = new Map<string, { sha256: string; size: number; label: string }>();
  for (const r of rows) {
    declared.set(r.scriptSha256, { sha256: r.scriptSha256, size: r.scriptSize, label: `script ${r.scriptName}` });
    for (const i of r.inputs as { path: string; sha256: string; size: number }[]) declared.set(i.sha256, { ...i, label: `input ${i.path}` });
  }
  await enqueueByShard(c, rows, await confirmBlobs(db, c.get('store'), accountId, [...declared.values()]));
  const fresh: ExecutionRow[] = [];
  for (const part of chunk(rows.map((r) => r.id))) fresh.push(...(await db.select().from(schema.executions).where(inArray(schema.executions.id, part)).all()));
  return { executions: fresh.map(toExecution), batchId };
}
