/**
 * Result reuse (opt-in): an execution whose result key matches an earlier succeeded execution
 * with all outputs still stored does not run. It moves created → succeeded through the state
 * machine's `reuse` event, points at its source (`reusedFrom`), and gets its own artifact rows
 * for the same content-addressed blobs, with a fresh retention period.
 */
import { and, eq, inArray } from 'drizzle-orm';
import { newId } from '../../../shared/ids.js';
import { resultKey } from '../../../shared/hashing.js';
import { transition } from '../../../shared/lifecycle.js';
import { schema } from '../db/client.js';
import { chunk } from '../executions/blobs.js';
import type { ExecutionRow } from '../executions/view.js';
import type { AppContext } from '../context.js';
import { count, reusableResults } from './records.js';

/**
 * A reused execution never reaches a Dispatcher: it is final from the start, with a version above
 * any the Dispatcher could write, so nothing can move it afterwards.
 */
const REUSED_VERSION = 1_000_000_000;

/** Applies reuse to freshly inserted `created` rows; returns the ids that were reused (with their source). */
export async function applyReuse(c: AppContext, rows: ExecutionRow[]): Promise<Map<string, string>> {
  const db = c.get('db');
  const { accountId } = c.get('caller');
  const now = c.get('now')();
  const keyOf = new Map<string, string>();
  for (const r of rows) keyOf.set(r.id, await resultKey(r.scriptKey, r.envKey, r.args, r.env, r.inputs as { path: string; sha256: string }[]));
  const reusable = await reusableResults(db, accountId, [...keyOf.values()], now);
  const reused = new Map<string, string>();
  for (const r of rows) {
    const source = reusable.get(keyOf.get(r.id)!);
    if (source) reused.set(r.id, source);
  }
  await count(db, accountId, rows.map((r) => ({ kind: 'result' as const, key: keyOf.get(r.id)!, hit: reused.has(r.id) })));
  if (!reused.size) return reused;

  const next = transition('created', { type: 'reuse' });
  if (!next.ok) throw new Error(next.reason);
  const a = schema.artifacts;
  const sources = [...new Set(reused.values())];
  const artifacts: (typeof a.$inferSelect)[] = [];
  for (const part of chunk(sources)) artifacts.push(...(await db.select().from(a).where(and(inArray(a.executionId, part), inArray(a.kind, ['output', 'log']))).all()));
  const bySource = new Map<string, (typeof a.$inferSelect)[]>();
  for (const art of artifacts) (bySource.get(art.executionId) ?? bySource.set(art.executionId, []).get(art.executionId)!).push(art);
  const expiresAt = now + c.get('config').artifactRetentionDays * 86400_000;
  const statements = [];
  for (const [id, source] of reused) {
    statements.push(
      db
        .update(schema.executions)
        .set({ status: next.state, version: REUSED_VERSION, reusedFrom: source, exitCode: 0, submittedAt: now, finishedAt: now, message: `outputs reused from ${source}` })
        .where(and(eq(schema.executions.id, id), eq(schema.executions.status, 'created'))),
    );
    for (const art of bySource.get(source) ?? []) {
      statements.push(db.insert(a).values({ ...art, id: newId('artifact'), executionId: id, attempt: 0, createdAt: now, expiresAt, deletedAt: null }));
    }
  }
  for (const part of chunk(statements, 50)) await db.batch(part as [(typeof part)[number], ...typeof part]);
  const byBatch = new Map<string, string[]>();
  for (const r of rows) if (r.batchId && reused.has(r.id)) (byBatch.get(r.batchId) ?? byBatch.set(r.batchId, []).get(r.batchId)!).push(r.id);
  for (const [batchId, ids] of byBatch) {
    await c.env.BATCHES.get(c.env.BATCHES.idFromName(batchId)).update(ids.map((executionId) => ({ executionId, version: REUSED_VERSION, status: 'succeeded' as const, at: now, exitCode: 0, reused: true })));
  }
  return reused;
}
