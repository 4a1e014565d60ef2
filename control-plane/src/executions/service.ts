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

export async function requirePool(db: Db, name: string): Promise<void> {
  const pool = await db.select({ id: schema.pools.id }).from(schema.pools).where(eq(schema.pools.name, name)).get();
  if (!pool) throw new ApiError('bad_request', `runner pool "${name}" does not exist`, 'Use an existing pool (the default is "default") or ask the operator to create it.');
}

/** Inserts executions as `created` (bulk, chunked under D1's limits) and returns their rows. */
export async function insertExecutions(c: AppContext, specs: ExecutionSpec[]): Promise<ExecutionRow[]> {
  const db = c.get('db');
  const { accountId } = c.get('caller');
  const config = c.get('config');
  const now = c.get('now')();
  const keys = new Map<string, string>();
  const memo = async (k: string, f: () => Promise<string>) => keys.get(k) ?? keys.set(k, await f()).get(k)!;
  const rows: ExecutionRow[] = [];
  for (const spec of specs) {
    const baseImage = RUNTIMES[spec.runtime].image;
    rows.push({
      ...nullColumns,
      id: newId('execution'),
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
    if (row.status === 'queued' || row.status === 'running' || row.status === 'succeeded') return toExecution(row);
    throw new ApiError('conflict', `execution ${id} is ${row.status} and cannot be submitted`, 'Create a new execution (or `rgrid retry`).');
  }
  const inputs = row.inputs as { path: string; sha256: string; size: number; encoding?: 'identity' | 'gzip' }[];
  await confirmBlobs(c.get('db'), c.get('store'), accountId, [
    { sha256: row.scriptSha256, size: row.scriptSize, label: `script ${row.scriptName}` },
    ...inputs.map((i) => ({ sha256: i.sha256, size: i.size, encoding: i.encoding, label: `input ${i.path}` })),
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
    if (row.batchId) {
      await c.env.BATCHES.get(c.env.BATCHES.idFromName(row.batchId)).update([{ executionId: id, status: 'canceled', at: c.get('now')(), failureKind: 'canceled', message: 'canceled' }]);
    }
  } else if (row.status === 'queued' || row.status === 'running') {
    await dispatcher(c, row.pool).cancel(id);
  } else if (row.status !== 'canceled') {
    throw new ApiError('conflict', `execution ${id} already ${row.status}`, 'Only created, queued or running executions can be canceled.');
  }
  return toExecution(await loadExecution(db, accountId, id));
}
