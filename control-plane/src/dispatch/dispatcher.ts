/**
 * Dispatcher: one Durable Object per runner pool shard. It is the authority for every live
 * execution (queued, leased): the ready queue, leases, long-poll waiters, ownership checks and
 * cancels. D1 follows.
 *
 * Every transition is decided and persisted in the object's own SQLite in one synchronous block
 * (no await between reading a job and changing it), together with an outbox entry that says what
 * D1 and the batch tracker should learn. An alarm-driven flusher sends the outbox to D1 in one
 * batch every FLUSH_MS (outbox.ts: idempotent, version-guarded statements), then to the batch
 * trackers. So no interleaving of calls can leave D1 and the Dispatcher disagreeing for longer
 * than a flush, and a restart at any point loses nothing: the outbox is persisted with the
 * transition, and the alarm that drains it is re-armed when the object starts.
 *
 * Leases: a claim hands a job out as an *offer* (deadline offerSeconds); the runner's next
 * heartbeat lists it, which acknowledges it and starts the lease proper (an attempt is counted
 * only then). An offer nobody acknowledged (the claim answer never arrived) and a job a runner
 * gives back cost no attempt. Every lease carries a new attempt number (fencing): calls naming
 * an older one are stale.
 *
 * A batch with a --parallel cap keeps at most `parallel - active` of its jobs `ready`; the rest
 * wait as `held` and are promoted one by one as leases end, so a claim never scans past work it
 * may not take.
 */
import { DurableObject } from 'cloudflare:workers';
import { transition, type ExecutionState, type FailureKind, type LifecycleEvent } from '../../../shared/lifecycle.js';
import { normalizeRequirements } from '../../../shared/requirements.js';
import { leaseTiming, loadConfig, type Bindings } from '../env.js';
import { fleetCheckSoon } from '../fleet/check.js';
import { blobKey } from '../storage/s3.js';
import { countingD1, d1Counter } from '../db/counting.js';
import { flushStatements, itemUpdate, type ArtifactRow, type OutboxEntry, type RunnerLiveness } from './outbox.js';
import type {
  CancelResult,
  ClaimArgs,
  ClaimResult,
  ClaimedJob,
  CompleteArgs,
  CompleteResult,
  DispatcherStats,
  EnqueueJob,
  EnqueueOptions,
  EnqueueResult,
  ExecSnapshot,
  HeldRef,
  JobPayload,
  OwnerResult,
  RenewArgs,
  RenewResult,
  NotHere,
  Stale,
} from './types.js';

/** How many of the oldest ready jobs a claim looks at when preferring env-key affinity. */
const AFFINITY_WINDOW = 64;
/** Finished attempts are remembered this long so duplicate completions stay idempotent. */
export const FINISHED_TTL_MS = 24 * 3600 * 1000;
/** The outbox is sent to D1 at most this long after a transition. */
export const FLUSH_MS = 250;
/** Outbox entries per flush (one D1 batch); more wait for the next flush, which follows at once. */
const FLUSH_ROWS = 2000;
/** Entries D1 may fall behind by before claims are refused with 503 (backpressure). */
export const OUTBOX_LIMIT = 20_000;
/** A runner's liveness is written to D1 when it changed or this long after the last write. */
const LIVENESS_FLUSH_MS = 10_000;
/** Offers lost this many times (claim answers that never arrived) count as an attempt after all. */
const LOST_OFFERS_PER_ATTEMPT = 5;

type JobState = 'ready' | 'held' | 'leased';

interface JobRow extends Record<string, SqlStorageValue> {
  execution_id: string;
  account_id: string;
  batch_id: string | null;
  env_key: string;
  state: JobState;
  attempt: number;
  tries: number;
  lost_offers: number;
  max_attempts: number;
  version: number;
  seq: number;
  runner_id: string | null;
  acked: number;
  lease_deadline: number | null;
  cancel_requested: number;
  submitted_at: number;
  started_at: number | null;
  payload: string;
}

type LeaseRow = Pick<JobRow, 'state' | 'attempt' | 'runner_id' | 'cancel_requested'>;

interface FinishedRow extends Record<string, SqlStorageValue> {
  execution_id: string;
  account_id: string;
  attempt: number;
  runner_id: string | null;
  status: string;
  version: number;
  finished_at: number;
  snapshot: string;
}

interface Waiter {
  want: number;
  wake: () => void;
}

/**
 * Test hooks: a test sets them through runInDurableObject to pause the object between two steps
 * (forcing an interleaving) or to make D1 fail. Nothing in production sets them.
 */
export interface DispatcherHooks {
  /** Awaited at the start of a flush, before the outbox is read. */
  beforeFlush?: () => Promise<void>;
  /** Awaited after D1 committed a flush and before its entries are marked sent (a restart here repeats the flush). */
  afterD1Commit?: () => Promise<void>;
  /** Awaited before the batch trackers are told. */
  beforeTrackers?: () => Promise<void>;
  /** Replaces the D1 batch call (e.g. to fail it). */
  d1Batch?: (statements: D1PreparedStatement[]) => Promise<D1Result[]>;
}

export class Dispatcher extends DurableObject<Bindings> {
  private readonly sql: SqlStorage;
  private readonly waiters: Waiter[] = [];
  private nextSeq: number;
  /** Outbox entries not yet in D1. */
  private pendingD1: number;
  /** The alarm time this object set last (null: none pending). */
  private alarmAt: number | null = null;
  private flushing: Promise<void> | null = null;
  private flushFailures = 0;
  /** D1, with its round trips counted (db/counting.ts). */
  private readonly db: D1Database;
  hooks: DispatcherHooks = {};
  /** The clock (tests move it to pin lease deadlines exactly). */
  now: () => number = Date.now;

  constructor(ctx: DurableObjectState, env: Bindings) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.db = countingD1(env.DB);
    this.migrate();
    this.nextSeq = (this.sql.exec<{ s: number | null }>(`SELECT MAX(seq) AS s FROM jobs`).one().s ?? 0) + 1;
    this.pendingD1 = this.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM outbox WHERE d1_done = 0`).one().n;
    // After a restart: whatever the alarm was, make sure one is set while there is work for it.
    void ctx.blockConcurrencyWhile(async () => {
      this.alarmAt = await ctx.storage.getAlarm();
      await this.rearm();
    });
  }

  private migrate(): void {
    const cols = this.sql.exec<{ name: string }>(`PRAGMA table_info(jobs)`).toArray();
    if (cols.length && !cols.some((c) => c.name === 'payload')) {
      // A queue from before the Dispatcher held job payloads: its rows cannot be claimed. Local
      // development state only (no deployment ran the old layout with live work); start over.
      console.error('dispatcher: dropping a queue in the old layout (executions in it stay queued in D1; submit them again)');
      this.sql.exec(`DROP TABLE jobs; DROP TABLE IF EXISTS finished; DROP TABLE IF EXISTS batch_caps;`);
    }
    this.sql.exec(`
      CREATE TABLE IF NOT EXISTS jobs (
        execution_id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL,
        batch_id TEXT,
        env_key TEXT NOT NULL,
        state TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        tries INTEGER NOT NULL DEFAULT 0,
        lost_offers INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL,
        version INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        runner_id TEXT,
        acked INTEGER NOT NULL DEFAULT 0,
        lease_deadline INTEGER,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        submitted_at INTEGER NOT NULL,
        started_at INTEGER,
        payload TEXT NOT NULL
      );
      CREATE INDEX IF NOT EXISTS jobs_ready ON jobs(state, seq);
      CREATE INDEX IF NOT EXISTS jobs_deadline ON jobs(state, lease_deadline);
      CREATE INDEX IF NOT EXISTS jobs_batch ON jobs(batch_id, state, seq);
      CREATE TABLE IF NOT EXISTS finished (
        execution_id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        runner_id TEXT,
        status TEXT NOT NULL,
        version INTEGER NOT NULL,
        finished_at INTEGER NOT NULL,
        snapshot TEXT NOT NULL
      );
      CREATE INDEX IF NOT EXISTS finished_at ON finished(finished_at);
      CREATE TABLE IF NOT EXISTS batch_caps (batch_id TEXT PRIMARY KEY, parallel INTEGER NOT NULL, active INTEGER NOT NULL DEFAULT 0);
      CREATE TABLE IF NOT EXISTS canceled_batches (batch_id TEXT PRIMARY KEY, message TEXT NOT NULL, at INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        execution_id TEXT NOT NULL,
        batch_id TEXT,
        final INTEGER NOT NULL,
        body TEXT NOT NULL,
        d1_done INTEGER NOT NULL DEFAULT 0
      );
      CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(d1_done, seq);
      CREATE INDEX IF NOT EXISTS outbox_execution ON outbox(execution_id);
      CREATE TABLE IF NOT EXISTS runners (
        runner_id TEXT PRIMARY KEY,
        last_seen INTEGER NOT NULL,
        active_jobs INTEGER NOT NULL DEFAULT 0,
        draining INTEGER NOT NULL DEFAULT 0,
        drain_requested INTEGER NOT NULL DEFAULT 0,
        flushed_at INTEGER NOT NULL DEFAULT 0,
        dirty INTEGER NOT NULL DEFAULT 1
      );
    `);
  }

  private get timing() {
    return leaseTiming(loadConfig(this.env));
  }

  // ---------------------------------------------------------------- enqueue

  /**
   * Queues executions with their payloads (a repeated submit of one already here is harmless).
   * Executions already final here, or of a canceled batch, are refused; the latter end canceled.
   */
  async enqueue(jobs: EnqueueJob[], opts: EnqueueOptions = {}): Promise<EnqueueResult> {
    const now = this.now();
    const queued: string[] = [];
    const refused: EnqueueResult['refused'] = [];
    let added = 0;
    const capped = new Set<string>();
    this.ctx.storage.transactionSync(() => {
      if (opts.cap) {
        this.sql.exec(
          `INSERT INTO batch_caps (batch_id, parallel, active) VALUES (?, ?, 0) ON CONFLICT (batch_id) DO UPDATE SET parallel = excluded.parallel`,
          opts.cap.batchId,
          opts.cap.parallel,
        );
      }
      for (const j of jobs) {
        if (this.job(j.executionId)) {
          queued.push(j.executionId);
          continue;
        }
        const fin = this.finishedRow(j.executionId);
        if (fin) {
          refused.push({ executionId: j.executionId, status: fin.status as ExecutionState });
          continue;
        }
        const canceled = j.batchId ? this.sql.exec<{ message: string }>(`SELECT message FROM canceled_batches WHERE batch_id = ?`, j.batchId).toArray()[0] : undefined;
        if (canceled) {
          this.tombstone(j.executionId, j.accountId, j.batchId, canceled.message, now);
          refused.push({ executionId: j.executionId, status: 'canceled' });
          continue;
        }
        const isCapped = j.batchId !== null && this.cap(j.batchId) !== undefined;
        this.sql.exec(
          `INSERT INTO jobs (execution_id, account_id, batch_id, env_key, state, attempt, max_attempts, version, seq, submitted_at, payload)
           VALUES (?, ?, ?, ?, ?, 0, ?, 1, ?, ?, ?)`,
          j.executionId,
          j.accountId,
          j.batchId,
          j.payload.envKey,
          isCapped ? 'held' : 'ready',
          j.maxAttempts,
          this.nextSeq++,
          now,
          JSON.stringify(j.payload),
        );
        if (isCapped) capped.add(j.batchId!);
        this.emit({ exec: this.snapshotOf(this.job(j.executionId)!), batchId: j.batchId, at: now });
        queued.push(j.executionId);
        added++;
      }
      for (const b of capped) this.fillCap(b);
    });
    if (added) {
      this.wake(added);
      fleetCheckSoon(this.env, this.ctx, queued[0]!, () => this.stats());
    }
    // Submitting is not on the hot path: D1 shows the executions queued when the submit answers.
    await this.flush();
    return { queued, refused };
  }

  // ---------------------------------------------------------------- claim

  async claim(args: ClaimArgs): Promise<ClaimResult> {
    if (this.touchRunner(args.runnerId)) return { ok: false, reason: 'draining' };
    if (this.pendingD1 >= OUTBOX_LIMIT) return { ok: false, reason: 'backpressure', retryAfterMs: 1000 };
    const deadline = this.now() + args.waitMs;
    for (;;) {
      const jobs = this.take(args);
      if (jobs.length) return { ok: true, jobs };
      const remaining = deadline - this.now();
      if (remaining <= 0) return { ok: true, jobs: [] };
      await this.waitForWork(remaining, args.maxJobs);
    }
  }

  /** Synchronous: picks and offers ready jobs. No await may separate the SELECT from the UPDATE. */
  private take(args: ClaimArgs): ClaimedJob[] {
    // The window: only what the choice needs (no payloads); the picked rows come back from the UPDATE.
    const rows = this.sql
      .exec<{ execution_id: string; env_key: string; seq: number }>(`SELECT execution_id, env_key, seq FROM jobs WHERE state = 'ready' ORDER BY seq LIMIT ?`, args.envKeys.length ? AFFINITY_WINDOW : args.maxJobs)
      .toArray();
    if (!rows.length) return [];
    const held = new Set(args.envKeys);
    const picked = held.size
      ? rows
          .map((r) => ({ r, affine: held.has(r.env_key) ? 0 : 1 }))
          .sort((a, b) => a.affine - b.affine || a.r.seq - b.r.seq)
          .slice(0, args.maxJobs)
          .map((x) => x.r)
      : rows;
    const now = this.now();
    const offerUntil = now + this.timing.offerSeconds * 1000;
    const leaseExpiresAt = now + this.timing.leaseSeconds * 1000;
    const out: ClaimedJob[] = [];
    this.ctx.storage.transactionSync(() => {
      for (const r of picked) {
        const row = this.sql
          .exec<JobRow>(
            `UPDATE jobs SET state = 'leased', attempt = attempt + 1, runner_id = ?, acked = 0, lease_deadline = ?, version = version + 1, started_at = COALESCE(started_at, ?)
             WHERE execution_id = ? RETURNING *`,
            args.runnerId,
            offerUntil,
            now,
            r.execution_id,
          )
          .one();
        if (row.batch_id) this.sql.exec(`UPDATE batch_caps SET active = active + 1 WHERE batch_id = ?`, row.batch_id);
        this.emit({ exec: this.snapshotOf(row), batchId: row.batch_id, at: now });
        out.push({ executionId: row.execution_id, attempt: row.attempt, leaseExpiresAt, accountId: row.account_id, payload: row.payload });
      }
    });
    this.armAt(offerUntil);
    return out;
  }

  private waitForWork(ms: number, want: number): Promise<void> {
    return new Promise((resolve) => {
      const waiter: Waiter = {
        want,
        wake: () => {
          clearTimeout(timer);
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) this.waiters.splice(i, 1);
          resolve();
        },
      };
      const timer = setTimeout(waiter.wake, ms);
      this.waiters.push(waiter);
    });
  }

  /** Wakes the oldest waiting claims, as many as `jobs` new jobs can serve (not every waiter). */
  private wake(jobs: number): void {
    while (jobs > 0 && this.waiters.length) {
      const w = this.waiters[0]!;
      jobs -= w.want;
      w.wake();
    }
  }

  // ---------------------------------------------------------------- leases

  /**
   * A runner's heartbeat: acknowledges offers, renews every lease it names, and answers which of
   * them to cancel and which are no longer its own.
   */
  async heartbeat(args: RenewArgs): Promise<RenewResult> {
    const now = this.now();
    const until = now + this.timing.leaseSeconds * 1000;
    const cancel: string[] = [];
    const stale: RenewResult['stale'] = [];
    const unknown: string[] = [];
    this.ctx.storage.transactionSync(() => {
      for (const ref of args.jobs) {
        const row = this.leaseOf(ref.executionId);
        if (!this.holds(row, ref, args.runnerId)) {
          const d = this.staleDetails(ref.executionId, row);
          if (d) stale.push(d);
          else unknown.push(ref.executionId);
          continue;
        }
        this.sql.exec(
          `UPDATE jobs SET lease_deadline = ?, tries = tries + (1 - acked), acked = 1 WHERE execution_id = ?`,
          until,
          ref.executionId,
        );
        if (row!.cancel_requested) cancel.push(ref.executionId);
      }
    });
    // Not known here (another pool or shard, or finished long ago): stop it, and say nothing more.
    for (const id of unknown) stale.push({ executionId: id, currentAttempt: 0, status: 'failed' });
    const drain = args.liveness ? this.recordLiveness(args.runnerId, args.liveness, now) : false;
    return { drain, cancel, stale };
  }

  /** A runner gives a job back (shutdown): requeued at once, and the attempt is not counted. */
  async release(runnerId: string, ref: HeldRef): Promise<{ ok: true } | Stale | NotHere> {
    const row = this.job(ref.executionId);
    if (!this.holds(row, ref, runnerId)) return this.stale(ref.executionId, row);
    this.ctx.storage.transactionSync(() => this.requeue(row!, { countAttempt: false }));
    this.wake(1);
    return { ok: true };
  }

  /**
   * Which account a job the runner holds belongs to (routes that store files for it need it).
   * `earlier`: also for an earlier attempt of a job this runner holds or finished last (aborting
   * the multipart uploads of an attempt it lost and then got back).
   */
  async owners(runnerId: string, refs: HeldRef[], opts: { earlier?: boolean } = {}): Promise<OwnerResult[]> {
    return refs.map((ref) => {
      const row = this.job(ref.executionId);
      if (this.holds(row, ref, runnerId)) return { ok: true, accountId: row!.account_id };
      if (opts.earlier && row && row.runner_id === runnerId && ref.attempt <= row.attempt) return { ok: true, accountId: row.account_id };
      if (opts.earlier && !row) {
        const fin = this.finishedRow(ref.executionId);
        if (fin && fin.runner_id === runnerId && ref.attempt <= fin.attempt) return { ok: true, accountId: fin.account_id };
      }
      return this.stale(ref.executionId, row);
    });
  }

  /** The lease columns of a job (a renewal needs no payload). */
  private leaseOf(executionId: string): LeaseRow | undefined {
    return this.sql.exec<LeaseRow>(`SELECT state, attempt, runner_id, cancel_requested FROM jobs WHERE execution_id = ?`, executionId).toArray()[0];
  }

  private holds(row: LeaseRow | undefined, ref: HeldRef, runnerId: string): boolean {
    return !!row && row.state === 'leased' && row.attempt === ref.attempt && row.runner_id === runnerId;
  }

  // ---------------------------------------------------------------- completion

  /**
   * Completes attempts, each on its own: a repeated completion of the same attempt by the runner
   * that held it answers `duplicate`; any other is stale. Artifacts and cache bookkeeping go to D1
   * with the final state, in the same flush.
   */
  async complete(runnerId: string, items: (CompleteArgs & { artifactIds: string[] })[], expiresAt: number): Promise<CompleteResult[]> {
    const now = this.now();
    const results: CompleteResult[] = [];
    this.ctx.storage.transactionSync(() => {
      for (const it of items) {
        const fin = this.finishedRow(it.executionId);
        if (fin && fin.attempt === it.attempt && fin.runner_id === runnerId) {
          results.push({ ok: true, status: fin.status as ExecutionState, duplicate: true });
          continue;
        }
        const row = this.job(it.executionId);
        if (!this.holds(row, it, runnerId)) {
          results.push(this.stale(it.executionId, row));
          continue;
        }
        const event: LifecycleEvent =
          it.outcome === 'succeeded' ? { type: 'complete', outcome: 'succeeded' } : { type: 'complete', outcome: 'failed', failureKind: it.failureKind ?? 'internal' };
        const next = transition('running', event);
        if (!next.ok) throw new Error(next.reason);
        const payload = JSON.parse(row!.payload) as JobPayload;
        const artifacts: ArtifactRow[] = it.files.map((f, i) => ({
          id: it.artifactIds[i]!,
          accountId: row!.account_id,
          executionId: it.executionId,
          attempt: it.attempt,
          kind: f.kind,
          path: f.path,
          size: f.size,
          sha256: f.sha256,
          contentType: f.contentType,
          encoding: f.encoding,
          objectKey: blobKey(row!.account_id, f.sha256),
          createdAt: now,
          expiresAt,
        }));
        this.finalize(row!, next.state, next.failureKind ?? null, now, {
          completedBy: runnerId,
          exitCode: it.exitCode,
          message: it.message,
          envHit: it.envHit,
          buildSeconds: it.buildSeconds,
          durationMs: it.durationMs,
          artifacts,
          cache: {
            accountId: row!.account_id,
            runnerId,
            envKey: payload.envKey,
            envHit: it.envHit,
            runtime: payload.runtime,
            requirements: normalizeRequirements(payload.requirements ?? ''),
            resultKey: next.state === 'succeeded' ? payload.resultKey : null,
          },
        });
        results.push({ ok: true, status: next.state, duplicate: false });
      }
    });
    return results;
  }

  // ---------------------------------------------------------------- cancel

  /**
   * Cancels one execution. Queued: canceled at once. Leased: the runner is told at its next
   * heartbeat. Not here yet (still `created`, given as `created`): canceled here, so a submit that
   * races the cancel finds it final and is refused.
   */
  async cancel(executionId: string, created?: { accountId: string; batchId: string | null }): Promise<CancelResult> {
    const now = this.now();
    const row = this.job(executionId);
    if (row) {
      if (row.state !== 'leased') {
        this.ctx.storage.transactionSync(() => this.finalize(row, 'canceled', 'canceled', now, { message: 'canceled' }));
        await this.flush();
        return { ok: true, status: 'canceled', pending: false };
      }
      this.sql.exec(`UPDATE jobs SET cancel_requested = 1 WHERE execution_id = ?`, executionId);
      return { ok: true, status: 'running', pending: true };
    }
    const fin = this.finishedRow(executionId);
    if (fin) return { ok: false, status: fin.status as ExecutionState };
    if (!created) return { ok: false, status: 'missing' };
    this.ctx.storage.transactionSync(() => this.tombstone(executionId, created.accountId, created.batchId, 'canceled', now));
    await this.flush();
    return { ok: true, status: 'canceled', pending: false };
  }

  /**
   * Cancels a batch in one synchronous step: its queued jobs end canceled, running ones are asked
   * to stop, the `created` ones named end canceled here, and any later submit of its items is
   * refused (they end canceled too). Nothing a claim does can slip between these steps.
   */
  async cancelBatch(batchId: string, accountId: string, createdIds: string[], message = 'canceled'): Promise<{ canceled: number; stopping: number }> {
    const now = this.now();
    let canceled = 0;
    let stopping = 0;
    this.ctx.storage.transactionSync(() => {
      this.sql.exec(`INSERT OR IGNORE INTO canceled_batches (batch_id, message, at) VALUES (?, ?, ?)`, batchId, message, now);
      for (const row of this.sql.exec<JobRow>(`SELECT * FROM jobs WHERE batch_id = ? AND state IN ('ready', 'held')`, batchId).toArray()) {
        this.finalize(row, 'canceled', 'canceled', now, { message });
        canceled++;
      }
      for (const id of createdIds) {
        if (this.job(id) || this.finishedRow(id)) continue;
        this.tombstone(id, accountId, batchId, message, now);
        canceled++;
      }
      stopping = this.sql.exec(`UPDATE jobs SET cancel_requested = 1 WHERE batch_id = ? AND state = 'leased'`, batchId).rowsWritten;
    });
    await this.flush();
    return { canceled, stopping };
  }

  // ---------------------------------------------------------------- transitions

  /** Ends a live job: out of the queue, remembered as finished, and its final state to the outbox. */
  private finalize(
    row: JobRow,
    status: ExecutionState,
    failureKind: FailureKind | null,
    now: number,
    extra: {
      exitCode?: number | null;
      message?: string | null;
      envHit?: boolean | null;
      buildSeconds?: number | null;
      durationMs?: number | null;
      artifacts?: ArtifactRow[];
      cache?: OutboxEntry['cache'];
      /**
       * The runner whose completion ended it: only that runner's repeat of the completion is a
       * duplicate. An execution ended by an expiry or a cancel has none, so a late completion of the
       * lost attempt is stale, never "recorded".
       */
      completedBy?: string;
    },
  ): void {
    const exec: ExecSnapshot = {
      ...this.snapshotOf(row),
      version: row.version + 1,
      status,
      failureKind,
      finishedAt: now,
      exitCode: extra.exitCode ?? null,
      message: extra.message ?? null,
      envHit: extra.envHit ?? null,
      buildSeconds: extra.buildSeconds ?? null,
      durationMs: extra.durationMs ?? null,
    };
    this.sql.exec(`DELETE FROM jobs WHERE execution_id = ?`, row.execution_id);
    if (row.state === 'leased' && row.batch_id) this.sql.exec(`UPDATE batch_caps SET active = active - 1 WHERE batch_id = ?`, row.batch_id);
    if (row.batch_id) this.fillCap(row.batch_id);
    this.remember(exec, row.account_id, extra.completedBy ?? null);
    // Artifacts travel in entries of at most 500 rows each; the final state comes with the last,
    // so an execution that reads as final in D1 has every artifact recorded.
    const artifacts = extra.artifacts ?? [];
    for (let i = 500; i < artifacts.length; i += 500) {
      this.emit({ exec: { ...exec, version: row.version, status: row.state === 'leased' ? 'running' : 'queued' }, batchId: null, at: now, artifacts: artifacts.slice(i, i + 500) }, { quiet: true });
    }
    this.emit({ exec, batchId: row.batch_id, at: now, artifacts: artifacts.slice(0, 500), cache: extra.cache });
  }

  /** Cancels an execution this object never queued (it was still `created`). */
  private tombstone(executionId: string, accountId: string, batchId: string | null, message: string, now: number): void {
    const exec: ExecSnapshot = {
      id: executionId,
      version: 1,
      status: 'canceled',
      attempt: 0,
      runnerId: null,
      submittedAt: null,
      startedAt: null,
      finishedAt: now,
      failureKind: 'canceled',
      exitCode: null,
      message,
      envHit: null,
      buildSeconds: null,
      durationMs: null,
    };
    this.remember(exec, accountId, null);
    this.emit({ exec, batchId, at: now });
  }

  private remember(exec: ExecSnapshot, accountId: string, runnerId: string | null): void {
    this.sql.exec(
      `INSERT OR REPLACE INTO finished (execution_id, account_id, attempt, runner_id, status, version, finished_at, snapshot) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      exec.id,
      accountId,
      exec.attempt,
      runnerId,
      exec.status,
      exec.version,
      exec.finishedAt ?? this.now(),
      JSON.stringify(exec),
    );
  }

  /**
   * Back to the queue (lease expired, offer lost, or given back). `countAttempt`: whether the
   * attempt that ended counts toward max_attempts (only a lease that was acknowledged and then
   * lost does).
   */
  private requeue(row: JobRow, opts: { countAttempt: boolean }): void {
    const now = this.now();
    const tries = opts.countAttempt ? row.tries : row.tries - row.acked;
    this.sql.exec(
      `UPDATE jobs SET state = 'ready', runner_id = NULL, acked = 0, lease_deadline = NULL, tries = ?, version = version + 1, lost_offers = lost_offers + ? WHERE execution_id = ?`,
      tries,
      row.acked ? 0 : 1,
      row.execution_id,
    );
    if (row.batch_id) {
      this.sql.exec(`UPDATE batch_caps SET active = active - 1 WHERE batch_id = ?`, row.batch_id);
      this.fillCap(row.batch_id);
    }
    const after = this.job(row.execution_id)!;
    this.emit({ exec: this.snapshotOf(after), batchId: row.batch_id, at: now });
  }

  /** Keeps exactly min(parallel - active, waiting) of a capped batch's jobs ready. */
  private fillCap(batchId: string): void {
    const cap = this.cap(batchId);
    if (!cap) return;
    const ready = this.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM jobs WHERE batch_id = ? AND state = 'ready'`, batchId).one().n;
    const room = cap.parallel - cap.active - ready;
    if (room > 0) {
      this.sql.exec(
        `UPDATE jobs SET state = 'ready' WHERE execution_id IN (SELECT execution_id FROM jobs WHERE batch_id = ? AND state = 'held' ORDER BY seq LIMIT ?)`,
        batchId,
        room,
      );
    } else if (room < 0) {
      // More ready than the cap allows (a requeued job came back while others were promoted).
      this.sql.exec(
        `UPDATE jobs SET state = 'held' WHERE execution_id IN (SELECT execution_id FROM jobs WHERE batch_id = ? AND state = 'ready' ORDER BY seq DESC LIMIT ?)`,
        batchId,
        -room,
      );
    }
  }

  private cap(batchId: string): { parallel: number; active: number } | undefined {
    return this.sql.exec<{ parallel: number; active: number }>(`SELECT parallel, active FROM batch_caps WHERE batch_id = ?`, batchId).toArray()[0];
  }

  // ---------------------------------------------------------------- alarm: expiry and flush

  override async alarm(): Promise<void> {
    this.alarmAt = null;
    const now = this.now();
    let requeued = 0;
    this.ctx.storage.transactionSync(() => {
      for (const row of this.sql.exec<JobRow>(`SELECT * FROM jobs WHERE state = 'leased' AND lease_deadline <= ?`, now).toArray()) {
        if (this.expire(row, now)) requeued++;
      }
      this.sql.exec(
        `DELETE FROM finished WHERE finished_at < ? AND execution_id NOT IN (SELECT execution_id FROM outbox)`,
        now - FINISHED_TTL_MS,
      );
    });
    if (requeued) this.wake(requeued);
    await this.flush();
    await this.rearm();
  }

  /** An expired lease or offer. Returns true when the job went back to the queue. */
  private expire(row: JobRow, now: number): boolean {
    if (row.cancel_requested) {
      this.finalize(row, 'canceled', 'canceled', now, { message: 'canceled while its runner was unreachable' });
      return false;
    }
    if (!row.acked && row.lost_offers + 1 < LOST_OFFERS_PER_ATTEMPT * row.max_attempts) {
      this.requeue(row, { countAttempt: false });
      return true;
    }
    const tries = row.acked ? row.tries : row.tries + 1;
    const next = transition('running', { type: 'lease_expired', attemptsLeft: tries < row.max_attempts });
    if (!next.ok) throw new Error(next.reason);
    if (next.state === 'queued') {
      this.requeue(row, { countAttempt: true });
      return true;
    }
    this.finalize(row, next.state, next.failureKind ?? null, now, { message: `runner stopped responding on all ${row.max_attempts} attempts` });
    return false;
  }

  /** Sends the outbox: one flush at a time; a caller arriving during one waits for it. */
  flush(): Promise<void> {
    return (this.flushing ??= this.flushOnce().finally(() => (this.flushing = null)));
  }

  private async flushOnce(): Promise<void> {
    await this.hooks.beforeFlush?.();
    const rows = this.sql.exec<{ seq: number; body: string }>(`SELECT seq, body FROM outbox WHERE d1_done = 0 ORDER BY seq LIMIT ?`, FLUSH_ROWS).toArray();
    const runners = this.dirtyRunners();
    // Entries parsed once: the trackers' turn below reuses them.
    const parsed = new Map<number, OutboxEntry>();
    if (rows.length || runners.length) {
      const entries = rows.map((r) => {
        const e = JSON.parse(r.body) as OutboxEntry;
        parsed.set(r.seq, e);
        return e;
      });
      const { statements, runnerStatements } = flushStatements(this.db, entries, runners);
      let results: D1Result[];
      try {
        results = await (this.hooks.d1Batch ?? ((s) => this.db.batch(s)))(statements);
      } catch (err) {
        this.flushFailures++;
        console.error(`dispatcher: D1 flush of ${rows.length} entries failed (try ${this.flushFailures}); retrying`, err);
        return;
      }
      this.flushFailures = 0;
      await this.hooks.afterD1Commit?.();
      const drains = results.slice(results.length - runnerStatements).flatMap((r) => (r.results ?? []) as { id: string; drain: number }[]);
      this.ctx.storage.transactionSync(() => {
        const last = rows.length ? rows[rows.length - 1]!.seq : 0;
        this.sql.exec(`UPDATE outbox SET d1_done = 1 WHERE d1_done = 0 AND seq <= ?`, last);
        this.sql.exec(`DELETE FROM outbox WHERE d1_done = 1 AND batch_id IS NULL`);
        for (const r of runners) this.sql.exec(`UPDATE runners SET flushed_at = ?, dirty = 0 WHERE runner_id = ? AND last_seen = ?`, r.lastSeen, r.id, r.lastSeen);
        for (const d of drains) this.sql.exec(`UPDATE runners SET drain_requested = ? WHERE runner_id = ?`, d.drain ? 1 : 0, d.id);
      });
      this.pendingD1 = this.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM outbox WHERE d1_done = 0`).one().n;
    }
    await this.hooks.beforeTrackers?.();
    await this.tellTrackers(parsed);
  }

  /** Batch trackers learn of transitions only once D1 has them (a finished item's outputs are listed). */
  private async tellTrackers(parsed = new Map<number, OutboxEntry>()): Promise<void> {
    const rows = this.sql.exec<{ seq: number; batch_id: string; body: string }>(`SELECT seq, batch_id, body FROM outbox WHERE d1_done = 1 ORDER BY seq LIMIT ?`, FLUSH_ROWS).toArray();
    const byBatch = new Map<string, { seqs: number[]; entries: OutboxEntry[] }>();
    for (const r of rows) {
      const g = byBatch.get(r.batch_id) ?? byBatch.set(r.batch_id, { seqs: [], entries: [] }).get(r.batch_id)!;
      g.seqs.push(r.seq);
      g.entries.push(parsed.get(r.seq) ?? (JSON.parse(r.body) as OutboxEntry));
    }
    await Promise.all(
      [...byBatch].map(async ([batchId, g]) => {
        try {
          await this.env.BATCHES.get(this.env.BATCHES.idFromName(batchId)).update(g.entries.map(itemUpdate));
          this.sql.exec(`DELETE FROM outbox WHERE seq IN (SELECT value FROM json_each(?))`, JSON.stringify(g.seqs));
        } catch (err) {
          console.error(`dispatcher: batch ${batchId}: tracker update failed; retrying`, err);
        }
      }),
    );
  }

  /** Sets the alarm for the earliest thing that needs it: a lease deadline, the outbox, the finished TTL. */
  private async rearm(): Promise<void> {
    const now = this.now();
    const times: number[] = [];
    const lease = this.sql.exec<{ t: number | null }>(`SELECT MIN(lease_deadline) AS t FROM jobs WHERE state = 'leased'`).one().t;
    if (lease !== null) times.push(lease);
    const outbox = this.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM outbox`).one().n;
    if (outbox || this.dirtyRunners().length) times.push(now + Math.min(30_000, FLUSH_MS * 2 ** Math.min(this.flushFailures, 7)));
    const fin = this.sql.exec<{ t: number | null }>(`SELECT MIN(finished_at) AS t FROM finished`).one().t;
    if (fin !== null) times.push(Math.max(now + 60_000, fin + FINISHED_TTL_MS));
    if (times.length) this.armAt(Math.min(...times), true);
  }

  private armAt(at: number, force = false): void {
    if (!force && this.alarmAt !== null && this.alarmAt <= at) return;
    this.alarmAt = at;
    void this.ctx.storage.setAlarm(at);
  }

  private emit(entry: OutboxEntry, opts: { quiet?: boolean } = {}): void {
    this.sql.exec(
      `INSERT INTO outbox (execution_id, batch_id, final, body) VALUES (?, ?, ?, ?)`,
      entry.exec.id,
      opts.quiet ? null : entry.batchId,
      entry.exec.finishedAt !== null ? 1 : 0,
      JSON.stringify(entry),
    );
    this.pendingD1++;
    this.armAt(this.now() + FLUSH_MS);
  }

  // ---------------------------------------------------------------- runners

  /** Records that a runner called; true when an operator asked it to drain (it gets no work). */
  private touchRunner(runnerId: string): boolean {
    const now = this.now();
    const r = this.sql
      .exec<{ drain_requested: number; flushed_at: number }>(
        `INSERT INTO runners (runner_id, last_seen) VALUES (?, ?) ON CONFLICT (runner_id) DO UPDATE SET last_seen = excluded.last_seen
         RETURNING drain_requested, flushed_at`,
        runnerId,
        now,
      )
      .one();
    if (now - r.flushed_at >= LIVENESS_FLUSH_MS) this.markDirty(runnerId);
    return r.drain_requested === 1;
  }

  private recordLiveness(runnerId: string, l: { activeJobs: number; draining: boolean }, now: number): boolean {
    const r = this.sql
      .exec<{ drain_requested: number; changed: number; flushed_at: number }>(
        `INSERT INTO runners (runner_id, last_seen, active_jobs, draining) VALUES (?, ?, ?, ?)
         ON CONFLICT (runner_id) DO UPDATE SET last_seen = excluded.last_seen, active_jobs = excluded.active_jobs, draining = excluded.draining,
           dirty = dirty OR active_jobs != excluded.active_jobs OR draining != excluded.draining
         RETURNING drain_requested, dirty AS changed, flushed_at`,
        runnerId,
        now,
        l.activeJobs,
        l.draining ? 1 : 0,
      )
      .one();
    if (r.changed || now - r.flushed_at >= LIVENESS_FLUSH_MS) this.markDirty(runnerId);
    return r.drain_requested === 1;
  }

  /** An operator or the autoscaler asked a runner (homed here) to drain: no more work for it. */
  async setDrain(runnerId: string, drain: boolean): Promise<void> {
    this.sql.exec(
      `INSERT INTO runners (runner_id, last_seen, drain_requested) VALUES (?, 0, ?) ON CONFLICT (runner_id) DO UPDATE SET drain_requested = excluded.drain_requested`,
      runnerId,
      drain ? 1 : 0,
    );
  }

  private markDirty(runnerId: string): void {
    this.sql.exec(`UPDATE runners SET dirty = 1 WHERE runner_id = ?`, runnerId);
    this.armAt(this.now() + FLUSH_MS);
  }

  private dirtyRunners(): RunnerLiveness[] {
    return this.sql
      .exec<{ runner_id: string; last_seen: number; active_jobs: number; draining: number }>(`SELECT runner_id, last_seen, active_jobs, draining FROM runners WHERE dirty = 1`)
      .toArray()
      .map((r) => ({ id: r.runner_id, lastSeen: r.last_seen, activeJobs: r.active_jobs, draining: r.draining === 1 }));
  }

  // ---------------------------------------------------------------- reads

  /**
   * The Dispatcher's view of these executions, for reads of live executions. An execution that
   * ended here is flushed to D1 first, so a reader that sees it final in D1 also sees its
   * artifacts, and never sees an older state than the one it was shown.
   */
  async sync(ids: string[]): Promise<ExecSnapshot[]> {
    const pending = () =>
      this.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM outbox WHERE d1_done = 0 AND final = 1 AND execution_id IN (SELECT value FROM json_each(?))`, JSON.stringify(ids)).one().n;
    for (let i = 0; i < 3 && pending(); i++) await this.flush();
    const out: ExecSnapshot[] = [];
    for (const id of ids) {
      const row = this.job(id);
      if (row) out.push(this.snapshotOf(row));
      else {
        const fin = this.finishedRow(id);
        if (fin) out.push(JSON.parse(fin.snapshot) as ExecSnapshot);
      }
    }
    return out;
  }

  async stats(): Promise<DispatcherStats> {
    const r = this.sql.exec<{ ready: number | null; leased: number | null }>(`SELECT SUM(state = 'ready') AS ready, SUM(state = 'leased') AS leased FROM jobs`).one();
    return { ready: r.ready ?? 0, leased: r.leased ?? 0, waiters: this.waiters.length, outbox: this.pendingD1 };
  }

  /** D1 round trips made in this object's isolate, and its queue (the dispatch bench reports them). */
  async d1Stats(): Promise<{ isolate: string; roundTrips: number; stats: DispatcherStats }> {
    return { isolate: d1Counter.isolate, roundTrips: d1Counter.roundTrips, stats: await this.stats() };
  }

  /**
   * Everything this object holds, for consistency checks (the chaos test compares it with D1 after
   * a flush): live jobs, remembered finished executions, and what D1 has not been sent yet.
   */
  async audit(): Promise<{ live: ExecSnapshot[]; finished: ExecSnapshot[]; outbox: number }> {
    await this.flush();
    return {
      live: this.sql.exec<JobRow>(`SELECT * FROM jobs`).toArray().map((r) => this.snapshotOf(r)),
      finished: this.sql.exec<FinishedRow>(`SELECT * FROM finished`).toArray().map((r) => JSON.parse(r.snapshot) as ExecSnapshot),
      outbox: this.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM outbox`).one().n,
    };
  }

  // ---------------------------------------------------------------- helpers

  private job(executionId: string): JobRow | undefined {
    return this.sql.exec<JobRow>(`SELECT * FROM jobs WHERE execution_id = ?`, executionId).toArray()[0];
  }

  private finishedRow(executionId: string): FinishedRow | undefined {
    return this.sql.exec<FinishedRow>(`SELECT * FROM finished WHERE execution_id = ?`, executionId).toArray()[0];
  }

  private snapshotOf(row: JobRow): ExecSnapshot {
    return {
      id: row.execution_id,
      version: row.version,
      status: row.state === 'leased' ? 'running' : 'queued',
      attempt: row.attempt,
      runnerId: row.state === 'leased' ? row.runner_id : null,
      submittedAt: row.submitted_at,
      startedAt: row.started_at,
      finishedAt: null,
      failureKind: null,
      exitCode: null,
      message: null,
      envHit: null,
      buildSeconds: null,
      durationMs: null,
    };
  }

  /** The current state of an execution this object knows, for a stale answer; undefined if it knows none. */
  private staleDetails(executionId: string, row: LeaseRow | undefined = this.leaseOf(executionId)): Stale['details'] | undefined {
    if (row) return { executionId, currentAttempt: row.attempt, status: row.state === 'leased' ? 'running' : 'queued' };
    const fin = this.finishedRow(executionId);
    if (fin) return { executionId, currentAttempt: fin.attempt, status: fin.status as ExecutionState };
    return undefined;
  }

  /** Stale when this object knows the execution; otherwise not here (another pool or shard, or long finished). */
  private stale(executionId: string, row?: LeaseRow): Stale | NotHere {
    const d = this.staleDetails(executionId, row);
    return d ? { ok: false, reason: 'stale', details: d } : { ok: false, reason: 'not_here' };
  }
}
