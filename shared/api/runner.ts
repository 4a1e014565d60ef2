/**
 * Runner protocol (/runner/v1). Every call about a job carries (executionId, attempt): a call for
 * an attempt that is no longer current answers 409 `stale_attempt` with the execution's current
 * state, and the runner stops working on it.
 */
import { z } from 'zod';
import { LIMITS } from '../limits.js';
import { ErrorBody } from '../errors.js';
import { ExecutionState, FailureKind } from '../lifecycle.js';
import { ExecutionId, RunnerId } from '../ids.js';
import { ContentEncoding, FileRef, PresignedRequest, RelativePath, Runtime, Sha256, StringMap, Timestamp } from './common.js';
import { InputFile, Limits, LogStream, ScriptRef } from './executions.js';

export const RegisterRunnerRequest = z.strictObject({
  registrationToken: z.string().min(10).max(200),
  name: z.string().min(1).max(128),
  slots: z.number().int().min(1).max(256),
  labels: StringMap(32, 256).default({}),
  version: z.string().max(64).default('unknown'),
});
export type RegisterRunnerRequest = z.input<typeof RegisterRunnerRequest>;

export const RegisterRunnerResponse = z.object({
  runnerId: RunnerId,
  runnerToken: z.string(),
  pool: z.string(),
});
export type RegisterRunnerResponse = z.infer<typeof RegisterRunnerResponse>;

/**
 * Lease timing, decided by the control plane alone and sent with every claim and heartbeat answer
 * (nothing about timing is stored on a runner, so a changed lease reaches every runner at its next
 * call). A runner heartbeats every `heartbeatSeconds`; a lease not renewed for `leaseSeconds` is
 * requeued; a job handed out but not acknowledged by a heartbeat within `offerSeconds` (the
 * answer never reached the runner) goes back to the queue without costing an attempt.
 */
export const LeaseTiming = z.object({
  leaseSeconds: z.number().int().min(1),
  heartbeatSeconds: z.number().int().min(1),
  offerSeconds: z.number().int().min(1),
});
export type LeaseTiming = z.infer<typeof LeaseTiming>;

/** A job a runner holds: the fencing pair plus the dispatcher shard that leased it. */
export const HeldJob = z.strictObject({
  executionId: ExecutionId,
  attempt: z.number().int().min(1),
  shard: z.number().int().min(0).max(255).default(0),
});
export type HeldJob = z.input<typeof HeldJob>;

/** Per-runner heartbeat: liveness, and one lease renewal for every job the runner holds. */
export const RunnerHeartbeatRequest = z.strictObject({
  activeJobs: z.number().int().min(0).max(1024),
  draining: z.boolean().default(false),
  /** Env keys whose images this runner holds (dispatcher affinity); sent when the set changed. */
  envKeys: z.array(Sha256).max(1000).optional(),
  /** Every job the runner holds (running, or uploading and reporting): renews and acknowledges their leases. */
  jobs: z.array(HeldJob).max(1024).default([]),
});
export type RunnerHeartbeatRequest = z.input<typeof RunnerHeartbeatRequest>;
export const RunnerHeartbeatResponse = z.object({
  ok: z.literal(true),
  drain: z.boolean(),
  timing: LeaseTiming,
  /** Jobs whose execution was canceled: stop them, report them as canceled. */
  cancel: z.array(ExecutionId),
  /** Jobs whose attempt is over (requeued elsewhere, finished, unknown): stop, report nothing. */
  stale: z.array(z.object({ executionId: ExecutionId, currentAttempt: z.number().int(), status: ExecutionState })),
});
export type RunnerHeartbeatResponse = z.infer<typeof RunnerHeartbeatResponse>;

export const ClaimRequest = z.strictObject({
  /** How many jobs the runner can start now (its free slots): one long-poll claims for all of them. */
  maxJobs: z.number().int().min(1).max(LIMITS.maxClaimJobs).default(1),
  /** Long-poll: wait up to this long for work; 0 answers at once. */
  waitSeconds: z.number().min(0).max(LIMITS.maxClaimWaitSeconds).default(LIMITS.maxClaimWaitSeconds),
  envKeys: z.array(Sha256).max(1000).optional(),
});
export type ClaimRequest = z.input<typeof ClaimRequest>;

export const JobInput = InputFile.extend({ encoding: ContentEncoding, download: PresignedRequest });
export type JobInput = z.infer<typeof JobInput>;

/** An input the runner fetches itself (https, from a host the webhook owner allowed). */
export const RemoteInput = z.object({ path: RelativePath, url: z.string().url(), arg: z.number().int().min(0).optional() });
export type RemoteInput = z.infer<typeof RemoteInput>;

export const Job = z.object({
  executionId: ExecutionId,
  attempt: z.number().int().min(1),
  /** The dispatcher shard that leased it: every later call about the job names it. */
  shard: z.number().int().min(0).max(255).default(0),
  leaseExpiresAt: Timestamp,
  runtime: Runtime,
  script: ScriptRef.extend({ download: PresignedRequest }),
  scriptKey: Sha256,
  envKey: Sha256,
  requirements: z.string().nullable(),
  /** Rebuild the environment image even if it exists. */
  rebuildEnv: z.boolean().default(false),
  inputs: z.array(JobInput),
  remoteInputs: z.array(RemoteInput).default([]),
  args: z.array(z.string()),
  env: z.record(z.string(), z.string()),
  limits: Limits,
});
export type Job = z.infer<typeof Job>;

export const ClaimResponse = z.object({ jobs: z.array(Job), timing: LeaseTiming });
export type ClaimResponse = z.infer<typeof ClaimResponse>;

/** Every call about one job names its attempt (fencing) and the shard that leased it. */
export const AttemptRef = z.strictObject({ attempt: z.number().int().min(1), shard: z.number().int().min(0).max(255).default(0) });
export type AttemptRef = z.input<typeof AttemptRef>;

export const ReleaseRequest = AttemptRef;
export type ReleaseRequest = z.input<typeof ReleaseRequest>;

export const LogChunk = z.strictObject({
  /** Per attempt, 0-based, shared by all streams; a repeated seq is ignored (retries are safe). */
  seq: z.number().int().min(0),
  stream: LogStream,
  data: z.string().max(LIMITS.maxLogChunkBytes),
});
export type LogChunk = z.infer<typeof LogChunk>;
export const AppendLogsRequest = AttemptRef.extend({ chunks: z.array(LogChunk).min(1).max(LIMITS.maxLogChunksPerRequest) });
export type AppendLogsRequest = z.infer<typeof AppendLogsRequest>;
export const AppendLogsResponse = z.object({ accepted: z.number().int(), duplicates: z.number().int(), truncated: z.boolean() });
export type AppendLogsResponse = z.infer<typeof AppendLogsResponse>;

export const OutputFile = FileRef.extend({ encoding: ContentEncoding.default('identity') });
export type OutputFile = z.input<typeof OutputFile>;

export const PresignOutputsRequest = AttemptRef.extend({ files: z.array(OutputFile).min(1).max(1000) });
export type PresignOutputsRequest = z.input<typeof PresignOutputsRequest>;
export const PresignOutputsResponse = z.object({
  /** Uploads only for blobs not stored yet; an output whose bytes already exist needs none. */
  uploads: z.array(PresignedRequest.extend({ sha256: Sha256 })),
});
export type PresignOutputsResponse = z.infer<typeof PresignOutputsResponse>;

const CompletionFields = AttemptRef.extend({
  outcome: z.enum(['succeeded', 'failed']),
  failureKind: FailureKind.optional(),
  exitCode: z.number().int().nullable().default(null),
  message: z.string().max(4000).optional(),
  outputs: z.array(OutputFile).max(LIMITS.maxOutputsPerExecution).default([]),
  /** Full stdout/stderr, uploaded as blobs like outputs. */
  logs: z.array(OutputFile).max(3).default([]),
  cache: z.strictObject({ envHit: z.boolean().nullable(), buildSeconds: z.number().min(0).nullable() }).optional(),
  durationMs: z.number().int().min(0).optional(),
});
const failureKindRule = <T extends z.ZodType<{ outcome: string; failureKind?: unknown }>>(schema: T) =>
  schema.refine((r) => (r.outcome === 'failed') === (r.failureKind !== undefined), {
    message: 'failureKind is required when outcome is failed, and only then',
    path: ['failureKind'],
  });

export const CompleteRequest = failureKindRule(CompletionFields);
export type CompleteRequest = z.input<typeof CompleteRequest>;
export const CompleteResponse = z.object({ status: ExecutionState, duplicate: z.boolean() });
export type CompleteResponse = z.infer<typeof CompleteResponse>;

/** Several completions in one request (a runner sends those that are ready together). */
export const Completion = failureKindRule(CompletionFields.extend({ executionId: ExecutionId }));
export type Completion = z.input<typeof Completion>;
export const CompleteManyRequest = z.strictObject({ completions: z.array(Completion).min(1).max(LIMITS.maxClaimJobs) });
export type CompleteManyRequest = z.input<typeof CompleteManyRequest>;
/** One result per completion, in order: accepted, or the error that request alone would have had. */
export const CompletionResult = z.union([
  z.object({ executionId: ExecutionId, ok: z.literal(true), status: ExecutionState, duplicate: z.boolean() }),
  z.object({ executionId: ExecutionId, ok: z.literal(false), status: z.number().int(), error: ErrorBody }),
]);
export type CompletionResult = z.infer<typeof CompletionResult>;
export const CompleteManyResponse = z.object({ results: z.array(CompletionResult) });
export type CompleteManyResponse = z.infer<typeof CompleteManyResponse>;

/** Body of a 409 stale_attempt error's `details`. */
export const StaleAttemptDetails = z.object({
  executionId: ExecutionId,
  currentAttempt: z.number().int(),
  status: ExecutionState,
});
export type StaleAttemptDetails = z.infer<typeof StaleAttemptDetails>;
