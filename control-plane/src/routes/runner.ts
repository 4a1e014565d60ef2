/**
 * Runner protocol: /runner/v1. Every job call carries (executionId, attempt); a stale attempt
 * answers 409 stale_attempt with the current state in `details`, and the runner stops.
 */
import { Hono } from 'hono';
import { and, eq, inArray, isNull, or, gt, lt, sql } from 'drizzle-orm';
import {
  AppendLogsRequest,
  ClaimRequest,
  CompleteRequest,
  JobHeartbeatRequest,
  PresignOutputsRequest,
  RegisterRunnerRequest,
  RunnerHeartbeatRequest,
  type AppendLogsResponse,
  type ClaimResponse,
  type CompleteResponse,
  type Job,
  type JobHeartbeatResponse,
  type PresignOutputsResponse,
  type RegisterRunnerResponse,
} from '../../../shared/api/runner.js';
import type { InputFile } from '../../../shared/api/executions.js';
import { ExecutionId, newId, newSecret } from '../../../shared/ids.js';
import { sha256Hex } from '../../../shared/hashing.js';
import { LIMITS } from '../../../shared/limits.js';
import { schema } from '../db/client.js';
import { ApiError } from '../errors.js';
import { requireRunner } from '../auth.js';
import { parseWith, readJson } from '../validate.js';
import { z } from 'zod';
import { AbortMultipartRequest, CompleteMultipartRequest, CreateMultipartRequest } from '../../../shared/api/common.js';
import { abortMultipart, completeMultipart, createMultipart, tooBig } from '../uploads/multipart.js';
import { blobKey } from '../storage/s3.js';
import { chunk, confirmBlobs, knownBlobs } from '../executions/blobs.js';
import { dispatcher } from '../executions/service.js';
import { recordCompletion } from '../cache/records.js';
import type { Stale } from '../dispatch/types.js';
import type { AppContext, AppEnv } from '../context.js';
import type { Runtime } from '../../../shared/api/common.js';

export const runnerRoutes = new Hono<AppEnv>();

const staleError = (s: Stale) =>
  new ApiError('stale_attempt', `attempt is no longer current (execution is ${s.details.status}, attempt ${s.details.currentAttempt})`, 'Stop working on this job.', s.details);

runnerRoutes.post('/register', async (c) => {
  const body = await readJson(c, RegisterRunnerRequest);
  const db = c.get('db');
  const now = c.get('now')();
  const t = schema.registrationTokens;
  const tokenHash = await sha256Hex(body.registrationToken);
  // One conditional UPDATE both checks and counts the use, so a max-uses token cannot be overused.
  const token = await db
    .update(t)
    .set({ uses: sql`${t.uses} + 1` })
    .where(and(eq(t.tokenHash, tokenHash), isNull(t.revokedAt), or(isNull(t.expiresAt), gt(t.expiresAt, now)), or(isNull(t.maxUses), lt(t.uses, t.maxUses))))
    .returning()
    .get();
  if (!token) throw new ApiError('unauthorized', 'invalid, expired or used-up registration token', 'Ask the operator for a new registration token (rgrid dev writes one to its data dir).');
  const pool = await db.select().from(schema.pools).where(eq(schema.pools.id, token.poolId)).get();
  const runnerToken = newSecret('runnerToken');
  const runnerId = newId('runner');
  await db.insert(schema.runners).values({
    id: runnerId,
    poolId: token.poolId,
    name: body.name,
    tokenHash: await sha256Hex(runnerToken),
    slots: body.slots,
    labels: body.labels,
    version: body.version,
    registeredAt: now,
    lastSeenAt: now,
  });
  const config = c.get('config');
  const res: RegisterRunnerResponse = { runnerId, runnerToken, pool: pool!.name, leaseSeconds: config.leaseSeconds, heartbeatSeconds: Math.max(1, Math.floor(config.leaseSeconds / 4)) };
  return c.json(res, 201);
});

runnerRoutes.use('/*', requireRunner);

runnerRoutes.post('/heartbeat', async (c) => {
  const body = await readJson(c, RunnerHeartbeatRequest);
  const { runnerId } = c.get('runner');
  const db = c.get('db');
  const row = await db
    .update(schema.runners)
    .set({ lastSeenAt: c.get('now')(), activeJobs: body.activeJobs, draining: body.draining })
    .where(eq(schema.runners.id, runnerId))
    .returning({ drainRequested: schema.runners.drainRequested })
    .get();
  if (body.envKeys?.length) await recordImages(c, runnerId, body.envKeys);
  return c.json({ ok: true as const, drain: row?.drainRequested ?? false });
});

async function recordImages(c: AppContext, runnerId: string, envKeys: string[]) {
  const db = c.get('db');
  for (const part of chunk(envKeys, 40)) {
    await db.insert(schema.runnerImages).values(part.map((envKey) => ({ runnerId, envKey }))).onConflictDoNothing();
  }
}

runnerRoutes.post('/claim', async (c) => {
  const body = await readJson(c, ClaimRequest);
  const runner = c.get('runner');
  const db = c.get('db');
  const me = await db
    .update(schema.runners)
    .set({ lastSeenAt: c.get('now')() })
    .where(eq(schema.runners.id, runner.runnerId))
    .returning({ drainRequested: schema.runners.drainRequested })
    .get();
  // A runner asked to drain gets no new work; it learns to drain at its next heartbeat.
  if (me?.drainRequested) return c.json({ jobs: [] } satisfies ClaimResponse);
  const claimed = await dispatcher(c, runner.poolName).claim({
    runnerId: runner.runnerId,
    maxJobs: body.maxJobs,
    waitMs: Math.round(body.waitSeconds * 1000),
    envKeys: body.envKeys ?? [],
  });
  if (!claimed.length) return c.json({ jobs: [] } satisfies ClaimResponse);
  const rows = await db.select().from(schema.executions).where(inArray(schema.executions.id, claimed.map((j) => j.executionId))).all();
  const byId = new Map(rows.map((r) => [r.id, r]));
  const store = c.get('store');
  const { presignSeconds } = c.get('config');
  const get = (accountId: string, sha: string) => store.presign('GET', blobKey(accountId, sha), { expiresSeconds: presignSeconds });
  const encodings = new Map<string, 'identity' | 'gzip'>();
  for (const r of rows) {
    const shas = (r.inputs as InputFile[]).map((i) => i.sha256);
    for (const part of chunk([...new Set(shas)])) {
      const found = await db
        .select({ sha256: schema.blobs.sha256, encoding: schema.blobs.encoding })
        .from(schema.blobs)
        .where(and(eq(schema.blobs.accountId, r.accountId), inArray(schema.blobs.sha256, part)))
        .all();
      for (const f of found) encodings.set(`${r.accountId}/${f.sha256}`, f.encoding);
    }
  }
  const jobs: Job[] = await Promise.all(
    claimed.map(async (cj) => {
      const r = byId.get(cj.executionId)!;
      return {
        executionId: r.id,
        attempt: cj.attempt,
        leaseExpiresAt: new Date(cj.leaseExpiresAt).toISOString(),
        runtime: r.runtime as Runtime,
        script: { name: r.scriptName, sha256: r.scriptSha256, size: r.scriptSize, download: await get(r.accountId, r.scriptSha256) },
        scriptKey: r.scriptKey,
        envKey: r.envKey,
        requirements: r.requirements,
        rebuildEnv: r.noCache,
        inputs: await Promise.all(
          (r.inputs as InputFile[]).map(async (i) => ({
            ...i,
            encoding: encodings.get(`${r.accountId}/${i.sha256}`) ?? 'identity',
            download: await get(r.accountId, i.sha256),
          })),
        ),
        remoteInputs: r.remoteInputs,
        args: r.args,
        env: r.env,
        limits: r.limits as Job['limits'],
      };
    }),
  );
  return c.json({ jobs } satisfies ClaimResponse);
});

const execParam = (c: AppContext) => parseWith(ExecutionId, c.req.param('id'), 'execution id');

/**
 * The execution, if it belongs to the calling runner's pool; otherwise 404, the same answer as for
 * an id that does not exist, so a runner learns nothing about other pools' jobs.
 */
async function poolExecution(c: AppContext, executionId: string) {
  const row = await c.get('db').select().from(schema.executions).where(eq(schema.executions.id, executionId)).get();
  if (!row || row.pool !== c.get('runner').poolName) throw new ApiError('not_found', `execution ${executionId} not found in this runner's pool`);
  return row;
}

/** Checks in D1 that the caller holds the current attempt (cheap path for logs and presign). */
async function currentAttempt(c: AppContext, executionId: string, attempt: number) {
  const row = await poolExecution(c, executionId);
  const runner = c.get('runner');
  if (row.status !== 'running' || row.attempt !== attempt || row.runnerId !== runner.runnerId) {
    throw staleError({ ok: false, reason: 'stale', details: { executionId, currentAttempt: row.attempt, status: row.status } });
  }
  return row;
}

runnerRoutes.post('/executions/:id/heartbeat', async (c) => {
  const id = execParam(c);
  const body = await readJson(c, JobHeartbeatRequest);
  const runner = c.get('runner');
  // The pool check comes first: the Dispatcher's stale answer carries the job's state and attempt.
  await poolExecution(c, id);
  const r = await dispatcher(c, runner.poolName).heartbeat(id, body.attempt, runner.runnerId);
  if (!r.ok) throw staleError(r);
  return c.json({ leaseExpiresAt: new Date(r.leaseExpiresAt).toISOString(), cancel: r.cancel } satisfies JobHeartbeatResponse);
});

runnerRoutes.post('/executions/:id/release', async (c) => {
  const id = execParam(c);
  const body = await readJson(c, JobHeartbeatRequest);
  const runner = c.get('runner');
  await poolExecution(c, id);
  const r = await dispatcher(c, runner.poolName).release(id, body.attempt, runner.runnerId);
  if (!r.ok) throw staleError(r);
  return c.json({ ok: true });
});

runnerRoutes.post('/executions/:id/logs', async (c) => {
  const id = execParam(c);
  const body = await readJson(c, AppendLogsRequest);
  await currentAttempt(c, id, body.attempt);
  const db = c.get('db');
  const l = schema.logChunks;
  const used = await db
    .select({ bytes: sql<number>`COALESCE(SUM(LENGTH(${l.data})), 0)`, n: sql<number>`COUNT(*)` })
    .from(l)
    .where(and(eq(l.executionId, id), eq(l.attempt, body.attempt)))
    .get();
  let budget = LIMITS.maxStreamedLogBytes - (used?.bytes ?? 0);
  const accepted: (typeof l.$inferInsert)[] = [];
  let truncated = false;
  const now = c.get('now')();
  for (const ch of body.chunks) {
    if (ch.data.length > budget) {
      truncated = true;
      break;
    }
    budget -= ch.data.length;
    accepted.push({ executionId: id, attempt: body.attempt, seq: ch.seq, stream: ch.stream, data: ch.data, createdAt: now });
  }
  let inserted = 0;
  for (const part of chunk(accepted, 14)) {
    const res = await db.insert(l).values(part).onConflictDoNothing().run();
    inserted += res.meta.changes;
  }
  return c.json({ accepted: inserted, duplicates: accepted.length - inserted, truncated } satisfies AppendLogsResponse);
});

runnerRoutes.post('/executions/:id/outputs/presign', async (c) => {
  const id = execParam(c);
  const body = await readJson(c, PresignOutputsRequest);
  const row = await currentAttempt(c, id, body.attempt);
  const { maxFileBytes } = c.get('config');
  const big = body.files.find((f) => f.size > maxFileBytes);
  if (big) throw tooBig(big.size, maxFileBytes);
  const have = await knownBlobs(c.get('db'), row.accountId, body.files.map((f) => f.sha256));
  const store = c.get('store');
  const { presignSeconds } = c.get('config');
  const missing = [...new Set(body.files.map((f) => f.sha256).filter((s) => !have.has(s)))];
  const uploads = await Promise.all(
    missing.map(async (sha256) => ({ sha256, ...(await store.presign('PUT', blobKey(row.accountId, sha256), { expiresSeconds: presignSeconds })) })),
  );
  return c.json({ uploads } satisfies PresignOutputsResponse);
});

// Multipart uploads of large outputs: the same flow as the client's, scoped to the current attempt.
const attemptOf = (raw: unknown) => parseWith(JobHeartbeatRequest, { attempt: (raw as { attempt?: unknown })?.attempt }, 'attempt');
runnerRoutes.post('/executions/:id/uploads/multipart', async (c) => {
  const id = execParam(c);
  const raw = await readJson(c, z.record(z.string(), z.unknown()));
  const row = await currentAttempt(c, id, attemptOf(raw).attempt);
  const { attempt: _a, ...rest } = raw;
  return c.json(await createMultipart(c, row.accountId, parseWith(CreateMultipartRequest, rest, 'request body')), 201);
});
runnerRoutes.post('/executions/:id/uploads/multipart/complete', async (c) => {
  const id = execParam(c);
  const raw = await readJson(c, z.record(z.string(), z.unknown()));
  const row = await currentAttempt(c, id, attemptOf(raw).attempt);
  const { attempt: _a, ...rest } = raw;
  await completeMultipart(c, row.accountId, parseWith(CompleteMultipartRequest, rest, 'request body'));
  return c.json({ ok: true as const });
});
/**
 * Abort is fenced by runner, not by attempt: the runner that ran the execution may abort uploads
 * of its earlier attempts (cleaning up after it lost a lease and got the job again), but no other
 * runner, and no attempt that has not started, may abort the current attempt's upload.
 */
runnerRoutes.post('/executions/:id/uploads/multipart/abort', async (c) => {
  const id = execParam(c);
  const raw = await readJson(c, z.record(z.string(), z.unknown()));
  const { attempt } = attemptOf(raw);
  const row = await poolExecution(c, id);
  if (row.runnerId !== c.get('runner').runnerId || attempt > row.attempt) {
    throw staleError({ ok: false, reason: 'stale', details: { executionId: id, currentAttempt: row.attempt, status: row.status } });
  }
  const { attempt: _a, ...rest } = raw;
  await abortMultipart(c, row.accountId, parseWith(AbortMultipartRequest, rest, 'request body'));
  return c.json({ ok: true as const });
});

runnerRoutes.post('/executions/:id/complete', async (c) => {
  const id = execParam(c);
  const body = await readJson(c, CompleteRequest);
  const runner = c.get('runner');
  const db = c.get('db');
  const row = await poolExecution(c, id);
  const { maxOutputsPerExecution, maxFileBytes } = c.get('config');
  if (body.outputs.length > maxOutputsPerExecution) {
    throw new ApiError('bad_request', `the script wrote ${body.outputs.length} output files; the limit is ${maxOutputsPerExecution}`, 'Write fewer, larger files (e.g. an archive), or ask the operator to raise MAX_OUTPUTS_PER_EXECUTION.');
  }
  const big = body.outputs.find((f) => f.size > maxFileBytes);
  if (big) throw tooBig(big.size, maxFileBytes);
  const files = [...body.outputs.map((f) => ({ ...f, kind: 'output' as const })), ...body.logs.map((f) => ({ ...f, kind: 'log' as const }))];
  // Outputs must exist before the attempt may complete: no artifact row ever points at nothing.
  await confirmBlobs(db, c.get('store'), row.accountId, files.map((f) => ({ sha256: f.sha256, size: f.size, encoding: f.encoding, label: `${f.kind} ${f.path}` })));
  const expiresAt = c.get('now')() + c.get('config').artifactRetentionDays * 86400_000;
  const r = await dispatcher(c, runner.poolName).complete({
    executionId: id,
    attempt: body.attempt,
    runnerId: runner.runnerId,
    outcome: body.outcome,
    failureKind: body.failureKind,
    exitCode: body.exitCode,
    message: body.message ?? null,
    artifacts: files.map((f) => ({
      id: newId('artifact'),
      accountId: row.accountId,
      executionId: id,
      attempt: body.attempt,
      kind: f.kind,
      path: f.path,
      size: f.size,
      sha256: f.sha256,
      contentType: f.contentType ?? 'application/octet-stream',
      encoding: f.encoding,
      objectKey: blobKey(row.accountId, f.sha256),
      expiresAt,
    })),
    envHit: body.cache?.envHit ?? null,
    buildSeconds: body.cache?.buildSeconds ?? null,
    durationMs: body.durationMs ?? null,
  });
  if (!r.ok) {
    if (r.reason === 'busy') throw new ApiError('unavailable', 'a completion for this attempt is being recorded', 'Retry shortly.');
    throw staleError(r);
  }
  if (!r.duplicate) {
    await recordCompletion(db, row, r.status, body.cache?.envHit ?? null, runner.runnerId, c.get('now')()).catch((err) => console.error('cache bookkeeping failed', err));
  }
  return c.json({ status: r.status, duplicate: r.duplicate } satisfies CompleteResponse);
});
