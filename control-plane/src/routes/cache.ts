/** Client API: /api/v1/cache — hit rates, and a dry-run explanation of what a run would reuse. */
import { Hono } from 'hono';
import { CreateExecutionRequest } from '../../../shared/api/executions.js';
import { readJson } from '../validate.js';
import { assess, stats } from '../cache/records.js';
import { validateRequirements } from '../executions/service.js';
import type { AppEnv } from '../context.js';

export const cacheRoutes = new Hono<AppEnv>();

cacheRoutes.get('/stats', async (c) => c.json(await stats(c.get('db'), c.get('caller').accountId)));

/** Same body as creating an execution; nothing is created or run. */
cacheRoutes.post('/explain', async (c) => {
  const req = await readJson(c, CreateExecutionRequest);
  validateRequirements(req.requirements);
  const { reusable: _r, ...report } = await assess(c.get('db'), c.get('caller').accountId, { ...req, requirements: req.requirements ?? null }, c.get('now')());
  return c.json({ cache: report });
});
