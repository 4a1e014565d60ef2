/** Client API: executions. */
import { z } from 'zod';
import { DEFAULTS, LIMITS } from '../limits.js';
import { ExecutionState, FailureKind } from '../lifecycle.js';
import { ExecutionId, BatchId, RunnerId } from '../ids.js';
import { CacheReport } from './cache.js';
import { BlobUpload, ContentEncoding, FileName, FileRef, Pagination, RelativePath, Runtime, Sha256, StringMap, Timestamp, nestedPathConflict } from './common.js';

export const Limits = z.strictObject({
  timeoutSeconds: z.number().int().min(1).max(LIMITS.maxTimeoutSeconds).default(DEFAULTS.timeoutSeconds),
  memoryMb: z.number().int().min(16).max(LIMITS.maxMemoryMb).default(DEFAULTS.memoryMb),
  cpus: z.number().min(0.1).max(LIMITS.maxCpus).default(DEFAULTS.cpus),
});
export type Limits = z.infer<typeof Limits>;

export const InputFile = FileRef.extend({
  /** Index into args of the argument that named this file; the runner rewrites it to /work/<path>. */
  arg: z.number().int().min(0).max(LIMITS.maxArgs - 1).optional(),
  /** How the client stores the bytes it uploads (gzip for text); `sha256`/`size` are of the original. */
  encoding: ContentEncoding.optional(),
});
export type InputFile = z.infer<typeof InputFile>;

/**
 * The inputs of one execution (or batch item): distinct paths, none reserved, and no file that
 * another input would have to be placed under ("a" with "a/b").
 */
export const InputFiles = z
  .array(InputFile)
  .max(LIMITS.maxInputsPerExecution)
  .default([])
  .refine((xs) => new Set(xs.map((x) => x.path)).size === xs.length, 'input paths must be unique')
  .refine((xs) => xs.every((x) => x.path !== '.rgrid'), 'reserved path')
  .superRefine((xs, ctx) => {
    const conflict = nestedPathConflict(xs.map((x) => x.path));
    if (conflict) ctx.addIssue({ code: 'custom', message: `input "${conflict[0]}" is a file, so input "${conflict[1]}" cannot be placed under it; rename one of them` });
  });

export const ScriptRef = z.strictObject({
  /** File name the script runs under inside the container (e.g. "analyze.py"). */
  name: FileName,
  sha256: Sha256,
  size: z.number().int().min(0).max(10 * 1024 * 1024),
});
export type ScriptRef = z.infer<typeof ScriptRef>;

export const CreateExecutionRequest = z.strictObject({
  runtime: Runtime.default(DEFAULTS.runtime),
  script: ScriptRef,
  /** Contents of requirements.txt; only specifiers and comments are accepted. */
  requirements: z.string().max(64 * 1024).optional(),
  inputs: InputFiles,
  args: z.array(z.string().max(LIMITS.maxArgBytes)).max(LIMITS.maxArgs).default([]),
  env: StringMap(LIMITS.maxEnvVars, LIMITS.maxEnvValueBytes).default({}),
  limits: Limits.default({ timeoutSeconds: DEFAULTS.timeoutSeconds, memoryMb: DEFAULTS.memoryMb, cpus: DEFAULTS.cpus }),
  metadata: StringMap(LIMITS.maxMetadataPairs, LIMITS.maxMetadataValueBytes).default({}),
  pool: z.string().min(1).max(64).regex(/^[a-z0-9][a-z0-9-]*$/).default(DEFAULTS.pool),
  /** Submit at once when every blob is already stored (saves a round trip on cache hits). */
  autoSubmit: z.boolean().default(false),
  /** Reuse the outputs of an identical earlier succeeded execution instead of running. */
  reuseResults: z.boolean().default(false),
  /** Offer uploads for every blob, even ones already stored (`--no-cache-inputs`). */
  forceUpload: z.boolean().default(false),
  /** Rebuild the environment even when its image exists (`--no-cache`). */
  noCache: z.boolean().default(false),
});
export type CreateExecutionRequest = z.input<typeof CreateExecutionRequest>;
export type CreateExecutionParsed = z.output<typeof CreateExecutionRequest>;

export const CacheInfo = z.object({
  envHit: z.boolean().nullable(),
  buildSeconds: z.number().nullable(),
});

export const Execution = z.object({
  id: ExecutionId,
  status: ExecutionState,
  failureKind: FailureKind.nullable(),
  exitCode: z.number().int().nullable(),
  message: z.string().nullable(),
  attempt: z.number().int(),
  maxAttempts: z.number().int(),
  runtime: Runtime,
  script: ScriptRef,
  scriptKey: Sha256,
  envKey: Sha256,
  requirements: z.string().nullable(),
  inputs: z.array(InputFile),
  args: z.array(z.string()),
  env: z.record(z.string(), z.string()),
  limits: Limits,
  metadata: z.record(z.string(), z.string()),
  pool: z.string(),
  batchId: BatchId.nullable(),
  /** For batch items: the input this item processes (names its output folder). */
  inputName: z.string().nullable(),
  /** The execution this one retries. */
  retryOf: ExecutionId.nullable(),
  /** Set when outputs were reused from an earlier identical execution instead of running. */
  reusedFrom: ExecutionId.nullable(),
  runnerId: RunnerId.nullable(),
  cache: CacheInfo,
  createdAt: Timestamp,
  submittedAt: Timestamp.nullable(),
  startedAt: Timestamp.nullable(),
  finishedAt: Timestamp.nullable(),
});
export type Execution = z.infer<typeof Execution>;

export const CreateExecutionResponse = z.object({
  execution: Execution,
  /** What was reused and, on a miss, why. */
  cache: CacheReport,
  /** One presigned PUT per blob the account does not have yet; empty on a full cache hit. */
  uploads: z.array(BlobUpload),
});
export type CreateExecutionResponse = z.infer<typeof CreateExecutionResponse>;

export const ExecutionResponse = z.object({ execution: Execution });
export type ExecutionResponse = z.infer<typeof ExecutionResponse>;

export const SubmitExecutionResponse = ExecutionResponse;
export type SubmitExecutionResponse = ExecutionResponse;
export const CancelExecutionResponse = ExecutionResponse;
export type CancelExecutionResponse = ExecutionResponse;

export const ListExecutionsQuery = Pagination.extend({
  status: ExecutionState.optional(),
  batch: BatchId.optional(),
  /** key=value; repeat the parameter to require several pairs. */
  metadata: z.union([z.string(), z.array(z.string())]).optional(),
});
export type ListExecutionsQuery = z.infer<typeof ListExecutionsQuery>;

export const ListExecutionsResponse = z.object({
  executions: z.array(Execution),
  /** Pass as `cursor` for the next (older) page; null on the last page. */
  nextCursor: z.string().nullable(),
});
export type ListExecutionsResponse = z.infer<typeof ListExecutionsResponse>;

export const ArtifactKind = z.enum(['input', 'output', 'log']);
export const Artifact = z.object({
  id: z.string(),
  kind: ArtifactKind,
  path: RelativePath,
  size: z.number().int(),
  sha256: Sha256,
  contentType: z.string(),
  encoding: z.enum(['identity', 'gzip']),
  expiresAt: Timestamp,
  /** Past its retention: the bytes are gone (or going) and `download` is null. */
  expired: z.boolean(),
  download: z
    .object({ url: z.string().url(), headers: z.record(z.string(), z.string()), expiresAt: Timestamp })
    .nullable(),
});
export type Artifact = z.infer<typeof Artifact>;
export const ListArtifactsResponse = z.object({ artifacts: z.array(Artifact) });
export const ArtifactResponse = z.object({ artifact: Artifact });
export type ListArtifactsResponse = z.infer<typeof ListArtifactsResponse>;

export const LogStream = z.enum(['stdout', 'stderr', 'system']);
export type LogStream = z.infer<typeof LogStream>;

export const LogsQuery = z.object({
  cursor: z.string().max(100).optional(),
  stream: LogStream.optional(),
  limit: z.coerce.number().int().min(1).max(1000).optional(),
});
export const LogChunkView = z.object({ attempt: z.number().int(), seq: z.number().int(), stream: LogStream, data: z.string(), at: Timestamp });
export const LogsResponse = z.object({
  chunks: z.array(LogChunkView),
  /** Pass back as `cursor` to get only newer chunks (for `logs -f`). */
  cursor: z.string(),
  /** True once the execution is final and every chunk up to the cursor was returned. */
  done: z.boolean(),
  status: ExecutionState,
});
export type LogsResponse = z.infer<typeof LogsResponse>;

export const WhoAmIResponse = z.object({
  account: z.object({ id: z.string(), name: z.string() }),
  apiKey: z.object({ id: z.string(), prefix: z.string() }),
});
export type WhoAmIResponse = z.infer<typeof WhoAmIResponse>;

export const HealthResponse = z.object({ ok: z.literal(true), version: z.string(), time: Timestamp });

export { RelativePath, Sha256 };
