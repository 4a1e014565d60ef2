/**
 * Runner protocol: /runner/v1. The Dispatcher objects of the runner's pool decide everything about
 * live jobs; these routes check the request, route it to the right shard, and turn answers into
 * HTTP. Every call about a job carries (executionId, attempt, shard): a stale attempt answers 409
 * stale_attempt with the current state in `details`, and the runner stops.
 *
 * Per job, the hot path reads no D1: runner credentials are cached per isolate (auth.ts), the job
 * payload comes from the Dispatcher, and D1 learns of transitions through the Dispatcher's outbox.
 */
import { Hono } from 'hono';
import { and, eq, isNull, or, gt, lt, sql } from 'drizzle-orm';
import { z } from 'zod';
import {
  AppendLogsRequest,
  AttemptRef,
  ClaimRequest,
  CompleteManyRequest,
  CompleteRequest,
  PresignOutputsRequest,
  RegisterRunnerRequest,
  ReleaseRequest,
  RunnerHeartbeatRequest,
  type AppendLogsResponse,
  type ClaimResponse,
  type CompleteManyResponse,
  type CompleteResponse,
  type CompletionResult,
  type Job,
  type PresignOutputsResponse,
  type RegisterRunnerResponse,
  type RunnerHeartbeatResponse,
} from '../../../shared/api/runner.js';
import { ExecutionId, newId, newSecret } from '../../../shared/ids.js';
import { sha256Hex } from '../../../shared/hashing.js';
import { LIMITS } from '../../../shared/limits.js';
import { AbortMultipartRequest, CompleteMultipartRequest, CreateMultipartRequest } from '../../../shared/api/common.js';
import { schema } from '../db/client.js';
import { ApiError } from '../errors.js';
import { requireRunner } from '../auth.js';
import { leaseTiming } from '../env.js';
import { parseWith, readJson } from '../validate.js';
import { abortMultipart, completeMultipart, createMultipart, tooBig } from '../uploads/multipart.js';
import { blobKey } from '../storage/s3.js';
import { chunk, confirmBlobs, knownBlobs } from '../executions/blobs.js';
import { artifactId } from '../dispatch/outbox.js';
import { claimInPool, dispatcherAt, homeShard } from '../dispatch/shards.js';
import type { CompletionFile, JobPayload, NotHere, OwnerResult, Stale } from '../dispatch/types.js';
import type { AppContext, AppEnv } from '../context.js';

export const runnerRoutes = new Hono<AppEnv>();

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
  const res: RegisterRunnerResponse = { runnerId, runnerToken, pool: pool!.name };
  return c.json(res, 201);
});

runnerRoutes.use('/*', requireRunner);

const staleError = (s: Stale) =>
  new ApiError('stale_attempt', `attempt is no longer current (execution is ${s.details.status}, attempt ${s.details.currentAttempt})`, 'Stop working on this job.', s.details);
/** The same answer as for an id that does not exist: a runner learns nothing about other pools' jobs. */
const notHere = (id: string) => new ApiError('not_found', `execution ${id} not found in this runner's pool`);
const refusal = (id: string, r: Stale | NotHere) => (r.reason === 'stale' ? staleError(r) : notHere(id));

function checkShard(c: AppContext, shard: number): number {
  if (shard >= c.get('runner').shards) throw new ApiError('bad_request', `shard ${shard} does not exist in this pool`, 'Send back the shard the job was claimed with.');
  return shard;
}
const shardOf = (c: AppContext, shard: number) => dispatcherAt(c.env, c.get('runner').poolName, checkShard(c, shard));

runnerRoutes.post('/claim', async (c) => {
  const body = await readJson(c, ClaimRequest);
  const runner = c.get('runner');
  const timing = leaseTiming(c.get('config'));
  const { shard, result } = await claimInPool(c.env, runner.poolName, runner.shards, {
    runnerId: runner.runnerId,
    maxJobs: body.maxJobs,
    waitMs: Math.round(body.waitSeconds * 1000),
    envKeys: body.envKeys ?? [],
  });
  if (!result.ok) {
    // A runner asked to drain gets no new work; it learns to drain at its next heartbeat.
    if (result.reason === 'draining') return c.json({ jobs: [], timing } satisfies ClaimResponse);
    c.header('retry-after', String(Math.ceil(result.retryAfterMs / 1000)));
    throw new ApiError('unavailable', 'the control plane is catching up on its records; no work is handed out for a moment', 'Retry after the Retry-After delay.');
  }
  const store = c.get('store');
  const { presignSeconds } = c.get('config');
  const get = (accountId: string, sha: string) => store.presignGet(blobKey(accountId, sha), presignSeconds);
  const jobs: Job[] = await Promise.all(
    result.jobs.map(async (cj) => {
      const p = JSON.parse(cj.payload) as JobPayload;
      return {
        executionId: cj.executionId,
        attempt: cj.attempt,
        shard,
        leaseExpiresAt: new Date(cj.leaseExpiresAt).toISOString(),
        runtime: p.runtime,
        script: { ...p.script, download: await get(cj.accountId, p.script.sha256) },
        scriptKey: p.scriptKey,
        envKey: p.envKey,
        requirements: p.requirements,
        rebuildEnv: p.rebuildEnv,
        inputs: await Promise.all(p.inputs.map(async (i) => ({ ...i, download: await get(cj.accountId, i.sha256) }))),
        remoteInputs: p.remoteInputs,
        args: p.args,
        env: p.env,
        limits: p.limits,
      };
    }),
  );
  return c.json({ jobs, timing } satisfies ClaimResponse);
});

/**
 * The runner's heartbeat: liveness (recorded by its home shard, flushed to D1 by it) and one
 * renewal for every job it holds, grouped by shard. Image affinity is written to D1 only when the
 * runner says its set of images changed.
 */
runnerRoutes.post('/heartbeat', async (c) => {
  const body = await readJson(c, RunnerHeartbeatRequest);
  const runner = c.get('runner');
  const home = homeShard(runner.shards, runner.runnerId);
  const byShard = new Map<number, { executionId: string; attempt: number }[]>([[home, []]]);
  for (const j of body.jobs) {
    checkShard(c, j.shard);
    (byShard.get(j.shard) ?? byShard.set(j.shard, []).get(j.shard)!).push({ executionId: j.executionId, attempt: j.attempt });
  }
  const answers = await Promise.all(
    [...byShard].map(([shard, jobs]) =>
      dispatcherAt(c.env, runner.poolName, shard).heartbeat({
        runnerId: runner.runnerId,
        jobs,
        liveness: shard === home ? { activeJobs: body.activeJobs, draining: body.draining } : undefined,
      }),
    ),
  );
  if (body.envKeys?.length) await recordImages(c, runner.runnerId, body.envKeys);
  return c.json({
    ok: true as const,
    drain: answers.some((a) => a.drain),
    timing: leaseTiming(c.get('config')),
    cancel: answers.flatMap((a) => a.cancel),
    stale: answers.flatMap((a) => a.stale),
  } satisfies RunnerHeartbeatResponse);
});

async function recordImages(c: AppContext, runnerId: string, envKeys: string[]) {
  const db = c.get('db');
  for (const part of chunk(envKeys, 40)) {
    await db.insert(schema.runnerImages).values(part.map((envKey) => ({ runnerId, envKey }))).onConflictDoNothing();
  }
}

const execParam = (c: AppContext) => parseWith(ExecutionId, c.req.param('id'), 'execution id');

/** The account of a job the caller holds in its current attempt (or a 409/404). */
async function heldJob(c: AppContext, executionId: string, ref: { attempt: number; shard: number }, opts: { earlier?: boolean } = {}) {
  const [r] = await shardOf(c, ref.shard).owners(c.get('runner').runnerId, [{ executionId, attempt: ref.attempt }], opts);
  if (!r!.ok) throw refusal(executionId, r!);
  return { accountId: r!.accountId };
}

runnerRoutes.post('/executions/:id/release', async (c) => {
  const id = execParam(c);
  const body = await readJson(c, ReleaseRequest);
  const r = await shardOf(c, body.shard).release(c.get('runner').runnerId, { executionId: id, attempt: body.attempt });
  if (!r.ok) throw refusal(id, r);
  return c.json({ ok: true });
});

runnerRoutes.post('/executions/:id/logs', async (c) => {
  const id = execParam(c);
  const body = await readJson(c, AppendLogsRequest);
  await heldJob(c, id, body);
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
  const { accountId } = await heldJob(c, id, body);
  const { maxFileBytes, presignSeconds } = c.get('config');
  const big = body.files.find((f) => f.size > maxFileBytes);
  if (big) throw tooBig(big.size, maxFileBytes);
  const have = await knownBlobs(c.get('db'), accountId, body.files.map((f) => f.sha256));
  const store = c.get('store');
  const missing = [...new Set(body.files.map((f) => f.sha256).filter((s) => !have.has(s)))];
  const uploads = await Promise.all(
    missing.map(async (sha256) => ({ sha256, ...(await store.presign('PUT', blobKey(accountId, sha256), { expiresSeconds: presignSeconds })) })),
  );
  return c.json({ uploads } satisfies PresignOutputsResponse);
});

// Multipart uploads of large outputs: the same flow as the client's, scoped to the current attempt.
const refOf = (raw: Record<string, unknown>) => parseWith(AttemptRef, { attempt: raw.attempt, shard: raw.shard }, 'attempt');
const rest = (raw: Record<string, unknown>) => {
  const { attempt: _a, shard: _s, ...others } = raw;
  return others;
};
runnerRoutes.post('/executions/:id/uploads/multipart', async (c) => {
  const id = execParam(c);
  const raw = await readJson(c, z.record(z.string(), z.unknown()));
  const { accountId } = await heldJob(c, id, refOf(raw));
  return c.json(await createMultipart(c, accountId, parseWith(CreateMultipartRequest, rest(raw), 'request body')), 201);
});
runnerRoutes.post('/executions/:id/uploads/multipart/complete', async (c) => {
  const id = execParam(c);
  const raw = await readJson(c, z.record(z.string(), z.unknown()));
  const { accountId } = await heldJob(c, id, refOf(raw));
  await completeMultipart(c, accountId, parseWith(CompleteMultipartRequest, rest(raw), 'request body'));
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
  const { accountId } = await heldJob(c, id, refOf(raw), { earlier: true });
  await abortMultipart(c, accountId, parseWith(AbortMultipartRequest, rest(raw), 'request body'));
  return c.json({ ok: true as const });
});

type CompletionIn = z.output<typeof CompleteManyRequest>['completions'][number];

/**
 * Completes attempts, each on its own (one bad completion does not fail the others). Outputs must
 * exist in the store before an attempt may complete, so no artifact row ever points at nothing;
 * artifact ids are derived from (execution, attempt, kind, path), so a repeat inserts nothing.
 */
async function completeAll(c: AppContext, items: CompletionIn[]): Promise<CompletionResult[]> {
  const runner = c.get('runner');
  const { maxOutputsPerExecution, maxFileBytes, artifactRetentionDays } = c.get('config');
  const results: (CompletionResult | undefined)[] = items.map(() => undefined);
  const fail = (i: number, err: unknown) => {
    if (!(err instanceof ApiError)) throw err;
    results[i] = { executionId: items[i]!.executionId, ok: false, status: err.status, error: err.toJSON().error };
  };
  const files: CompletionFile[][] = items.map((it) => [
    ...it.outputs.map((f) => ({ ...f, kind: 'output' as const, contentType: f.contentType ?? 'application/octet-stream' })),
    ...it.logs.map((f) => ({ ...f, kind: 'log' as const, contentType: f.contentType ?? 'text/plain' })),
  ]);
  items.forEach((it, i) => {
    try {
      if (it.outputs.length > maxOutputsPerExecution) {
        throw new ApiError('bad_request', `the script wrote ${it.outputs.length} output files; the limit is ${maxOutputsPerExecution}`, 'Write fewer, larger files (e.g. an archive), or ask the operator to raise MAX_OUTPUTS_PER_EXECUTION.');
      }
      const big = it.outputs.find((f) => f.size > maxFileBytes);
      if (big) throw tooBig(big.size, maxFileBytes);
    } catch (err) {
      fail(i, err);
    }
  });
  // Files are checked in the store per account; only completions that carry files need the account.
  const withFiles = items.map((_, i) => i).filter((i) => !results[i] && files[i]!.length);
  const owners = new Map<number, OwnerResult>();
  await Promise.all(
    groupBy(withFiles, (i) => items[i]!.shard).map(async ([shard, idx]) => {
      const rs = await shardOf(c, shard).owners(runner.runnerId, idx.map((i) => ({ executionId: items[i]!.executionId, attempt: items[i]!.attempt })));
      idx.forEach((i, k) => owners.set(i, rs[k]!));
    }),
  );
  for (const i of withFiles) {
    const o = owners.get(i)!;
    if (!o.ok) {
      // A completion of an attempt that already finished is answered by the Dispatcher below
      // (duplicate or stale); only a job it never knew stops here.
      if (o.reason === 'not_here') fail(i, notHere(items[i]!.executionId));
      continue;
    }
    try {
      const stored = await confirmBlobs(c.get('db'), c.get('store'), o.accountId, files[i]!.map((f) => ({ sha256: f.sha256, size: f.size, encoding: f.encoding, label: `${f.kind} ${f.path}` })));
      // An artifact's encoding is how its blob is stored, not what the runner would have used: an
      // output identical to an input the CLI stored compressed was never uploaded by the runner.
      files[i] = files[i]!.map((f) => ({ ...f, encoding: stored.get(f.sha256) ?? f.encoding }));
    } catch (err) {
      fail(i, err);
    }
  }
  const expiresAt = c.get('now')() + artifactRetentionDays * 86400_000;
  const pending = items.map((_, i) => i).filter((i) => !results[i]);
  await Promise.all(
    groupBy(pending, (i) => items[i]!.shard).map(async ([shard, idx]) => {
      const args = await Promise.all(
        idx.map(async (i) => {
          const it = items[i]!;
          return {
            executionId: it.executionId,
            attempt: it.attempt,
            outcome: it.outcome,
            failureKind: it.failureKind,
            exitCode: it.exitCode,
            message: it.message ?? null,
            files: files[i]!,
            artifactIds: await Promise.all(files[i]!.map((f) => artifactId(it.executionId, it.attempt, f.kind, f.path))),
            envHit: it.cache?.envHit ?? null,
            buildSeconds: it.cache?.buildSeconds ?? null,
            durationMs: it.durationMs ?? null,
          };
        }),
      );
      const rs = await shardOf(c, shard).complete(runner.runnerId, args, expiresAt);
      idx.forEach((i, k) => {
        const r = rs[k]!;
        if (r.ok) results[i] = { executionId: items[i]!.executionId, ok: true, status: r.status, duplicate: r.duplicate };
        else fail(i, refusal(items[i]!.executionId, r));
      });
    }),
  );
  return results as CompletionResult[];
}

function groupBy<T>(xs: T[], key: (x: T) => number): [number, T[]][] {
  const m = new Map<number, T[]>();
  for (const x of xs) (m.get(key(x)) ?? m.set(key(x), []).get(key(x))!).push(x);
  return [...m];
}

runnerRoutes.post('/complete', async (c) => {
  const body = await readJson(c, CompleteManyRequest);
  return c.json({ results: await completeAll(c, body.completions) } satisfies CompleteManyResponse);
});

runnerRoutes.post('/executions/:id/complete', async (c) => {
  const id = execParam(c);
  const body = await readJson(c, CompleteRequest);
  const [r] = await completeAll(c, [{ ...body, executionId: id }]);
  if (!r!.ok) throw new ApiError(r!.error.code, r!.error.message, r!.error.hint, r!.error.details);
  return c.json({ status: r!.status, duplicate: r!.duplicate } satisfies CompleteResponse);
});
