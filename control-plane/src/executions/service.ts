/** Execution operations shared by the client API routes (and later batches and webhooks). */
import { and, eq } from 'drizzle-orm';
import { newId } from '../../../shared/ids.js';
import { envKey, scriptKey } from '../../../shared/hashing.js';
import { RUNTIMES } from '../../../shared/limits.js';
import { formatRequirementProblems, parseRequirements } from '../../../shared/requirements.js';
import { isFinal, type ExecutionState } from '../../../shared/lifecycle.js';
import { resultKey } from '../../../shared/hashing.js';
import { dispatcherAt, shardFor } from '../dispatch/shards.js';
import type { EnqueueJob, JobPayload } from '../dispatch/types.js';
import type { InputFile } from '../../../shared/api/executions.js';
import type { CreateExecutionParsed, CreateExecutionResponse, Execution } from '../../../shared/api/executions.js';
import type { BlobUpload } from '../../../shared/api/common.js';
import { schema, type Db } from '../db/client.js';
import { blobKey } from '../storage/s3.js';
import { ApiError, notFound } from '../errors.js';
import { chunk, confirmBlobs, knownBlobs } from './blobs.js';
import { toExecution, type ExecutionRow } from './view.js';
import { assess, recordAssessment } from '../cache/records.js';
import { applyReuse } from '../cache/reuse.js';
import type { AppContext } from '../context.js';

const nullColumns: Pick<ExecutionRow, 'batchId' | 'inputName' | 'retryOf' | 'reusedFrom' | 'failureKind' | 'exitCode' | 'message' | 'attempt' | 'runnerId' | 'envHit' | 'buildSeconds' | 'durationMs' | 'submittedAt' | 'startedAt' | 'finishedAt'> = {
  batchId: null,
  inputName: null,
  retryOf: null,
  reusedFrom: null,
  failureKind: null,
  exitCode: null,
  message: null,
  attempt: 0,
  runnerId: null,
  envHit: null,
  buildSeconds: null,
  durationMs: null,
  submittedAt: null,
  startedAt: null,
  finishedAt: null,
};

/** The Dispatcher shard that holds an execution while it is live. */
export function dispatcherOf(c: AppContext, row: { pool: string; shard: number }) {
  return dispatcherAt(c.env, row.pool, row.shard);
}

export async function loadExecution(db: Db, accountId: string, id: string): Promise<ExecutionRow> {
  const row = await db
    .select()
    .from(schema.executions)
    .where(and(eq(schema.executions.id, id), eq(schema.executions.accountId, accountId)))
    .get();
  if (!row) throw notFound('Execution', id);
  return row;
}

/** Everything that defines one execution; batches and retries build many of these at once. */
export interface ExecutionSpec {
  runtime: CreateExecutionParsed['runtime'];
  script: CreateExecutionParsed['script'];
  requirements: string | null;
  inputs: CreateExecutionParsed['inputs'];
  args: string[];
  env: Record<string, string>;
  limits: CreateExecutionParsed['limits'];
  metadata: Record<string, string>;
  pool: string;
  batchId: string | null;
  inputName: string | null;
  retryOf: string | null;
  noCache?: boolean;
  /** Fetched by the runner (webhook deliveries with allowlisted https URLs). */
  remoteInputs?: { path: string; url: string; arg?: number }[];
}

export function validateRequirements(text: string | null | undefined): void {
  if (text === undefined || text === null) return;
  const parsed = parseRequirements(text);
  if (!parsed.ok) {
    throw new ApiError('bad_request', `requirements.txt has lines that cannot be used:\n${formatRequirementProblems(parsed.problems)}`, 'List packages as name and version specifiers only (e.g. numpy==1.26.4).', parsed.problems);
  }
}

export async function requirePool(db: Db, name: string): Promise<{ id: string; shards: number }> {
  const pool = await db.select({ id: schema.pools.id, shards: schema.pools.dispatchShards }).from(schema.pools).where(eq(schema.pools.name, name)).get();
  if (!pool) throw new ApiError('bad_request', `runner pool "${name}" does not exist`, 'Use an existing pool (the default is "default") or ask the operator to create it.');
  return pool;
}

/**
 * Inserts executions as `created` (bulk, chunked under D1's limits) and returns their rows. Each
 * gets its Dispatcher shard now (`cappedBatch`: a batch with a --parallel cap lives in one shard).
 */
export async function insertExecutions(c: AppContext, specs: ExecutionSpec[], opts: { cappedBatch?: boolean } = {}): Promise<ExecutionRow[]> {
  const db = c.get('db');
  const { accountId } = c.get('caller');
  const config = c.get('config');
  const now = c.get('now')();
  const keys = new Map<string, string>();
  const memo = async (k: string, f: () => Promise<string>) => keys.get(k) ?? keys.set(k, await f()).get(k)!;
  const rows: ExecutionRow[] = [];
  const shards = new Map<string, number>();
  for (const spec of specs) {
    if (!shards.has(spec.pool)) shards.set(spec.pool, (await requirePool(db, spec.pool)).shards);
  }
  for (const spec of specs) {
    const baseImage = RUNTIMES[spec.runtime].image;
    const id = newId('execution');
    rows.push({
      ...nullColumns,
      id,
      version: 0,
      shard: shardFor(shards.get(spec.pool)!, id, opts.cappedBatch ? spec.batchId : null),
      accountId,
      batchId: spec.batchId,
      inputName: spec.inputName,
      retryOf: spec.retryOf,
      pool: spec.pool,
      status: 'created',
      maxAttempts: config.maxAttempts,
      runtime: spec.runtime,
      scriptName: spec.script.name,
      scriptSha256: spec.script.sha256,
      scriptSize: spec.script.size,
      scriptKey: await memo(`s:${spec.runtime}:${spec.script.sha256}`, () => scriptKey(spec.runtime, spec.script.sha256)),
      envKey: await memo(`e:${spec.runtime}:${spec.requirements ?? ''}`, () => envKey(spec.runtime, baseImage, spec.requirements ?? '')),
      requirements: spec.requirements,
      noCache: spec.noCache ?? false,
      remoteInputs: spec.remoteInputs ?? [],
      inputs: spec.inputs,
      args: spec.args,
      env: spec.env,
      limits: spec.limits,
      metadata: spec.metadata,
      createdAt: now,
    } as ExecutionRow);
  }
  const statements = [
    ...rows.map((row) => db.insert(schema.executions).values(row)),
    ...chunk(
      rows.flatMap((r) => Object.entries(r.metadata).map(([key, value]) => ({ executionId: r.id, accountId, key, value }))),
      20,
    ).map((part) => db.insert(schema.executionMetadata).values(part)),
  ];
  for (const part of chunk(statements, 50)) await db.batch(part as [(typeof part)[number], ...typeof part]);
  return rows;
}

/** Presigned PUTs for the blobs among `shas` that the account does not have (deduplicated). */
export async function uploadsFor(c: AppContext, shas: string[], force = false): Promise<BlobUpload[]> {
  const { accountId } = c.get('caller');
  const have = force ? new Set<string>() : await knownBlobs(c.get('db'), accountId, shas);
  const store = c.get('store');
  const { presignSeconds } = c.get('config');
  const missing = [...new Set(shas.filter((s) => !have.has(s)))];
  return Promise.all(missing.map(async (sha256) => ({ sha256, ...(await store.presign('PUT', blobKey(accountId, sha256), { expiresSeconds: presignSeconds })) })));
}

export function checkFileSizes(c: AppContext, files: { path: string; size: number }[]): void {
  const { maxFileBytes } = c.get('config');
  const big = files.find((f) => f.size > maxFileBytes);
  if (big) throw new ApiError('payload_too_large', `input ${big.path} has ${big.size} bytes; the limit is ${maxFileBytes}`, 'Split the input, or ask the operator to raise MAX_FILE_BYTES.');
}

export async function createExecution(c: AppContext, req: CreateExecutionParsed): Promise<CreateExecutionResponse> {
  validateRequirements(req.requirements);
  checkFileSizes(c, req.inputs);
  const db = c.get('db');
  const { accountId } = c.get('caller');
  await requirePool(db, req.pool);
  const cache = await assess(db, accountId, { ...req, requirements: req.requirements ?? null }, c.get('now')());
  const [row] = await insertExecutions(c, [{ ...req, requirements: req.requirements ?? null, batchId: null, inputName: null, retryOf: null }]);
  const shas = [req.script.sha256, ...req.inputs.map((i) => i.sha256)];
  await recordAssessment(db, accountId, cache, req.inputs.map((i) => i.sha256), await knownBlobs(db, accountId, shas), false);
  const { reusable: _r, ...report } = cache;
  if (req.reuseResults && (await applyReuse(c, [row!])).size) {
    return { execution: toExecution(await loadExecution(db, accountId, row!.id)), cache: report, uploads: [] };
  }
  const uploads = await uploadsFor(c, shas, req.forceUpload);
  let execution = toExecution(row!);
  if (req.autoSubmit && uploads.length === 0) execution = await submitExecution(c, row!.id);
  return { execution, cache: { ...report, result: { ...report.result, reusedFrom: null } }, uploads };
}

/** Two-phase submit: queued only after every declared blob is confirmed in the object store. */
export async function submitExecution(c: AppContext, id: string): Promise<Execution> {
  const db = c.get('db');
  const { accountId } = c.get('caller');
  const row = await loadExecution(db, accountId, id);
  if (row.status !== 'created') {
    // Submitting twice is harmless: answer with the current state.
    if (row.status === 'queued' || row.status === 'running' || row.status === 'succeeded') return liveView(c, row);
    throw new ApiError('conflict', `execution ${id} is ${row.status} and cannot be submitted`, 'Create a new execution (or `rgrid retry`).');
  }
  const inputs = row.inputs as { path: string; sha256: string; size: number; encoding?: 'identity' | 'gzip' }[];
  const stored = await confirmBlobs(c.get('db'), c.get('store'), accountId, [
    { sha256: row.scriptSha256, size: row.scriptSize, label: `script ${row.scriptName}` },
    ...inputs.map((i) => ({ sha256: i.sha256, size: i.size, encoding: i.encoding, label: `input ${i.path}` })),
  ]);
  const [job] = await enqueueJobs([row], stored);
  const result = await dispatcherOf(c, row).enqueue([job!]);
  const refused = result.refused[0];
  if (refused) throw new ApiError('conflict', `execution ${id} is ${refused.status} and cannot be submitted`);
  return liveView(c, row);
}

/**
 * What the Dispatcher needs to hand these executions out without reading D1 again: the payload of
 * each, with the encodings its inputs are stored with (`stored`: what confirmBlobs answered for
 * the account's blobs just before) and its result-cache key.
 */
export async function enqueueJobs(rows: ExecutionRow[], stored: Map<string, 'identity' | 'gzip'>): Promise<EnqueueJob[]> {
  return Promise.all(
    rows.map(async (r) => {
      const inputs = r.inputs as InputFile[];
      const payload: JobPayload = {
        runtime: r.runtime as JobPayload['runtime'],
        script: { name: r.scriptName, sha256: r.scriptSha256, size: r.scriptSize },
        scriptKey: r.scriptKey,
        envKey: r.envKey,
        requirements: r.requirements,
        rebuildEnv: r.noCache,
        inputs: inputs.map((i) => ({ ...i, encoding: stored.get(i.sha256) ?? 'identity' })),
        remoteInputs: r.remoteInputs as JobPayload['remoteInputs'],
        args: r.args,
        env: r.env,
        limits: r.limits as JobPayload['limits'],
        resultKey: await resultKey(r.scriptKey, r.envKey, r.args, r.env, inputs),
      };
      return { executionId: r.id, accountId: r.accountId, batchId: r.batchId, maxAttempts: r.maxAttempts, payload };
    }),
  );
}

/**
 * An execution as the user should see it. D1 follows the Dispatcher with a lag of at most a flush
 * (FLUSH_MS); for an execution that is live in D1, the Dispatcher is asked (it first flushes a
 * final state it holds, so a final state is only ever shown with its artifacts recorded). A reader
 * never sees an older state than one it was shown.
 */
export async function liveView(c: AppContext, row: ExecutionRow): Promise<Execution> {
  if (isFinal(row.status as ExecutionState)) return toExecution(row);
  const [snap] = await dispatcherOf(c, row).sync([row.id]);
  if (!snap || snap.version <= row.version) return toExecution(row);
  if (isFinal(snap.status)) {
    const fresh = await loadExecution(c.get('db'), row.accountId, row.id);
    if (fresh.version >= snap.version) return toExecution(fresh);
  }
  return toExecution({
    ...row,
    version: snap.version,
    status: snap.status,
    attempt: snap.attempt,
    runnerId: snap.runnerId,
    submittedAt: snap.submittedAt ?? row.submittedAt,
    startedAt: snap.startedAt ?? row.startedAt,
    finishedAt: snap.finishedAt,
    failureKind: snap.failureKind,
    exitCode: snap.exitCode,
    message: snap.message,
    envHit: snap.envHit,
    buildSeconds: snap.buildSeconds,
    durationMs: snap.durationMs,
  });
}

/** Every cancel goes through the Dispatcher, even of a `created` execution, so it cannot race a submit. */
export async function cancelExecution(c: AppContext, id: string): Promise<Execution> {
  const db = c.get('db');
  const { accountId } = c.get('caller');
  const row = await loadExecution(db, accountId, id);
  if (row.status === 'created' || row.status === 'queued' || row.status === 'running') {
    const r = await dispatcherOf(c, row).cancel(id, row.status === 'created' ? { accountId, batchId: row.batchId } : undefined);
    if (!r.ok && r.status !== 'canceled') throw new ApiError('conflict', `execution ${id} already ${r.status}`, 'Only created, queued or running executions can be canceled.');
  } else if (row.status !== 'canceled') {
    throw new ApiError('conflict', `execution ${id} already ${row.status}`, 'Only created, queued or running executions can be canceled.');
  }
  return liveView(c, row);
}
