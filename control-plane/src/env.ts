/**
 * The Worker's bindings and its one config schema (STYLE.md #7): every setting is read here,
 * coerced and defaulted, never parsed ad hoc in a handler.
 */
import { z } from 'zod';
import { DEFAULTS, LIMITS } from '../../shared/limits.js';
import type { Dispatcher } from './dispatch/dispatcher.js';
import type { BatchTracker } from './batches/tracker.js';

export interface Bindings {
  DB: D1Database;
  DISPATCHER: DurableObjectNamespace<Dispatcher>;
  BATCHES: DurableObjectNamespace<BatchTracker>;
  /** Secret: authorizes /admin/v1 (accounts, API keys, pools). */
  ADMIN_SECRET?: string;
  /** Object store (S3 API: MinIO, R2, AWS). Path-style URLs: `${S3_ENDPOINT}/${S3_BUCKET}/${key}`. */
  S3_ENDPOINT: string;
  S3_BUCKET: string;
  S3_REGION?: string;
  S3_ACCESS_KEY_ID?: string;
  S3_SECRET_ACCESS_KEY?: string;
  LEASE_SECONDS?: string;
  /** Runner heartbeat interval; by default min(10, LEASE_SECONDS / 4). */
  HEARTBEAT_SECONDS?: string;
  MAX_ATTEMPTS?: string;
  PRESIGN_SECONDS?: string;
  ARTIFACT_RETENTION_DAYS?: string;
  MAX_FILE_BYTES?: string;
  MAX_OUTPUTS_PER_EXECUTION?: string;
  /** Fleet (autoscaler): Hetzner Cloud API token (secret; read/write). Unset: the autoscaler is off. */
  HETZNER_TOKEN?: string;
  /** Fleet: Hetzner API base URL (default https://api.hetzner.cloud/v1; tests use a fake on loopback). */
  HETZNER_API_URL?: string;
  /** Fleet: this control plane's public URL, written into each server's runner config. */
  PUBLIC_URL?: string;
  /** Fleet: npm install spec of the runner servers install, pinned (default rgrid@<control plane version>). */
  RUNNER_PACKAGE?: string;
}

const ConfigSchema = z.object({
  adminSecret: z.string().min(16, 'ADMIN_SECRET must be at least 16 characters').optional(),
  s3: z.object({
    endpoint: z.string().url('S3_ENDPOINT must be a URL like https://minio.example.com'),
    bucket: z.string().min(1),
    region: z.string().min(1).default('us-east-1'),
    accessKeyId: z.string().min(1, 'S3_ACCESS_KEY_ID secret is not set'),
    secretAccessKey: z.string().min(1, 'S3_SECRET_ACCESS_KEY secret is not set'),
  }),
  /** Lease length; a runner that misses heartbeats this long loses the job to a requeue. */
  leaseSeconds: z.coerce.number().int().min(1).max(3600).default(DEFAULTS.leaseSeconds),
  /** How often runners heartbeat (renewing every lease they hold); below the lease, see leaseTiming(). */
  heartbeatSeconds: z.coerce.number().int().min(1).max(600).optional(),
  /** Attempts per execution before it fails as runner_lost. */
  maxAttempts: z.coerce.number().int().min(1).max(20).default(DEFAULTS.maxAttempts),
  /** Lifetime of presigned URLs. */
  presignSeconds: z.coerce.number().int().min(10).max(7 * 86400).default(DEFAULTS.presignSeconds),
  /** Artifacts (outputs, logs) expire this many days after they are recorded. */
  artifactRetentionDays: z.coerce.number().min(0.0001).max(3650).default(DEFAULTS.artifactRetentionDays),
  /** Largest input or output file accepted. */
  maxFileBytes: z.coerce.number().int().min(1).default(LIMITS.maxFileBytes),
  /** Most output files one execution may record. */
  maxOutputsPerExecution: z.coerce.number().int().min(1).max(LIMITS.maxOutputsPerExecution).default(LIMITS.maxOutputsPerExecution),
  /** Fleet autoscaler (control-plane/src/fleet); off while hetznerToken is unset. */
  fleet: z.object({
    hetznerToken: z.string().min(1).optional(),
    hetznerApiUrl: z.string().url('HETZNER_API_URL must be a URL like https://api.hetzner.cloud/v1').default('https://api.hetzner.cloud/v1'),
    publicUrl: z.string().url('PUBLIC_URL must be the URL runners reach this control plane at').optional(),
    runnerPackage: z.string().min(1).optional(),
  }),
});
export type Config = z.infer<typeof ConfigSchema>;

export { leaseTiming } from '../../shared/lease.js';

const parsed = new WeakMap<object, Config>();

/** Parsed once per bindings object (an isolate keeps one), not on every request. */
export function loadConfig(env: Bindings): Config {
  let config = parsed.get(env);
  if (!config) parsed.set(env, (config = parseConfig(env)));
  return config;
}

function parseConfig(env: Bindings): Config {
  return ConfigSchema.parse({
    adminSecret: env.ADMIN_SECRET || undefined,
    s3: {
      endpoint: env.S3_ENDPOINT,
      bucket: env.S3_BUCKET,
      region: env.S3_REGION || undefined,
      accessKeyId: env.S3_ACCESS_KEY_ID ?? '',
      secretAccessKey: env.S3_SECRET_ACCESS_KEY ?? '',
    },
    leaseSeconds: env.LEASE_SECONDS || undefined,
    heartbeatSeconds: env.HEARTBEAT_SECONDS || undefined,
    maxAttempts: env.MAX_ATTEMPTS || undefined,
    presignSeconds: env.PRESIGN_SECONDS || undefined,
    artifactRetentionDays: env.ARTIFACT_RETENTION_DAYS || undefined,
    maxFileBytes: env.MAX_FILE_BYTES || undefined,
    maxOutputsPerExecution: env.MAX_OUTPUTS_PER_EXECUTION || undefined,
    fleet: {
      hetznerToken: env.HETZNER_TOKEN || undefined,
      hetznerApiUrl: env.HETZNER_API_URL || undefined,
      publicUrl: env.PUBLIC_URL || undefined,
      runnerPackage: env.RUNNER_PACKAGE || undefined,
    },
  });
}
