/** D1 rows → the wire shapes of the shared contract. */
import type { Execution, InputFile, Limits } from '../../../shared/api/executions.js';
import type { ExecutionState, FailureKind } from '../../../shared/lifecycle.js';
import type { Runtime } from '../../../shared/api/common.js';
import type { schema } from '../db/client.js';

export type ExecutionRow = typeof schema.executions.$inferSelect;

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function toExecution(row: ExecutionRow): Execution {
  return {
    id: row.id,
    status: row.status as ExecutionState,
    failureKind: (row.failureKind as FailureKind | null) ?? null,
    exitCode: row.exitCode,
    message: row.message,
    attempt: row.attempt,
    maxAttempts: row.maxAttempts,
    runtime: row.runtime as Runtime,
    script: { name: row.scriptName, sha256: row.scriptSha256, size: row.scriptSize },
    scriptKey: row.scriptKey,
    envKey: row.envKey,
    requirements: row.requirements,
    inputs: row.inputs as InputFile[],
    args: row.args,
    env: row.env,
    limits: row.limits as Limits,
    metadata: row.metadata,
    pool: row.pool,
    batchId: row.batchId,
    inputName: row.inputName,
    retryOf: row.retryOf,
    reusedFrom: row.reusedFrom,
    runnerId: row.runnerId,
    cache: { envHit: row.envHit ?? null, buildSeconds: row.buildSeconds ?? null },
    createdAt: new Date(row.createdAt).toISOString(),
    submittedAt: iso(row.submittedAt),
    startedAt: iso(row.startedAt),
    finishedAt: iso(row.finishedAt),
  };
}
