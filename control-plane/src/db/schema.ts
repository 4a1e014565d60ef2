/**
 * D1 schema: the system of record. Times are integer milliseconds since the epoch; JSON columns
 * hold values already validated by the shared zod schemas. Every user-facing query filters by
 * account_id first, and the indexes below start with it.
 */
import { sql } from 'drizzle-orm';
import { index, integer, primaryKey, real, sqliteTable, text, uniqueIndex } from 'drizzle-orm/sqlite-core';

const now = sql`(cast(unixepoch('subsecond') * 1000 as integer))`;

export const accounts = sqliteTable('accounts', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  createdAt: integer('created_at').notNull().default(now),
});

export const apiKeys = sqliteTable(
  'api_keys',
  {
    id: text('id').primaryKey(),
    accountId: text('account_id').notNull().references(() => accounts.id),
    name: text('name').notNull(),
    /** First characters of the key, for lists; the key itself is never stored. */
    prefix: text('prefix').notNull(),
    keyHash: text('key_hash').notNull(),
    createdAt: integer('created_at').notNull().default(now),
    revokedAt: integer('revoked_at'),
    lastUsedAt: integer('last_used_at'),
  },
  (t) => [uniqueIndex('api_keys_hash').on(t.keyHash), index('api_keys_account').on(t.accountId)],
);

export const pools = sqliteTable('pools', {
  id: text('id').primaryKey(),
  name: text('name').notNull().unique(),
  /**
   * How many Dispatcher objects share this pool's queue (dispatch/shards.ts). Only ever raised:
   * executions keep the shard they were created in.
   */
  dispatchShards: integer('dispatch_shards').notNull().default(1),
  createdAt: integer('created_at').notNull().default(now),
});

export const registrationTokens = sqliteTable(
  'registration_tokens',
  {
    id: text('id').primaryKey(),
    poolId: text('pool_id').notNull().references(() => pools.id),
    tokenHash: text('token_hash').notNull(),
    maxUses: integer('max_uses'),
    uses: integer('uses').notNull().default(0),
    expiresAt: integer('expires_at'),
    revokedAt: integer('revoked_at'),
    createdAt: integer('created_at').notNull().default(now),
  },
  (t) => [uniqueIndex('registration_tokens_hash').on(t.tokenHash)],
);

export const runners = sqliteTable(
  'runners',
  {
    id: text('id').primaryKey(),
    poolId: text('pool_id').notNull().references(() => pools.id),
    name: text('name').notNull(),
    tokenHash: text('token_hash').notNull(),
    slots: integer('slots').notNull(),
    labels: text('labels', { mode: 'json' }).$type<Record<string, string>>().notNull(),
    version: text('version').notNull(),
    activeJobs: integer('active_jobs').notNull().default(0),
    draining: integer('draining', { mode: 'boolean' }).notNull().default(false),
    /** Set by an operator or the autoscaler: the runner is told to drain at its next heartbeat. */
    drainRequested: integer('drain_requested', { mode: 'boolean' }).notNull().default(false),
    serverId: text('server_id'),
    registeredAt: integer('registered_at').notNull().default(now),
    lastSeenAt: integer('last_seen_at').notNull().default(now),
  },
  (t) => [uniqueIndex('runners_token').on(t.tokenHash), index('runners_pool_seen').on(t.poolId, t.lastSeenAt)],
);

export const batches = sqliteTable(
  'batches',
  {
    id: text('id').primaryKey(),
    accountId: text('account_id').notNull().references(() => accounts.id),
    name: text('name'),
    total: integer('total').notNull().default(0),
    parallel: integer('parallel'),
    failFast: integer('fail_fast', { mode: 'boolean' }).notNull().default(false),
    metadata: text('metadata', { mode: 'json' }).$type<Record<string, string>>().notNull(),
    /** What every item shares (runtime, script, requirements, env, limits, pool), for appends. */
    template: text('template', { mode: 'json' }).$type<Record<string, unknown>>(),
    /** Set when every item was created and the batch was submitted. */
    submittedAt: integer('submitted_at'),
    canceledAt: integer('canceled_at'),
    finishedAt: integer('finished_at'),
    /** Webhook that started the batch, and where its summary is POSTed when it finishes. */
    webhookId: text('webhook_id'),
    callbackUrl: text('callback_url'),
    createdAt: integer('created_at').notNull().default(now),
  },
  (t) => [index('batches_account_created').on(t.accountId, t.createdAt)],
);

export const executions = sqliteTable(
  'executions',
  {
    id: text('id').primaryKey(),
    accountId: text('account_id').notNull().references(() => accounts.id),
    batchId: text('batch_id'),
    pool: text('pool').notNull(),
    status: text('status', { enum: ['created', 'queued', 'running', 'succeeded', 'failed', 'canceled'] }).notNull(),
    failureKind: text('failure_kind'),
    exitCode: integer('exit_code'),
    message: text('message'),
    attempt: integer('attempt').notNull().default(0),
    /**
     * The Dispatcher's transition counter for this execution. D1 follows the Dispatcher through an
     * outbox; every write is guarded by `version < new version`, so a repeated or late flush never
     * moves the row backwards. 0 while created.
     */
    version: integer('version').notNull().default(0),
    /** The Dispatcher shard of the pool that holds this execution while it is live. */
    shard: integer('shard').notNull().default(0),
    maxAttempts: integer('max_attempts').notNull(),
    runtime: text('runtime').notNull(),
    scriptName: text('script_name').notNull(),
    scriptSha256: text('script_sha256').notNull(),
    scriptSize: integer('script_size').notNull(),
    scriptKey: text('script_key').notNull(),
    envKey: text('env_key').notNull(),
    requirements: text('requirements'),
    inputs: text('inputs', { mode: 'json' }).notNull(),
    /** Inputs the runner fetches from an https URL before the job (webhook deliveries only). */
    remoteInputs: text('remote_inputs', { mode: 'json' }).$type<{ path: string; url: string; arg?: number }[]>().notNull().default([]),
    args: text('args', { mode: 'json' }).$type<string[]>().notNull(),
    env: text('env', { mode: 'json' }).$type<Record<string, string>>().notNull(),
    limits: text('limits', { mode: 'json' }).notNull(),
    metadata: text('metadata', { mode: 'json' }).$type<Record<string, string>>().notNull(),
    runnerId: text('runner_id'),
    /** The execution this one retries (history is kept; a retry is a new execution). */
    retryOf: text('retry_of'),
    /** Name of the batch input this item processes (for per-input output folders). */
    inputName: text('input_name'),
    /** Result reuse: the earlier succeeded execution whose outputs this one reused. */
    reusedFrom: text('reused_from'),
    /** `--no-cache`: rebuild the environment even when its image exists. */
    noCache: integer('no_cache', { mode: 'boolean' }).notNull().default(false),
    envHit: integer('env_hit', { mode: 'boolean' }),
    buildSeconds: real('build_seconds'),
    durationMs: integer('duration_ms'),
    createdAt: integer('created_at').notNull(),
    submittedAt: integer('submitted_at'),
    startedAt: integer('started_at'),
    finishedAt: integer('finished_at'),
  },
  (t) => [
    index('executions_account_created').on(t.accountId, t.createdAt, t.id),
    index('executions_account_status').on(t.accountId, t.status, t.createdAt),
    index('executions_account_batch').on(t.accountId, t.batchId, t.createdAt),
  ],
);

/** One row per metadata pair, so that `list --metadata k=v` is an indexed lookup. */
export const executionMetadata = sqliteTable(
  'execution_metadata',
  {
    executionId: text('execution_id').notNull().references(() => executions.id),
    accountId: text('account_id').notNull(),
    key: text('key').notNull(),
    value: text('value').notNull(),
  },
  (t) => [primaryKey({ columns: [t.executionId, t.key] }), index('execution_metadata_lookup').on(t.accountId, t.key, t.value)],
);

/** Content-addressed blobs an account has stored (verified present in the object store). */
export const blobs = sqliteTable(
  'blobs',
  {
    accountId: text('account_id').notNull().references(() => accounts.id),
    sha256: text('sha256').notNull(),
    size: integer('size').notNull(),
    encoding: text('encoding', { enum: ['identity', 'gzip'] }).notNull().default('identity'),
    objectKey: text('object_key').notNull(),
    createdAt: integer('created_at').notNull().default(now),
    lastUsedAt: integer('last_used_at').notNull().default(now),
    deletedAt: integer('deleted_at'),
  },
  (t) => [primaryKey({ columns: [t.accountId, t.sha256] })],
);

export const artifacts = sqliteTable(
  'artifacts',
  {
    id: text('id').primaryKey(),
    accountId: text('account_id').notNull(),
    executionId: text('execution_id').notNull().references(() => executions.id),
    attempt: integer('attempt').notNull(),
    kind: text('kind', { enum: ['input', 'output', 'log'] }).notNull(),
    path: text('path').notNull(),
    size: integer('size').notNull(),
    sha256: text('sha256').notNull(),
    contentType: text('content_type').notNull(),
    encoding: text('encoding', { enum: ['identity', 'gzip'] }).notNull(),
    objectKey: text('object_key').notNull(),
    createdAt: integer('created_at').notNull().default(now),
    expiresAt: integer('expires_at').notNull(),
    deletedAt: integer('deleted_at'),
  },
  (t) => [
    index('artifacts_execution').on(t.executionId, t.kind, t.path),
    index('artifacts_expiry').on(t.expiresAt),
    index('artifacts_blob').on(t.accountId, t.sha256),
  ],
);

export const logChunks = sqliteTable(
  'log_chunks',
  {
    executionId: text('execution_id').notNull(),
    attempt: integer('attempt').notNull(),
    seq: integer('seq').notNull(),
    stream: text('stream', { enum: ['stdout', 'stderr', 'system'] }).notNull(),
    data: text('data').notNull(),
    createdAt: integer('created_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.executionId, t.attempt, t.seq] })],
);

/** Cache bookkeeping per account: script, environment and input keys, with hit counts. */
export const cacheRecords = sqliteTable(
  'cache_records',
  {
    accountId: text('account_id').notNull(),
    kind: text('kind', { enum: ['script', 'env', 'input', 'result'] }).notNull(),
    key: text('key').notNull(),
    detail: text('detail', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
    hits: integer('hits').notNull().default(0),
    misses: integer('misses').notNull().default(0),
    createdAt: integer('created_at').notNull().default(now),
    lastUsedAt: integer('last_used_at').notNull().default(now),
  },
  (t) => [primaryKey({ columns: [t.accountId, t.kind, t.key] })],
);

/** Which runner holds which environment image (dispatcher affinity). */
export const runnerImages = sqliteTable(
  'runner_images',
  {
    runnerId: text('runner_id').notNull(),
    envKey: text('env_key').notNull(),
    builtAt: integer('built_at').notNull().default(now),
  },
  (t) => [primaryKey({ columns: [t.envKey, t.runnerId] })],
);

export const webhooks = sqliteTable(
  'webhooks',
  {
    id: text('id').primaryKey(),
    accountId: text('account_id').notNull().references(() => accounts.id),
    name: text('name').notNull(),
    secret: text('secret').notNull(),
    template: text('template', { mode: 'json' }).notNull(),
    allowedHosts: text('allowed_hosts', { mode: 'json' }).$type<string[]>().notNull(),
    createdAt: integer('created_at').notNull().default(now),
    deletedAt: integer('deleted_at'),
  },
  (t) => [index('webhooks_account').on(t.accountId)],
);

/** Delivery ids seen per webhook, for replay protection (kept past the 5-minute window). */
export const webhookDeliveries = sqliteTable(
  'webhook_deliveries',
  {
    webhookId: text('webhook_id').notNull(),
    deliveryId: text('delivery_id').notNull(),
    receivedAt: integer('received_at').notNull(),
    batchId: text('batch_id'),
  },
  (t) => [primaryKey({ columns: [t.webhookId, t.deliveryId] })],
);

export const servers = sqliteTable(
  'servers',
  {
    id: text('id').primaryKey(),
    poolId: text('pool_id').notNull().references(() => pools.id),
    providerId: text('provider_id'),
    name: text('name').notNull(),
    status: text('status').notNull(),
    runnerId: text('runner_id'),
    registrationTokenId: text('registration_token_id'),
    createdAt: integer('created_at').notNull().default(now),
    deletedAt: integer('deleted_at'),
    // fleet: when the autoscaler asked the server's runner to drain; since when that runner has
    // had no job (idle timeout); why the server was deleted.
    drainRequestedAt: integer('drain_requested_at'),
    idleSince: integer('idle_since'),
    deletedReason: text('deleted_reason'),
  },
  (t) => [index('servers_pool').on(t.poolId, t.status)],
);

// ---- fleet ----
// The autoscaler (control-plane/src/fleet): per-pool scaling config, every decision it made with
// its reason, and a short lock so the cron and the immediate check never scale a pool twice at once.

/** Autoscaling settings of a pool: a FleetPoolConfig (shared/fleet/api.ts), validated on write. */
export const fleetPools = sqliteTable('fleet_pools', {
  poolId: text('pool_id').primaryKey().references(() => pools.id),
  config: text('config', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
  updatedAt: integer('updated_at').notNull().default(now),
});

export const fleetDecisions = sqliteTable(
  'fleet_decisions',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    poolId: text('pool_id').notNull(),
    at: integer('at').notNull(),
    action: text('action', { enum: ['create', 'drain', 'delete', 'forget', 'hold', 'error'] }).notNull(),
    serverId: text('server_id'),
    providerId: text('provider_id'),
    reason: text('reason').notNull(),
    outcome: text('outcome', { enum: ['ok', 'failed', 'skipped'] }).notNull(),
    error: text('error'),
    /** What the autoscaler saw: queue depth, server and slot counts. */
    details: text('details', { mode: 'json' }).$type<Record<string, unknown>>(),
  },
  (t) => [index('fleet_decisions_pool_at').on(t.poolId, t.at)],
);

export const fleetLocks = sqliteTable('fleet_locks', {
  poolId: text('pool_id').primaryKey(),
  holder: text('holder').notNull(),
  expiresAt: integer('expires_at').notNull(),
});
