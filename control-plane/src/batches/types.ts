/** RPC shapes of the BatchTracker Durable Object. */
import type { ExecutionState, FailureKind } from '../../../shared/lifecycle.js';

export interface BatchMeta {
  batchId: string;
  accountId: string;
  pool: string;
  name: string | null;
  parallel: number | null;
  failFast: boolean;
  metadata: Record<string, string>;
  createdAt: number;
  callbackUrl: string | null;
  /** HMAC key for the completion callback (the webhook's secret). */
  callbackSecret: string | null;
}

export interface ItemUpdate {
  executionId: string;
  /** The Dispatcher's transition counter: an update applies only over an older version. */
  version: number;
  status: ExecutionState;
  at: number;
  failureKind?: FailureKind | null;
  message?: string | null;
  exitCode?: number | null;
  reused?: boolean;
}

export interface NewItem {
  executionId: string;
  inputName: string;
}
