/** Client API: artifacts (with presigned GET URLs) and logs (cursor-paged, for `logs -f`). */
import { Hono } from 'hono';
import { and, asc, eq, gt, or } from 'drizzle-orm';
import { LogsQuery, type ListArtifactsResponse, type LogsResponse } from '../../../shared/api/executions.js';
import { ExecutionId } from '../../../shared/ids.js';
import { isFinal, type ExecutionState } from '../../../shared/lifecycle.js';
import { schema } from '../db/client.js';
import { ApiError, badRequest } from '../errors.js';
import { parseWith, readQuery } from '../validate.js';
import { liveView, loadExecution } from '../executions/service.js';
import type { AppContext, AppEnv } from '../context.js';

export const artifactRoutes = new Hono<AppEnv>();

artifactRoutes.get('/:id/artifacts', async (c) => {
  const id = parseWith(ExecutionId, c.req.param('id'), 'execution id');
  const { accountId } = c.get('caller');
  // A just-finished execution's artifacts are flushed to D1 before they are listed.
  await liveView(c, await loadExecution(c.get('db'), accountId, id));
  const a = schema.artifacts;
  // Expired artifacts stay listed (marked expired) so a user learns what was there and when it went.
  const rows = await c
    .get('db')
    .select()
    .from(a)
    .where(and(eq(a.executionId, id), eq(a.accountId, accountId)))
    .orderBy(asc(a.kind), asc(a.path))
    .all();
  const body: ListArtifactsResponse = { artifacts: await Promise.all(rows.map((r) => artifactView(c, r))) };
  return c.json(body);
});

async function artifactView(c: AppContext, r: typeof schema.artifacts.$inferSelect) {
  const expired = r.deletedAt !== null || r.expiresAt <= c.get('now')();
  return {
    id: r.id,
    kind: r.kind,
    path: r.path,
    size: r.size,
    sha256: r.sha256,
    contentType: r.contentType,
    encoding: r.encoding,
    expiresAt: new Date(r.expiresAt).toISOString(),
    expired,
    download: expired ? null : await c.get('store').presign('GET', r.objectKey, { expiresSeconds: c.get('config').presignSeconds }),
  };
}

/** One artifact with a fresh download URL; an expired one answers 404 "expired on <date>". */
artifactRoutes.get('/:id/artifacts/:artifactId', async (c) => {
  const id = parseWith(ExecutionId, c.req.param('id'), 'execution id');
  const { accountId } = c.get('caller');
  // A just-finished execution's artifacts are flushed to D1 before they are listed.
  await liveView(c, await loadExecution(c.get('db'), accountId, id));
  const a = schema.artifacts;
  const row = await c.get('db').select().from(a).where(and(eq(a.id, c.req.param('artifactId')), eq(a.executionId, id), eq(a.accountId, accountId))).get();
  if (!row) throw new ApiError('not_found', `artifact ${c.req.param('artifactId')} not found`);
  const view = await artifactView(c, row);
  if (view.expired) {
    throw new ApiError('not_found', `${row.path} expired on ${new Date(row.expiresAt).toISOString().slice(0, 10)}`, 'Artifacts are kept for ARTIFACT_RETENTION_DAYS (30 by default); run the execution again to recreate it.');
  }
  return c.json({ artifact: view });
});

function decodeLogCursor(cursor: string | undefined): { attempt: number; seq: number } {
  if (!cursor) return { attempt: 0, seq: -1 };
  const m = /^(\d+)\.(-?\d+)$/.exec(cursor);
  if (!m) throw badRequest('invalid log cursor', 'Pass the cursor from the previous logs response unchanged.');
  return { attempt: Number(m[1]), seq: Number(m[2]) };
}

artifactRoutes.get('/:id/logs', async (c) => {
  const id = parseWith(ExecutionId, c.req.param('id'), 'execution id');
  const q = readQuery(c, LogsQuery);
  const exec = await liveView(c, await loadExecution(c.get('db'), c.get('caller').accountId, id));
  const cur = decodeLogCursor(q.cursor);
  const limit = q.limit ?? 500;
  const l = schema.logChunks;
  const rows = await c
    .get('db')
    .select()
    .from(l)
    .where(and(eq(l.executionId, id), or(gt(l.attempt, cur.attempt), and(eq(l.attempt, cur.attempt), gt(l.seq, cur.seq)))))
    .orderBy(asc(l.attempt), asc(l.seq))
    .limit(limit)
    .all();
  const last = rows[rows.length - 1];
  const cursor = last ? `${last.attempt}.${last.seq}` : `${cur.attempt}.${cur.seq}`;
  const chunks = rows
    .filter((r) => !q.stream || r.stream === q.stream)
    .map((r) => ({ attempt: r.attempt, seq: r.seq, stream: r.stream, data: r.data, at: new Date(r.createdAt).toISOString() }));
  const body: LogsResponse = {
    chunks,
    cursor,
    done: isFinal(exec.status as ExecutionState) && rows.length < limit,
    status: exec.status as ExecutionState,
  };
  return c.json(body);
});

