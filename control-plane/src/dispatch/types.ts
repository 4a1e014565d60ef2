/** RPC shapes of the Dispatcher Durable Object. Methods return result unions instead of throwing. */
import type { ExecutionState, FailureKind } from '../../../shared/lifecycle.js';
import type { StaleAttemptDetails } from '../../../shared/api/runner.js';

export interface EnqueueJob {
  executionId: string;
  accountId: string;
  batchId: string | null;
  envKey: string;
  maxAttempts: number;
}

export type EnqueueResult = { ok: true } | { ok: false; status: ExecutionState | 'missing' };

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
}

export type Stale = { ok: false; reason: 'stale'; details: StaleAttemptDetails };

export type HeartbeatResult = { ok: true; leaseExpiresAt: number; cancel: boolean } | Stale;

export interface ArtifactRow {
  id: string;
  accountId: string;
  executionId: string;
  attempt: number;
  kind: 'input' | 'output' | 'log';
  path: string;
  size: number;
  sha256: string;
  contentType: string;
  encoding: 'identity' | 'gzip';
  objectKey: string;
  expiresAt: number;
}

export interface CompleteArgs {
  executionId: string;
  attempt: number;
  runnerId: string;
  outcome: 'succeeded' | 'failed';
  failureKind?: FailureKind;
  exitCode: number | null;
  message: string | null;
  artifacts: ArtifactRow[];
  envHit: boolean | null;
  buildSeconds: number | null;
  durationMs: number | null;
}

export type CompleteResult =
  | { ok: true; status: ExecutionState; duplicate: boolean }
  | Stale
  | { ok: false; reason: 'busy' };

export type CancelResult = { ok: true; status: ExecutionState; pending: boolean } | { ok: false; status: ExecutionState | 'missing' };

export interface DispatcherStats {
  ready: number;
  leased: number;
  waiters: number;
}
