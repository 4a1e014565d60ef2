/**
 * Fleet wire contract (/admin/v1/fleet): per-pool autoscaling config, fleet status and the
 * autoscaler's recorded decisions. The Worker validates requests with these; `rgrid fleet`
 * validates the answers with them.
 */
import { z } from 'zod';
import { RUNTIMES } from '../limits.js';
import { Timestamp } from '../api/common.js';
import { FLEET_LABELS, LABEL_KEY, LABEL_VALUE } from './labels.js';

/** Runner settings the control plane writes itself; a pool's runnerEnv may not override them. */
export const MANAGED_RUNNER_ENV = [
  'RGRID_RUNNER_API_URL',
  'RGRID_RUNNER_REGISTRATION_TOKEN',
  'RGRID_RUNNER_POOL',
  'RGRID_RUNNER_SLOTS',
  'RGRID_RUNNER_LABELS',
  'RGRID_RUNNER_NAME',
] as const;

/**
 * A value that goes into /etc/rgrid-runner.env as KEY="value": systemd strips the quotes, so a
 * value may hold spaces (RGRID_RUNNER_EXTRA_INDEX_URLS) but no quotes, backslashes, `$`,
 * backticks or control characters.
 */
export const EnvValue = z
  .string()
  .max(2048)
  .regex(/^[^"'\\$`\u0000-\u001f\u007f]*$/, 'no quotes, backslashes, $, backticks or control characters');

export const RunnerEnv = z
  .record(z.string().regex(/^RGRID_RUNNER_[A-Z0-9_]+$/, 'keys are RGRID_RUNNER_* variables'), EnvValue)
  .refine((m) => !Object.keys(m).some((k) => (MANAGED_RUNNER_ENV as readonly string[]).includes(k)), {
    message: `the control plane sets ${MANAGED_RUNNER_ENV.join(', ')} itself`,
  })
  .refine((m) => Object.keys(m).length <= 50, 'at most 50 variables');

export const ServerLabels = z
  .record(z.string().regex(LABEL_KEY, 'not a valid Hetzner label key'), z.string().regex(LABEL_VALUE, 'label values are at most 63 letters, digits, - _ . and start and end alphanumeric'))
  .refine((m) => !Object.keys(m).some((k) => (Object.values(FLEET_LABELS) as string[]).includes(k)), {
    message: `${Object.values(FLEET_LABELS).join(', ')} are set by the autoscaler`,
  })
  .refine((m) => Object.keys(m).length <= 20, 'at most 20 labels');

export const SCALE_DOWN_POLICIES = ['billing-hour', 'idle'] as const;

/** One pool's autoscaling settings. Every field has a default, so `{}` is a valid config. */
export const FleetPoolConfig = z
  .strictObject({
    /** Off: the autoscaler leaves the pool's servers alone (it still lists them in status). */
    enabled: z.boolean().default(true),
    /** Never fewer servers than this (idle ones are kept), never more than max. */
    minServers: z.number().int().min(0).max(1000).default(0),
    maxServers: z.number().int().min(0).max(1000).default(5),
    /** Hetzner server type, location and image (names as in the Hetzner API). */
    serverType: z.string().min(1).max(64).default('cx22'),
    location: z.string().min(1).max(64).default('fsn1'),
    image: z.string().min(1).max(128).default('debian-12'),
    /** Hetzner SSH key names or ids, for operators' access; none means no SSH login. */
    sshKeys: z.array(z.string().min(1).max(128)).max(20).default([]),
    /** Extra labels for the servers (the rgrid-* ones are always set). */
    labels: ServerLabels.default({}),
    /** Job slots of each server's runner; also what a booting server is counted as. */
    slotsPerServer: z.number().int().min(1).max(256).default(2),
    /** A runner with no job for this long may be drained. */
    idleTimeoutSeconds: z.number().int().min(0).max(7 * 86400).default(600),
    /**
     * billing-hour: drain an idle server only in the last billingWindowMinutes of an hour it has
     * already paid for (Hetzner bills every started hour); idle: as soon as the idle timeout ends.
     */
    scaleDown: z.enum(SCALE_DOWN_POLICIES).default('billing-hour'),
    billingWindowMinutes: z.number().int().min(1).max(59).default(10),
    /** A server whose runner has not registered this long after creation is deleted. */
    bootTimeoutSeconds: z.number().int().min(1).max(86400).default(900),
    /** A runner whose last heartbeat is older than this is lost: its server is deleted. */
    silentTimeoutSeconds: z.number().int().min(1).max(86400).default(180),
    /**
     * After asking a runner to drain, wait at least this long before deleting its server even if
     * it already reports idle: long-polls opened before the drain may still hand it a job.
     */
    drainGraceSeconds: z.number().int().min(0).max(3600).default(30),
    /** Extra RGRID_RUNNER_* settings for the servers' runners (pip index, images, claim wait…). */
    runnerEnv: RunnerEnv.default({}),
    /** Base images pulled at boot, so the first jobs do not wait for them. */
    prePullImages: z.array(z.string().min(1).max(256).regex(/^[A-Za-z0-9][A-Za-z0-9._\/:@-]*$/, 'an image reference')).max(20).default([RUNTIMES['python3.11'].image]),
    /** npm install spec of the runner (default: the Worker's RUNNER_PACKAGE, e.g. rgrid@0.1.0). */
    runnerPackage: z.string().min(1).max(512).regex(/^[^\s"'\\$`]+$/, 'one npm install spec, no spaces or quotes').optional(),
  })
  .refine((c) => c.minServers <= c.maxServers, { message: 'minServers must not exceed maxServers', path: ['minServers'] });
export type FleetPoolConfig = z.output<typeof FleetPoolConfig>;
export type FleetPoolConfigInput = z.input<typeof FleetPoolConfig>;

export const PutFleetPoolResponse = z.object({ pool: z.string(), config: FleetPoolConfig });
export type PutFleetPoolResponse = z.infer<typeof PutFleetPoolResponse>;

export const DECISION_ACTIONS = ['create', 'drain', 'delete', 'forget', 'hold', 'error'] as const;
export type DecisionAction = (typeof DECISION_ACTIONS)[number];

export const FleetDecision = z.object({
  id: z.number().int(),
  pool: z.string(),
  at: Timestamp,
  action: z.enum(DECISION_ACTIONS),
  serverId: z.string().nullable(),
  providerId: z.string().nullable(),
  reason: z.string(),
  outcome: z.enum(['ok', 'failed', 'skipped']),
  error: z.string().nullable(),
});
export type FleetDecision = z.infer<typeof FleetDecision>;

export const SERVER_STATES = ['creating', 'booting', 'active', 'draining', 'deleted', 'failed'] as const;
export type ServerState = (typeof SERVER_STATES)[number];

export const FleetRunner = z.object({
  id: z.string(),
  name: z.string(),
  serverId: z.string().nullable(),
  slots: z.number().int(),
  activeJobs: z.number().int(),
  draining: z.boolean(),
  drainRequested: z.boolean(),
  lastSeenAt: Timestamp,
});
export type FleetRunner = z.infer<typeof FleetRunner>;

export const FleetServer = z.object({
  id: z.string(),
  name: z.string(),
  providerId: z.string().nullable(),
  status: z.enum(SERVER_STATES),
  createdAt: Timestamp,
  runnerId: z.string().nullable(),
  idleSince: Timestamp.nullable(),
  drainRequestedAt: Timestamp.nullable(),
});
export type FleetServer = z.infer<typeof FleetServer>;

export const FleetPoolStatus = z.object({
  pool: z.string(),
  config: FleetPoolConfig.nullable(),
  queue: z.object({ ready: z.number().int(), leased: z.number().int() }),
  slots: z.object({ total: z.number().int(), busy: z.number().int(), free: z.number().int() }),
  servers: z.array(FleetServer),
  /** Runners of the pool seen in the last hour (on fleet servers or anywhere else). */
  runners: z.array(FleetRunner),
  decisions: z.array(FleetDecision),
});
export type FleetPoolStatus = z.infer<typeof FleetPoolStatus>;

export const FleetStatusResponse = z.object({ pools: z.array(FleetPoolStatus) });
export type FleetStatusResponse = z.infer<typeof FleetStatusResponse>;

export const ReconcileRequest = z.strictObject({ pool: z.string().min(1).max(64).optional() });
export const ReconcileResult = z.object({
  pool: z.string(),
  /** Why nothing was done (disabled, another check running, fleet not configured). */
  skipped: z.string().nullable(),
  decisions: z.array(FleetDecision),
});
export const ReconcileResponse = z.object({ results: z.array(ReconcileResult) });
export type ReconcileResponse = z.infer<typeof ReconcileResponse>;
