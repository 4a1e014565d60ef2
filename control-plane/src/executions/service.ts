/** Execution operations shared by the client API routes (and later batches and webhooks). */
import { and, eq } from 'drizzle-orm';
import { newId } from '../../../shared/ids.js';
import { envKey, scriptKey } from '../../../shared/hashing.js';
import { RUNTIMES } from '../../../shared/limits.js';
import { formatRequirementProblems, parseRequirements } from '../../../shared/requirements.js';
import { transition } from '../../../shared/lifecycle.js';
import type { CreateExecutionParsed, CreateExecutionResponse, Execution } from '../../../shared/api/executions.js';
import type { BlobUpload } from '../../../shared/api/common.js';
import { schema, type Db } from '../db/client.js';
import { blobKey } from '../storage/s3.js';
import { ApiError, notFound } from '../errors.js';
import { chunk, confirmBlobs, knownBlobs } from './blobs.js';
import { toExecution, type ExecutionRow } from './view.js';
import type { AppContext } from '../context.js';

export function dispatcher(c: AppContext, pool: string) {
  return c.env.DISPATCHER.get(c.env.DISPATCHER.idFromName(pool));
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

export async function createExecution(c: AppContext, req: CreateExecutionParsed, batchId: string | null = null): Promise<CreateExecutionResponse> {
  const db = c.get('db');
  const { accountId } = c.get('caller');
  const config = c.get('config');

  if (req.requirements !== undefined) {
    const parsed = parseRequirements(req.requirements);
    if (!parsed.ok) {
      throw new ApiError('bad_request', `requirements.txt has lines that cannot be used:\n${formatRequirementProblems(parsed.problems)}`, 'List packages as name and version specifiers only (e.g. numpy==1.26.4).', parsed.problems);
    }
  }
  const pool = await db.select({ id: schema.pools.id }).from(schema.pools).where(eq(schema.pools.name, req.pool)).get();
  if (!pool) throw new ApiError('bad_request', `runner pool "${req.pool}" does not exist`, 'Use an existing pool (the default is "default") or ask the operator to create it.');

  const baseImage = RUNTIMES[req.runtime].image;
  const id = newId('execution');
  const now = c.get('now')();
  const row: typeof schema.executions.$inferInsert = {
    id,
    accountId,
    batchId,
    pool: req.pool,
    status: 'created',
    maxAttempts: config.maxAttempts,
    runtime: req.runtime,
    scriptName: req.script.name,
    scriptSha256: req.script.sha256,
    scriptSize: req.script.size,
    scriptKey: await scriptKey(req.runtime, req.script.sha256),
    envKey: await envKey(req.runtime, baseImage, req.requirements ?? ''),
    requirements: req.requirements ?? null,
    inputs: req.inputs,
    args: req.args,
    env: req.env,
    limits: req.limits,
    metadata: req.metadata,
    createdAt: now,
  };
  const metadataRows = Object.entries(req.metadata).map(([key, value]) => ({ executionId: id, accountId, key, value }));
  await db.batch([
    db.insert(schema.executions).values(row),
    ...chunk(metadataRows, 20).map((part) => db.insert(schema.executionMetadata).values(part)),
  ]);

  const wanted = [req.script.sha256, ...req.inputs.map((i) => i.sha256)];
  const have = await knownBlobs(db, accountId, wanted);
  const store = c.get('store');
  const missing = [...new Set(wanted.filter((s) => !have.has(s)))];
  const uploads: BlobUpload[] = await Promise.all(
    missing.map(async (sha256) => ({ sha256, ...(await store.presign('PUT', blobKey(accountId, sha256), { expiresSeconds: config.presignSeconds })) })),
  );

  let execution = toExecution({ ...nullColumns, ...row } as ExecutionRow);
  if (req.autoSubmit && uploads.length === 0) execution = await submitExecution(c, id);
  return { execution, uploads };
}

const nullColumns = {
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

/** Two-phase submit: queued only after every declared blob is confirmed in the object store. */
export async function submitExecution(c: AppContext, id: string): Promise<Execution> {
  const db = c.get('db');
  const { accountId } = c.get('caller');
  const row = await loadExecution(db, accountId, id);
  if (row.status !== 'created') {
    // Submitting twice is harmless: answer with the current state.
    if (row.status === 'queued' || row.status === 'running' || row.status === 'succeeded') return toExecution(row);
    throw new ApiError('conflict', `execution ${id} is ${row.status} and cannot be submitted`, 'Create a new execution (or `rgrid retry`).');
  }
  const inputs = row.inputs as { path: string; sha256: string; size: number }[];
  await confirmBlobs(c.get('db'), c.get('store'), accountId, [
    { sha256: row.scriptSha256, size: row.scriptSize, label: `script ${row.scriptName}` },
    ...inputs.map((i) => ({ sha256: i.sha256, size: i.size, label: `input ${i.path}` })),
  ]);
  const result = await dispatcher(c, row.pool).enqueue({
    executionId: id,
    accountId,
    batchId: row.batchId,
    envKey: row.envKey,
    maxAttempts: row.maxAttempts,
  });
  if (!result.ok) throw new ApiError('conflict', `execution ${id} is ${result.status} and cannot be submitted`);
  return toExecution(await loadExecution(db, accountId, id));
}

export async function cancelExecution(c: AppContext, id: string): Promise<Execution> {
  const db = c.get('db');
  const { accountId } = c.get('caller');
  const row = await loadExecution(db, accountId, id);
  if (row.status === 'created') {
    const next = transition('created', { type: 'cancel' });
    if (!next.ok) throw new ApiError('conflict', next.reason);
    await db
      .update(schema.executions)
      .set({ status: next.state, failureKind: next.failureKind, finishedAt: c.get('now')() })
      .where(and(eq(schema.executions.id, id), eq(schema.executions.status, 'created')));
  } else if (row.status === 'queued' || row.status === 'running') {
    await dispatcher(c, row.pool).cancel(id);
  } else if (row.status !== 'canceled') {
    throw new ApiError('conflict', `execution ${id} already ${row.status}`, 'Only created, queued or running executions can be canceled.');
  }
  return toExecution(await loadExecution(db, accountId, id));
}
