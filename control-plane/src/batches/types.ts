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
  /**
   * Increases with every transition of this execution (the Dispatcher assigns it; 1 = queued,
   * then claims, requeues, the final state). The tracker applies an update only when it is newer
   * than what it holds, so repeats and reordered notifications are harmless.
   */
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
