/** Client API: batches (one execution per input, created and submitted in bulk) and retries. */
import { z } from 'zod';
import { DEFAULTS, LIMITS } from '../limits.js';
import { ExecutionState, FailureKind } from '../lifecycle.js';
import { BatchId, ExecutionId } from '../ids.js';
import { BlobUpload, Pagination, RelativePath, Runtime, StringMap, Timestamp } from './common.js';
import { Execution, InputFiles, Limits, ScriptRef } from './executions.js';

/** Items per create/append request; larger batches append in several requests. */
export const MAX_BATCH_ITEMS_PER_REQUEST = 1000;
export const MAX_BATCH_ITEMS = 100_000;

/** What every item of a batch shares. */
export const BatchTemplate = z.strictObject({
  runtime: Runtime.default(DEFAULTS.runtime),
  script: ScriptRef,
  requirements: z.string().max(64 * 1024).optional(),
  env: StringMap(LIMITS.maxEnvVars, LIMITS.maxEnvValueBytes).default({}),
  limits: Limits.default({ timeoutSeconds: DEFAULTS.timeoutSeconds, memoryMb: DEFAULTS.memoryMb, cpus: DEFAULTS.cpus }),
  pool: z.string().min(1).max(64).regex(/^[a-z0-9][a-z0-9-]*$/).default(DEFAULTS.pool),
});
export type BatchTemplate = z.input<typeof BatchTemplate>;

export const BatchItem = z.strictObject({
  /**
   * The input this item processes, e.g. "data/a.csv". It names the item's output folder on
   * download (./outputs/<input-name>/), so it is a relative path like an input's.
   */
  inputName: RelativePath,
  args: z.array(z.string().max(LIMITS.maxArgBytes)).max(LIMITS.maxArgs).default([]),
  inputs: InputFiles,
  metadata: StringMap(LIMITS.maxMetadataPairs, LIMITS.maxMetadataValueBytes).default({}),
});
export type BatchItem = z.input<typeof BatchItem>;

export const CreateBatchRequest = z.strictObject({
  name: z.string().max(200).optional(),
  template: BatchTemplate,
  items: z.array(BatchItem).max(MAX_BATCH_ITEMS_PER_REQUEST).default([]),
  /** At most this many of the batch's executions run at once, across the whole fleet. */
  parallel: z.number().int().min(1).max(10_000).optional(),
  /** Cancel the rest of the batch on the first failure. */
  failFast: z.boolean().default(false),
  metadata: StringMap(LIMITS.maxMetadataPairs, LIMITS.maxMetadataValueBytes).default({}),
  /** Items identical to an earlier succeeded execution reuse its outputs and do not run. */
  reuseResults: z.boolean().default(false),
  /** Offer uploads for every blob, even ones already stored. */
  forceUpload: z.boolean().default(false),
  /** Rebuild the environment even when its image exists. */
  noCache: z.boolean().default(false),
});
export type CreateBatchRequest = z.input<typeof CreateBatchRequest>;

export const AppendBatchItemsRequest = z.strictObject({ items: z.array(BatchItem).min(1).max(MAX_BATCH_ITEMS_PER_REQUEST) });
export type AppendBatchItemsRequest = z.input<typeof AppendBatchItemsRequest>;

export const BatchItemRef = z.object({ executionId: ExecutionId, inputName: z.string(), reusedFrom: ExecutionId.nullable().default(null) });

/** GET /api/v1/batches/{id}/items: the latest execution of each input, ordered by input name. */
export const BatchItemState = z.object({ executionId: ExecutionId, inputName: z.string(), status: ExecutionState });
export type BatchItemState = z.infer<typeof BatchItemState>;
export const BatchItemsResponse = z.object({ items: z.array(BatchItemState) });
export type BatchItemsResponse = z.infer<typeof BatchItemsResponse>;

export const BatchCounts = z.object({
  total: z.number().int(),
  created: z.number().int(),
  queued: z.number().int(),
  running: z.number().int(),
  succeeded: z.number().int(),
  failed: z.number().int(),
  canceled: z.number().int(),
  reused: z.number().int(),
});
export type BatchCounts = z.infer<typeof BatchCounts>;

export const BatchFailure = z.object({
  executionId: ExecutionId,
  inputName: z.string(),
  status: ExecutionState,
  failureKind: FailureKind.nullable(),
  message: z.string().nullable(),
  exitCode: z.number().int().nullable(),
});
export type BatchFailure = z.infer<typeof BatchFailure>;

export const BatchSnapshot = z.object({
  id: BatchId,
  name: z.string().nullable(),
  status: z.enum(['created', 'running', 'finished', 'canceled']),
  counts: BatchCounts,
  parallel: z.number().int().nullable(),
  failFast: z.boolean(),
  startedAt: Timestamp.nullable(),
  finishedAt: Timestamp.nullable(),
  /** Seconds until every item is final, from observed throughput; null until it can be estimated. */
  etaSeconds: z.number().nullable(),
  /** Items that ended failed or canceled (latest attempt of each input only). */
  failures: z.array(BatchFailure),
  metadata: z.record(z.string(), z.string()),
  createdAt: Timestamp,
  /** Increases with every change; watchers use it to drop stale updates. */
  version: z.number().int(),
});
export type BatchSnapshot = z.infer<typeof BatchSnapshot>;

export const CreateBatchResponse = z.object({
  batch: BatchSnapshot,
  items: z.array(BatchItemRef),
  /** Presigned PUTs for blobs the account lacks, deduplicated across the batch. */
  uploads: z.array(BlobUpload),
});
export type CreateBatchResponse = z.infer<typeof CreateBatchResponse>;
export const AppendBatchItemsResponse = z.object({ items: z.array(BatchItemRef), uploads: z.array(BlobUpload) });
export type AppendBatchItemsResponse = z.infer<typeof AppendBatchItemsResponse>;

export const BatchResponse = z.object({ batch: BatchSnapshot });
export type BatchResponse = z.infer<typeof BatchResponse>;

export const ListBatchesQuery = Pagination;
export const ListBatchesResponse = z.object({ batches: z.array(BatchSnapshot), nextCursor: z.string().nullable() });
export type ListBatchesResponse = z.infer<typeof ListBatchesResponse>;

export const RetryRequest = z.union([
  z.strictObject({ batchId: BatchId, all: z.boolean().default(false) }),
  z.strictObject({ executionIds: z.array(ExecutionId).min(1).max(MAX_BATCH_ITEMS_PER_REQUEST) }),
]);
export type RetryRequest = z.input<typeof RetryRequest>;
export const RetryResponse = z.object({
  /** New executions, each linked to the one it retries (`retryOf`). */
  executions: z.array(Execution),
  batchId: BatchId.nullable(),
});
export type RetryResponse = z.infer<typeof RetryResponse>;

/** Failures in one progress delta at most; more follow in the next ones. */
export const MAX_FAILURES_PER_PROGRESS = 100;

/**
 * What changed since the previous message to a watcher: the snapshot's moving fields as they
 * are now, and the failures that appeared since (not the whole list: merge them, deduplicated by
 * execution id). Sent at most every 500 ms while something changes, and every 2 s while the
 * batch runs (the ETA moves on its own, so the version may repeat).
 */
export const BatchProgress = BatchSnapshot.pick({ id: true, version: true, status: true, counts: true, etaSeconds: true, startedAt: true, finishedAt: true }).extend({
  type: z.literal('progress'),
  failures: z.array(BatchFailure).max(MAX_FAILURES_PER_PROGRESS),
});
export type BatchProgress = z.infer<typeof BatchProgress>;

/**
 * Pushed to WebSocket watchers of a batch: a full snapshot when the socket opens, on request
 * (send the text "snapshot"), after a retry and when the batch finishes; progress deltas between.
 */
export const BatchEvent = z.discriminatedUnion('type', [z.object({ type: z.literal('snapshot'), batch: BatchSnapshot }), BatchProgress]);
export type BatchEvent = z.infer<typeof BatchEvent>;
