/** Client API: /api/v1/executions. */
import { Hono } from 'hono';
import { and, desc, eq, exists, lt, or, sql, type SQL } from 'drizzle-orm';
import {
  CreateExecutionRequest,
  ListExecutionsQuery,
  type ListExecutionsResponse,
} from '../../../shared/api/executions.js';
import { ExecutionId } from '../../../shared/ids.js';
import { DEFAULTS } from '../../../shared/limits.js';
import { schema } from '../db/client.js';
import { badRequest } from '../errors.js';
import { parseWith, readJson, readQuery } from '../validate.js';
import { cancelExecution, createExecution, submitExecution } from '../executions/service.js';
import { liveView, loadExecution } from '../executions/service.js';
import { toExecution } from '../executions/view.js';
import type { AppEnv } from '../context.js';

export const executionRoutes = new Hono<AppEnv>();

const idParam = (raw: string) => parseWith(ExecutionId, raw, 'execution id');

executionRoutes.post('/', async (c) => {
  const body = await readJson(c, CreateExecutionRequest);
  return c.json(await createExecution(c, body), 201);
});

executionRoutes.post('/:id/submit', async (c) => {
  return c.json({ execution: await submitExecution(c, idParam(c.req.param('id'))) });
});

executionRoutes.get('/:id', async (c) => {
  const row = await loadExecution(c.get('db'), c.get('caller').accountId, idParam(c.req.param('id')));
  return c.json({ execution: await liveView(c, row) });
});

executionRoutes.post('/:id/cancel', async (c) => {
  return c.json({ execution: await cancelExecution(c, idParam(c.req.param('id'))) });
});

/** Cursor: "<createdAt>.<id>" of the last row of the previous page (newest first). */
function decodeCursor(cursor: string): { createdAt: number; id: string } {
  const m = /^(\d+)\.(exec_[a-z2-7]+)$/.exec(cursor);
  if (!m) throw badRequest('invalid cursor', 'Pass the nextCursor value from the previous page unchanged.');
  return { createdAt: Number(m[1]), id: m[2]! };
}

executionRoutes.get('/', async (c) => {
  const q = readQuery(c, ListExecutionsQuery);
  const { accountId } = c.get('caller');
  const e = schema.executions;
  const where: SQL[] = [eq(e.accountId, accountId)];
  if (q.status) where.push(eq(e.status, q.status));
  if (q.batch) where.push(eq(e.batchId, q.batch));
  const pairs = q.metadata === undefined ? [] : Array.isArray(q.metadata) ? q.metadata : [q.metadata];
  for (const pair of pairs) {
    const i = pair.indexOf('=');
    if (i < 1) throw badRequest(`invalid metadata filter "${pair}"`, 'Use key=value, e.g. metadata=project=alpha.');
    const m = schema.executionMetadata;
    where.push(
      exists(
        c
          .get('db')
          .select({ one: sql`1` })
          .from(m)
          .where(and(eq(m.executionId, e.id), eq(m.accountId, accountId), eq(m.key, pair.slice(0, i)), eq(m.value, pair.slice(i + 1)))),
      ),
    );
  }
  if (q.cursor) {
    const cur = decodeCursor(q.cursor);
    where.push(or(lt(e.createdAt, cur.createdAt), and(eq(e.createdAt, cur.createdAt), lt(e.id, cur.id)))!);
  }
  const limit = q.limit ?? DEFAULTS.pageSize;
  const rows = await c
    .get('db')
    .select()
    .from(e)
    .where(and(...where))
    .orderBy(desc(e.createdAt), desc(e.id))
    .limit(limit + 1)
    .all();
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  const body: ListExecutionsResponse = {
    executions: page.map(toExecution),
    nextCursor: rows.length > limit && last ? `${last.createdAt}.${last.id}` : null,
  };
  return c.json(body);
});

