/**
 * The lease, the heartbeat interval and the rule between them, in one place. The control plane
 * sends the result with every claim and heartbeat answer; runners store none of it. A runner
 * heartbeats at least four times per lease unless HEARTBEAT_SECONDS says otherwise, and never less
 * often than every 10 s, so a lease survives a lost heartbeat or two. An answer that reaches no
 * runner is noticed after `offerSeconds` (no heartbeat acknowledged it) and goes back to the queue
 * without costing an attempt.
 */
import { DEFAULTS } from './limits.js';
import type { LeaseTiming } from './api/runner.js';

export function leaseTiming(config: { leaseSeconds: number; heartbeatSeconds?: number | undefined }): LeaseTiming {
  const leaseSeconds = config.leaseSeconds;
  const heartbeatSeconds = Math.min(config.heartbeatSeconds ?? Math.max(1, Math.min(DEFAULTS.heartbeatSeconds, Math.floor(leaseSeconds / 4))), Math.max(1, leaseSeconds - 1));
  return { leaseSeconds, heartbeatSeconds, offerSeconds: Math.max(heartbeatSeconds * 2, Math.min(leaseSeconds, 10)) };
}
