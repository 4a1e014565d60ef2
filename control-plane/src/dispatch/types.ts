/** RPC shapes of the Dispatcher Durable Object. Methods return result unions instead of throwing. */
import type { ExecutionState, FailureKind } from '../../../shared/lifecycle.js';
import type { InputFile, Limits, ScriptRef } from '../../../shared/api/executions.js';
import type { RemoteInput, StaleAttemptDetails } from '../../../shared/api/runner.js';
import type { Runtime } from '../../../shared/api/common.js';

/**
 * Everything a runner needs to run a job except what is decided at claim time (attempt, lease,
 * download URLs). Copied into the Dispatcher at enqueue, so that a claim reads no D1.
 */
export interface JobPayload {
  runtime: Runtime;
  script: ScriptRef;
  scriptKey: string;
  envKey: string;
  requirements: string | null;
  rebuildEnv: boolean;
  inputs: (InputFile & { encoding: 'identity' | 'gzip' })[];
  remoteInputs: RemoteInput[];
  args: string[];
  env: Record<string, string>;
  limits: Limits;
  /** For the result cache record written when the execution succeeds. */
  resultKey: string;
}

export interface EnqueueJob {
  executionId: string;
  accountId: string;
  batchId: string | null;
  maxAttempts: number;
  payload: JobPayload;
}

export interface EnqueueOptions {
  /** A batch's --parallel cap (the whole batch lives in one shard, so the cap is exact). */
  cap?: { batchId: string; parallel: number };
}

export interface EnqueueResult {
  /** Ids now queued (newly, or already queued here before: a repeated submit is harmless). */
  queued: string[];
  /** Ids that were not queued, with the state that stopped them (final, or their batch canceled). */
  refused: { executionId: string; status: ExecutionState }[];
}

export interface ClaimArgs {
  runnerId: string;
  maxJobs: number;
  waitMs: number;
  /** Env keys whose images the runner holds: those jobs are preferred (affinity). */
  envKeys: string[];
}

export interface ClaimedJob {
  executionId: string;
  attempt: number;
  leaseExpiresAt: number;
  accountId: string;
  /** JobPayload as stored (JSON): the route parses it once to build the answer. */
  payload: string;
}

/** `backpressure`: D1 is behind (the outbox is full); the runner should retry after `retryAfterMs`. */
export type ClaimResult = { ok: true; jobs: ClaimedJob[] } | { ok: false; reason: 'backpressure'; retryAfterMs: number } | { ok: false; reason: 'draining' };

export type Stale = { ok: false; reason: 'stale'; details: StaleAttemptDetails };
/** The object does not know the execution: another pool's or shard's, or finished long ago. */
export type NotHere = { ok: false; reason: 'not_here' };

export interface HeldRef {
  executionId: string;
  attempt: number;
}

export interface RenewArgs {
  runnerId: string;
  jobs: HeldRef[];
  /** Liveness of the runner (only the runner's home shard records it). */
  liveness?: { activeJobs: number; draining: boolean };
}

export interface RenewResult {
  drain: boolean;
  cancel: string[];
  stale: StaleAttemptDetails[];
}

export interface CompletionFile {
  kind: 'output' | 'log';
  path: string;
  size: number;
  sha256: string;
  contentType: string;
  encoding: 'identity' | 'gzip';
}

export interface CompleteArgs {
  executionId: string;
  attempt: number;
  outcome: 'succeeded' | 'failed';
  failureKind?: FailureKind;
  exitCode: number | null;
  message: string | null;
  /** Checked in the object store by the route before the Dispatcher sees them. */
  files: CompletionFile[];
  envHit: boolean | null;
  buildSeconds: number | null;
  durationMs: number | null;
}

export type CompleteResult = { ok: true; status: ExecutionState; duplicate: boolean } | Stale | NotHere;

/** Who owns a job the calling runner claims to hold (for routes that need the account). */
export type OwnerResult = { ok: true; accountId: string } | Stale | NotHere;

export type CancelResult = { ok: true; status: ExecutionState; pending: boolean } | { ok: false; status: ExecutionState | 'missing' };

/**
 * What D1's executions row should say at `version`: the Dispatcher's view, which the outbox
 * writes to D1 and which reads of live executions overlay.
 */
export interface ExecSnapshot {
  id: string;
  version: number;
  status: ExecutionState;
  attempt: number;
  runnerId: string | null;
  submittedAt: number | null;
  startedAt: number | null;
  finishedAt: number | null;
  failureKind: FailureKind | null;
  exitCode: number | null;
  message: string | null;
  envHit: boolean | null;
  buildSeconds: number | null;
  durationMs: number | null;
}

export interface DispatcherStats {
  ready: number;
  leased: number;
  waiters: number;
  outbox: number;
}
