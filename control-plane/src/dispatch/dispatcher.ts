/**
 * Dispatcher: one Durable Object per runner pool. It owns the pool's ready queue and leases in
 * its SQLite storage and is the only writer of the lifecycle transitions queued → running →
 * final (and back to queued on lease expiry), mirroring each into D1, the system of record.
 *
 * Why a Durable Object: claims are decided by synchronous SQL inside one single-threaded object,
 * so two runners can never be handed the same attempt, and a long-poll claim is a promise that
 * enqueue resolves — runners are woken, not polled.
 *
 * Order of writes: D1 is written before the local queue is changed wherever a D1 failure must
 * leave the job where it was (enqueue, complete); on claim the lease is taken first (so concurrent
 * claims cannot see it) and rolled back if D1 fails.
 */
import { DurableObject } from 'cloudflare:workers';
import { transition, type ExecutionState, type LifecycleEvent } from '../../../shared/lifecycle.js';
import { loadConfig, type Bindings } from '../env.js';
import type { ItemUpdate } from '../batches/types.js';
import { fleetCheckSoon } from '../fleet/check.js';
import type {
  ArtifactRow,
  CancelResult,
  ClaimArgs,
  ClaimedJob,
  CompleteArgs,
  CompleteResult,
  DispatcherStats,
  EnqueueJob,
  EnqueueResult,
  HeartbeatResult,
  Stale,
} from './types.js';

/** How many of the oldest ready jobs a claim looks at when preferring env-key affinity. */
const AFFINITY_WINDOW = 64;
/** Finished attempts are remembered this long so duplicate completions stay idempotent. */
const FINISHED_TTL_MS = 24 * 3600 * 1000;

interface JobRow extends Record<string, SqlStorageValue> {
  execution_id: string;
  account_id: string;
  batch_id: string | null;
  env_key: string;
  state: 'ready' | 'leased' | 'completing';
  attempt: number;
  max_attempts: number;
  seq: number;
  runner_id: string | null;
  lease_deadline: number | null;
  cancel_requested: number;
}

export class Dispatcher extends DurableObject<Bindings> {
  private readonly sql: SqlStorage;
  private readonly waiters = new Set<() => void>();

  constructor(ctx: DurableObjectState, env: Bindings) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`
      CREATE TABLE IF NOT EXISTS jobs (
        execution_id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL,
        batch_id TEXT,
        env_key TEXT NOT NULL,
        state TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        max_attempts INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        runner_id TEXT,
        lease_deadline INTEGER,
        cancel_requested INTEGER NOT NULL DEFAULT 0
      );
      CREATE INDEX IF NOT EXISTS jobs_ready ON jobs(state, seq);
      CREATE INDEX IF NOT EXISTS jobs_lease ON jobs(state, lease_deadline);
      CREATE TABLE IF NOT EXISTS finished (
        execution_id TEXT PRIMARY KEY,
        attempt INTEGER NOT NULL,
        status TEXT NOT NULL,
        finished_at INTEGER NOT NULL,
        runner_id TEXT
      );
      CREATE INDEX IF NOT EXISTS finished_at ON finished(finished_at);
      CREATE INDEX IF NOT EXISTS jobs_batch ON jobs(batch_id, state);
      -- Per-batch concurrency caps (--parallel): active = jobs of the batch holding a lease.
      CREATE TABLE IF NOT EXISTS batch_caps (batch_id TEXT PRIMARY KEY, parallel INTEGER NOT NULL, active INTEGER NOT NULL DEFAULT 0);
    `);
    // finished.runner_id came later: queues created before get the column.
    if (!this.sql.exec<{ name: string }>(`PRAGMA table_info(finished)`).toArray().some((c) => c.name === 'runner_id')) {
      this.sql.exec(`ALTER TABLE finished ADD COLUMN runner_id TEXT`);
    }
  }

  private get leaseMs(): number {
    return loadConfig(this.env).leaseSeconds * 1000;
  }

  // ---------------------------------------------------------------- enqueue

  async enqueue(job: EnqueueJob): Promise<EnqueueResult> {
    const queued = await this.enqueueMany(job.accountId, [job.executionId]);
    if (queued.length === 1) return { ok: true };
    const row = await this.env.DB.prepare(`SELECT status FROM executions WHERE id = ?`).bind(job.executionId).first<{ status: ExecutionState }>();
    // A repeated submit of an execution this queue already holds is not an error.
    if (row?.status === 'queued' && this.job(job.executionId)) return { ok: true };
    return { ok: false, status: row?.status ?? 'missing' };
  }

  /**
   * Queues created executions in bulk (one D1 statement per 90 ids): D1 `created → queued`
   * first, then the ready rows, then waiting claims are woken. Returns the ids it queued;
   * executions that were not `created` (already queued, canceled, …) are left as they are.
   */
  async enqueueMany(accountId: string, executionIds: string[], cap?: { batchId: string; parallel: number }): Promise<string[]> {
    if (cap) this.sql.exec(`INSERT OR REPLACE INTO batch_caps (batch_id, parallel, active) VALUES (?, ?, 0)`, cap.batchId, cap.parallel);
    const next = transition('created', { type: 'submit' });
    if (!next.ok) throw new Error(next.reason);
    const now = Date.now();
    const queued: { id: string; batch_id: string | null; env_key: string; max_attempts: number }[] = [];
    for (let i = 0; i < executionIds.length; i += 90) {
      const part = executionIds.slice(i, i + 90);
      const res = await this.env.DB.prepare(
        `UPDATE executions SET status = ?, submitted_at = ? WHERE account_id = ? AND status = 'created' AND id IN (${part.map(() => '?').join(',')})
         RETURNING id, batch_id, env_key, max_attempts`,
      )
        .bind(next.state, now, accountId, ...part)
        .all<{ id: string; batch_id: string | null; env_key: string; max_attempts: number }>();
      queued.push(...res.results);
    }
    // Keep the caller's order (sorted batch inputs run in order).
    const order = new Map(executionIds.map((id, i) => [id, i]));
    queued.sort((a, b) => order.get(a.id)! - order.get(b.id)!);
    for (const q of queued) {
      this.sql.exec(
        `INSERT OR IGNORE INTO jobs (execution_id, account_id, batch_id, env_key, state, attempt, max_attempts, seq)
         VALUES (?, ?, ?, ?, 'ready', 0, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs))`,
        q.id,
        accountId,
        q.batch_id,
        q.env_key,
        q.max_attempts,
      );
    }
    if (queued.length) this.wake();
    // Fleet: a grown queue asks the autoscaler for an early look (debounced; fleet/check.ts).
    if (queued.length) fleetCheckSoon(this.env, this.ctx, queued[0]!.id, () => this.stats());
    await this.notify(queued.map((q) => ({ batchId: q.batch_id, executionId: q.id, status: 'queued' as const, at: now })));
    return queued.map((q) => q.id);
  }

  // ---------------------------------------------------------------- claim

  async claim(args: ClaimArgs): Promise<ClaimedJob[]> {
    const deadline = Date.now() + args.waitMs;
    for (;;) {
      const claimed = this.take(args);
      if (claimed.length) {
        await this.recordClaims(claimed, args.runnerId);
        return claimed;
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) return [];
      await this.waitForWork(remaining);
    }
  }

  /**
   * Synchronous: picks and leases ready jobs. No await may separate the SELECT from the UPDATE.
   * Jobs of a batch at its --parallel cap are passed over (the cap holds across the fleet).
   */
  private take(args: ClaimArgs): ClaimedJob[] {
    const claimed: ClaimedJob[] = [];
    const leaseExpiresAt = Date.now() + this.leaseMs;
    const envKeys = JSON.stringify(args.envKeys);
    while (claimed.length < args.maxJobs) {
      const row = this.sql
        .exec<{ execution_id: string; attempt: number; batch_id: string | null }>(
          `SELECT execution_id, attempt, batch_id FROM (
             SELECT j.* FROM jobs j LEFT JOIN batch_caps c ON c.batch_id = j.batch_id
             WHERE j.state = 'ready' AND (c.batch_id IS NULL OR c.active < c.parallel)
             ORDER BY j.seq LIMIT ?)
           ORDER BY (env_key IN (SELECT value FROM json_each(?))) DESC, seq LIMIT 1`,
          AFFINITY_WINDOW,
          envKeys,
        )
        .toArray()[0];
      if (!row) break;
      const c = { executionId: row.execution_id, attempt: row.attempt + 1, leaseExpiresAt };
      this.sql.exec(
        `UPDATE jobs SET state = 'leased', attempt = ?, runner_id = ?, lease_deadline = ? WHERE execution_id = ?`,
        c.attempt,
        args.runnerId,
        c.leaseExpiresAt,
        c.executionId,
      );
      this.recount(row.batch_id);
      claimed.push(c);
    }
    if (claimed.length) void this.scheduleAlarm();
    return claimed;
  }

  /** Refreshes a batch's active-lease count after one of its jobs changed state. */
  private recount(batchId: string | null): void {
    if (!batchId) return;
    this.sql.exec(
      `UPDATE batch_caps SET active = (SELECT COUNT(*) FROM jobs WHERE batch_id = ? AND state != 'ready') WHERE batch_id = ?`,
      batchId,
      batchId,
    );
  }

  private async recordClaims(claimed: ClaimedJob[], runnerId: string): Promise<void> {
    const now = Date.now();
    try {
      await this.env.DB.batch(
        claimed.map((c) =>
          this.env.DB.prepare(
            `UPDATE executions SET status = 'running', attempt = ?, runner_id = ?, started_at = ? WHERE id = ? AND status = 'queued'`,
          ).bind(c.attempt, runnerId, now, c.executionId),
        ),
      );
    } catch (err) {
      for (const c of claimed) {
        this.sql.exec(
          `UPDATE jobs SET state = 'ready', attempt = attempt - 1, runner_id = NULL, lease_deadline = NULL WHERE execution_id = ? AND attempt = ?`,
          c.executionId,
          c.attempt,
        );
      }
      for (const c of claimed) this.recount(this.job(c.executionId)?.batch_id ?? null);
      this.wake();
      throw err;
    }
    await this.notify(claimed.map((c) => ({ batchId: this.job(c.executionId)?.batch_id ?? null, executionId: c.executionId, status: 'running' as const, at: now })));
  }

  private waitForWork(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiters.add(done);
    });
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  // ---------------------------------------------------------------- leases

  async heartbeat(executionId: string, attempt: number, runnerId: string): Promise<HeartbeatResult> {
    const job = this.job(executionId);
    if (!job || job.attempt !== attempt || job.runner_id !== runnerId || job.state === 'ready') {
      return this.stale(executionId);
    }
    const leaseExpiresAt = Date.now() + this.leaseMs;
    this.sql.exec(`UPDATE jobs SET lease_deadline = ? WHERE execution_id = ?`, leaseExpiresAt, executionId);
    return { ok: true, leaseExpiresAt, cancel: job.cancel_requested === 1 };
  }

  /** A runner gives a job back (shutdown): it is requeued at once, as if its lease had expired. */
  async release(executionId: string, attempt: number, runnerId: string): Promise<{ ok: true } | Stale> {
    const job = this.job(executionId);
    if (!job || job.attempt !== attempt || job.runner_id !== runnerId || job.state !== 'leased') return this.stale(executionId);
    await this.expire([job]);
    return { ok: true };
  }

  async complete(args: CompleteArgs): Promise<CompleteResult> {
    const finished = this.finished(args.executionId);
    // A repeated completion of the same attempt by the runner that held it is idempotent; any
    // other runner naming that attempt is stale (it never held it). NULL: nobody held it (canceled
    // while queued), or it finished before runner_id was recorded.
    if (finished && finished.attempt === args.attempt && finished.runner_id === args.runnerId) {
      return { ok: true, status: finished.status as ExecutionState, duplicate: true };
    }
    const job = this.job(args.executionId);
    if (!job || job.attempt !== args.attempt || job.runner_id !== args.runnerId || job.state === 'ready') {
      return this.stale(args.executionId);
    }
    if (job.state === 'completing') return { ok: false, reason: 'busy' };
    const event: LifecycleEvent =
      args.outcome === 'succeeded'
        ? { type: 'complete', outcome: 'succeeded' }
        : { type: 'complete', outcome: 'failed', failureKind: args.failureKind ?? 'internal' };
    const next = transition('running', event);
    if (!next.ok) throw new Error(next.reason);
    // Mark synchronously so a concurrent duplicate completion cannot record artifacts twice.
    this.sql.exec(`UPDATE jobs SET state = 'completing' WHERE execution_id = ?`, args.executionId);
    const now = Date.now();
    try {
      await this.env.DB.batch([
        this.env.DB.prepare(
          `UPDATE executions SET status = ?, failure_kind = ?, exit_code = ?, message = ?, finished_at = ?,
             env_hit = ?, build_seconds = ?, duration_ms = ?
           WHERE id = ? AND attempt = ? AND status = 'running'`,
        ).bind(
          next.state,
          next.failureKind ?? null,
          args.exitCode,
          args.message,
          now,
          args.envHit === null ? null : args.envHit ? 1 : 0,
          args.buildSeconds,
          args.durationMs,
          args.executionId,
          args.attempt,
        ),
        ...args.artifacts.map((a) => this.insertArtifact(a, now)),
      ]);
    } catch (err) {
      this.sql.exec(`UPDATE jobs SET state = 'leased' WHERE execution_id = ? AND state = 'completing'`, args.executionId);
      throw err;
    }
    this.finish(args.executionId, args.attempt, next.state, now, args.runnerId);
    await this.notify([{ batchId: job.batch_id, executionId: args.executionId, status: next.state, at: now, failureKind: next.failureKind ?? null, message: args.message, exitCode: args.exitCode }]);
    return { ok: true, status: next.state, duplicate: false };
  }

  private insertArtifact(a: ArtifactRow, now: number): D1PreparedStatement {
    return this.env.DB.prepare(
      `INSERT INTO artifacts (id, account_id, execution_id, attempt, kind, path, size, sha256, content_type, encoding, object_key, created_at, expires_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).bind(a.id, a.accountId, a.executionId, a.attempt, a.kind, a.path, a.size, a.sha256, a.contentType, a.encoding, a.objectKey, now, a.expiresAt);
  }

  // ---------------------------------------------------------------- cancel

  /** Cancels a queued or running execution. Running ones are told at their next heartbeat. */
  async cancel(executionId: string): Promise<CancelResult> {
    const job = this.job(executionId);
    if (!job) {
      const row = await this.env.DB.prepare(`SELECT status FROM executions WHERE id = ?`).bind(executionId).first<{ status: ExecutionState }>();
      return { ok: false, status: row?.status ?? 'missing' };
    }
    if (job.state === 'ready') {
      const now = Date.now();
      await this.env.DB.prepare(
        `UPDATE executions SET status = 'canceled', failure_kind = 'canceled', finished_at = ? WHERE id = ? AND status = 'queued'`,
      )
        .bind(now, executionId)
        .run();
      this.finish(executionId, job.attempt, 'canceled', now, job.runner_id);
      await this.notify([{ batchId: job.batch_id, executionId, status: 'canceled', at: now, failureKind: 'canceled', message: 'canceled' }]);
      return { ok: true, status: 'canceled', pending: false };
    }
    this.sql.exec(`UPDATE jobs SET cancel_requested = 1 WHERE execution_id = ?`, executionId);
    return { ok: true, status: 'running', pending: true };
  }

  // ---------------------------------------------------------------- expiry

  override async alarm(): Promise<void> {
    const now = Date.now();
    const expired = this.sql
      .exec<JobRow>(`SELECT * FROM jobs WHERE state = 'leased' AND lease_deadline <= ?`, now)
      .toArray();
    if (expired.length) await this.expire(expired);
    this.sql.exec(`DELETE FROM finished WHERE finished_at < ?`, now - FINISHED_TTL_MS);
    await this.scheduleAlarm();
  }

  /** Requeues expired leases (bounded attempts), or ends them as runner_lost / canceled. */
  private async expire(jobs: JobRow[]): Promise<void> {
    const now = Date.now();
    const statements: D1PreparedStatement[] = [];
    const outcomes: { job: JobRow; state: ExecutionState }[] = [];
    for (const job of jobs) {
      const next = job.cancel_requested
        ? transition('running', { type: 'cancel' })
        : transition('running', { type: 'lease_expired', attemptsLeft: job.attempt < job.max_attempts });
      if (!next.ok) throw new Error(next.reason);
      outcomes.push({ job, state: next.state });
      statements.push(
        next.state === 'queued'
          ? this.env.DB.prepare(`UPDATE executions SET status = 'queued', runner_id = NULL WHERE id = ? AND attempt = ? AND status = 'running'`).bind(job.execution_id, job.attempt)
          : this.env.DB.prepare(
              `UPDATE executions SET status = ?, failure_kind = ?, message = ?, finished_at = ? WHERE id = ? AND attempt = ? AND status = 'running'`,
            ).bind(
              next.state,
              next.failureKind ?? null,
              next.state === 'canceled' ? 'canceled while its runner was unreachable' : `runner stopped responding on all ${job.max_attempts} attempts`,
              now,
              job.execution_id,
              job.attempt,
            ),
      );
    }
    await this.env.DB.batch(statements);
    for (const { job, state } of outcomes) {
      if (state === 'queued') {
        this.sql.exec(`UPDATE jobs SET state = 'ready', runner_id = NULL, lease_deadline = NULL WHERE execution_id = ? AND attempt = ?`, job.execution_id, job.attempt);
        this.recount(job.batch_id);
      } else {
        this.finish(job.execution_id, job.attempt, state, now, job.runner_id);
      }
    }
    this.wake();
    await this.notify(
      outcomes.map(({ job, state }) => ({
        batchId: job.batch_id,
        executionId: job.execution_id,
        status: state,
        at: now,
        failureKind: state === 'failed' ? ('runner_lost' as const) : state === 'canceled' ? ('canceled' as const) : null,
        message: state === 'failed' ? `runner stopped responding on all ${job.max_attempts} attempts` : null,
      })),
    );
  }

  private async scheduleAlarm(): Promise<void> {
    const next = this.sql
      .exec<{ t: number | null }>(
        `SELECT MIN(t) AS t FROM (
           SELECT MIN(lease_deadline) AS t FROM jobs WHERE state = 'leased'
           UNION ALL SELECT MIN(finished_at) + ? FROM finished)`,
        FINISHED_TTL_MS,
      )
      .one().t;
    if (next === null) return;
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > next) await this.ctx.storage.setAlarm(next);
  }

  // ---------------------------------------------------------------- helpers

  private job(executionId: string): JobRow | undefined {
    return this.sql.exec<JobRow>(`SELECT * FROM jobs WHERE execution_id = ?`, executionId).toArray()[0];
  }

  private finished(executionId: string): { attempt: number; status: string; runner_id: string | null } | undefined {
    return this.sql.exec<{ attempt: number; status: string; runner_id: string | null }>(`SELECT attempt, status, runner_id FROM finished WHERE execution_id = ?`, executionId).toArray()[0];
  }

  private finish(executionId: string, attempt: number, status: ExecutionState, now: number, runnerId: string | null): void {
    const batchId = this.job(executionId)?.batch_id ?? null;
    this.sql.exec(`DELETE FROM jobs WHERE execution_id = ?`, executionId);
    this.recount(batchId);
    this.sql.exec(`INSERT OR REPLACE INTO finished (execution_id, attempt, status, finished_at, runner_id) VALUES (?, ?, ?, ?, ?)`, executionId, attempt, status, now, runnerId);
    void this.scheduleAlarm();
  }

  private async stale(executionId: string): Promise<Stale> {
    const row = await this.env.DB.prepare(`SELECT status, attempt FROM executions WHERE id = ?`)
      .bind(executionId)
      .first<{ status: ExecutionState; attempt: number }>();
    const job = this.job(executionId);
    return {
      ok: false,
      reason: 'stale',
      details: { executionId, currentAttempt: job?.attempt ?? row?.attempt ?? 0, status: row?.status ?? 'failed' },
    };
  }

  /**
   * Cancels every queued job of a batch and asks running ones to stop (they end canceled at
   * their next heartbeat). Executions still `created` are canceled in D1 directly.
   */
  async cancelBatch(batchId: string, accountId: string, message = 'canceled'): Promise<{ canceled: number; stopping: number }> {
    const now = Date.now();
    const ready = this.sql.exec<JobRow>(`SELECT * FROM jobs WHERE batch_id = ? AND state = 'ready'`, batchId).toArray();
    const created = await this.env.DB.prepare(
      `UPDATE executions SET status = 'canceled', failure_kind = 'canceled', message = ?, finished_at = ? WHERE batch_id = ? AND account_id = ? AND status = 'created' RETURNING id`,
    )
      .bind(message, now, batchId, accountId)
      .all<{ id: string }>();
    for (let i = 0; i < ready.length; i += 90) {
      const part = ready.slice(i, i + 90);
      await this.env.DB.prepare(
        `UPDATE executions SET status = 'canceled', failure_kind = 'canceled', message = ?, finished_at = ? WHERE status = 'queued' AND id IN (${part.map(() => '?').join(',')})`,
      )
        .bind(message, now, ...part.map((j) => j.execution_id))
        .run();
    }
    for (const j of ready) this.finish(j.execution_id, j.attempt, 'canceled', now, j.runner_id);
    const stopping = this.sql.exec(`UPDATE jobs SET cancel_requested = 1 WHERE batch_id = ? AND state != 'ready'`, batchId).rowsWritten;
    await this.notify(
      [...ready.map((j) => j.execution_id), ...created.results.map((r) => r.id)].map((executionId) => ({
        batchId,
        executionId,
        status: 'canceled' as const,
        at: now,
        failureKind: 'canceled' as const,
        message,
      })),
    );
    return { canceled: ready.length + created.results.length, stopping };
  }

  /** Tells each batch's tracker about its items' transitions. A tracker failure never undoes a transition. */
  private async notify(updates: (ItemUpdate & { batchId: string | null })[]): Promise<void> {
    const byBatch = new Map<string, ItemUpdate[]>();
    for (const { batchId, ...u } of updates) if (batchId) (byBatch.get(batchId) ?? byBatch.set(batchId, []).get(batchId)!).push(u);
    await Promise.all(
      [...byBatch].map(async ([batchId, list]) => {
        try {
          await this.env.BATCHES.get(this.env.BATCHES.idFromName(batchId)).update(list);
        } catch (err) {
          console.error(`batch ${batchId}: tracker update failed`, err);
        }
      }),
    );
  }

  async stats(): Promise<DispatcherStats> {
    const r = this.sql
      .exec<{ ready: number; leased: number }>(
        // "ready" counts only claimable jobs: those held back by a batch's --parallel cap are not
        // work a new runner could take (the autoscaler sizes the fleet from this).
        `SELECT SUM(j.state = 'ready' AND (c.batch_id IS NULL OR c.active < c.parallel)) AS ready, SUM(j.state != 'ready') AS leased
         FROM jobs j LEFT JOIN batch_caps c ON c.batch_id = j.batch_id`,
      )
      .one();
    return { ready: r.ready ?? 0, leased: r.leased ?? 0, waiters: this.waiters.size };
  }
}
