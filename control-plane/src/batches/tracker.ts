/**
 * BatchTracker: one Durable Object per batch. It keeps each item's latest state (fed by the
 * Dispatcher at every transition), answers snapshots with counts and an ETA, keeps WebSocket
 * watchers up to date with throttled progress deltas, applies fail-fast, and when the last item
 * is final records the finish and POSTs the signed completion callback.
 *
 * Updates stay O(1) per item: counts are stored counters adjusted in the same synchronous block
 * as each item change (never recounted), and an update only marks the batch changed; building
 * and sending messages happens on a timer, at most every 500 ms.
 *
 * A retried item supersedes its original: counts and failures always describe the latest
 * execution of each input, while the originals stay in history (D1).
 */
import { DurableObject } from 'cloudflare:workers';
import { isFinal, type ExecutionState, type FailureKind } from '../../../shared/lifecycle.js';
import { MAX_FAILURES_PER_PROGRESS, type BatchCounts, type BatchEvent, type BatchFailure, type BatchProgress, type BatchSnapshot } from '../../../shared/api/batches.js';
import type { Bindings } from '../env.js';
import type { BatchMeta, ItemUpdate, NewItem } from './types.js';
import { signCallback } from '../webhooks/signature.js';
import { cancelBatchInPool, poolShards } from '../dispatch/shards.js';

const STATES: ExecutionState[] = ['created', 'queued', 'running', 'succeeded', 'failed', 'canceled'];
/** Counter keys: one per state, plus reused (a flag across states). Total is their sum. */
type CountKey = ExecutionState | 'reused';
const MAX_FAILURES_LISTED = 1000;
/** Watchers get at most one message per PROGRESS_MIN_MS, and one at least every PROGRESS_MAX_MS (ETA refresh). */
const PROGRESS_MIN_MS = 500;
const PROGRESS_MAX_MS = 2000;
/** Version given to items already final when the version column was added: nothing moves them. */
const LEGACY_FINAL_VERSION = Number.MAX_SAFE_INTEGER;
const CALLBACK_ATTEMPTS = 5;

interface ItemRow extends Record<string, SqlStorageValue> {
  execution_id: string;
  input_name: string;
  status: ExecutionState;
  reused: number;
  superseded: number;
  version: number;
  started_at: number | null;
  finished_at: number | null;
  failure_kind: string | null;
  message: string | null;
  exit_code: number | null;
  fail_seq: number | null;
}

export class BatchTracker extends DurableObject<Bindings> {
  private readonly sql: SqlStorage;
  /** Something changed since the last message to watchers. */
  private dirty = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private timerAt = 0;
  private lastSentAt = 0;

  constructor(ctx: DurableObjectState, env: Bindings) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS items (
        execution_id TEXT PRIMARY KEY,
        input_name TEXT NOT NULL,
        status TEXT NOT NULL,
        reused INTEGER NOT NULL DEFAULT 0,
        superseded INTEGER NOT NULL DEFAULT 0,
        version INTEGER NOT NULL DEFAULT 0,
        started_at INTEGER,
        finished_at INTEGER,
        failure_kind TEXT,
        message TEXT,
        exit_code INTEGER,
        fail_seq INTEGER
      );
      CREATE INDEX IF NOT EXISTS items_status ON items(superseded, status);
      CREATE TABLE IF NOT EXISTS counts (key TEXT PRIMARY KEY, n INTEGER NOT NULL);
    `);
    ctx.storage.transactionSync(() => this.migrate());
    // Woken from hibernation with watchers still connected: resume their periodic refresh.
    this.schedule();
  }

  /** Trackers created before versions and stored counters get them once. */
  private migrate(): void {
    const cols = new Set(this.sql.exec<{ name: string }>(`PRAGMA table_info(items)`).toArray().map((c) => c.name));
    if (!cols.has('version')) {
      this.sql.exec(`ALTER TABLE items ADD COLUMN version INTEGER NOT NULL DEFAULT 0`);
      // Final states are sticky: a versioned notification arriving now must not move these.
      this.sql.exec(`UPDATE items SET version = ? WHERE status IN ('succeeded', 'failed', 'canceled')`, LEGACY_FINAL_VERSION);
    }
    if (!cols.has('fail_seq')) this.sql.exec(`ALTER TABLE items ADD COLUMN fail_seq INTEGER`);
    this.sql.exec(`CREATE INDEX IF NOT EXISTS items_fail_seq ON items(fail_seq)`);
    if (this.sql.exec(`SELECT 1 FROM counts LIMIT 1`).toArray().length) return;
    // The only full recount this tracker ever does (empty for a new one).
    const c = this.recount();
    for (const key of [...STATES, 'reused'] as CountKey[]) this.sql.exec(`INSERT INTO counts (key, n) VALUES (?, ?)`, key, c[key]);
  }

  /** Counts from the items themselves: O(N), for the migration only. */
  private recount(): BatchCounts {
    const c: BatchCounts = { total: 0, created: 0, queued: 0, running: 0, succeeded: 0, failed: 0, canceled: 0, reused: 0 };
    for (const r of this.sql.exec<{ status: ExecutionState; n: number; reused: number }>(
      `SELECT status, COUNT(*) AS n, SUM(reused) AS reused FROM items WHERE superseded = 0 GROUP BY status`,
    )) {
      c[r.status] += r.n;
      c.total += r.n;
      c.reused += r.reused ?? 0;
    }
    return c;
  }

  private get<T>(key: string): T | undefined {
    const row = this.sql.exec<{ value: string }>(`SELECT value FROM meta WHERE key = ?`, key).toArray()[0];
    return row ? (JSON.parse(row.value) as T) : undefined;
  }

  private set(key: string, value: unknown): void {
    this.sql.exec(`INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)`, key, JSON.stringify(value));
  }

  private bump(): void {
    this.set('version', (this.get<number>('version') ?? 0) + 1);
    this.dirty = true;
    this.schedule();
  }

  /** Adds the deltas to the stored counters (called in the same synchronous block as the item changes). */
  private adjust(deltas: Map<CountKey, number>): void {
    for (const [key, d] of deltas) if (d) this.sql.exec(`UPDATE counts SET n = n + ? WHERE key = ?`, d, key);
  }

  async init(meta: BatchMeta): Promise<void> {
    if (!this.get('meta')) this.set('meta', meta);
    this.bump();
  }

  async setCallback(url: string, secret: string): Promise<void> {
    const meta = this.get<BatchMeta>('meta');
    if (meta) this.set('meta', { ...meta, callbackUrl: url, callbackSecret: secret });
  }

  async addItems(items: NewItem[]): Promise<void> {
    this.ctx.storage.transactionSync(() => this.insertItems(items));
    this.bump();
  }

  /** Only rows actually inserted count: a repeated add (a retried request) changes nothing. */
  private insertItems(items: NewItem[]): void {
    let added = 0;
    for (const it of items) {
      added += this.sql
        .exec(`INSERT OR IGNORE INTO items (execution_id, input_name, status) VALUES (?, ?, 'created') RETURNING execution_id`, it.executionId, it.inputName)
        .toArray().length;
    }
    this.adjust(new Map([['created', added]]));
  }

  /** Retries: the originals stop counting, the new executions take their place. */
  async supersede(originals: string[], items: NewItem[]): Promise<void> {
    this.ctx.storage.transactionSync(() => {
      const deltas = new Map<CountKey, number>();
      for (const id of originals) {
        const row = this.sql
          .exec<Pick<ItemRow, 'status' | 'reused'>>(`UPDATE items SET superseded = 1 WHERE execution_id = ? AND superseded = 0 RETURNING status, reused`, id)
          .toArray()[0];
        if (!row) continue;
        deltas.set(row.status, (deltas.get(row.status) ?? 0) - 1);
        deltas.set('reused', (deltas.get('reused') ?? 0) - row.reused);
      }
      this.adjust(deltas);
      this.set('finishedAt', null);
      this.set('callbackSent', false);
      this.insertItems(items);
    });
    // Watchers may hold failures of the originals: the next message replaces their whole view.
    this.set('resync', true);
    this.bump();
  }

  async markSubmitted(at: number): Promise<void> {
    this.set('submittedAt', this.get<number>('submittedAt') ?? at);
    this.bump();
    await this.checkFinished();
  }

  async markCanceled(at: number): Promise<void> {
    this.set('canceledAt', at);
    this.bump();
  }

  /**
   * Applies item transitions, in any order and any number of times: an update is applied only
   * when its version is newer than the item's, so a repeated, late or reordered notification
   * never moves an item back and never counts twice (finals carry an execution's highest
   * version, so they are sticky). Cheap on purpose: the Dispatcher sends coalesced lists and
   * does not wait for watchers; messages are built later, on the broadcast timer.
   */
  async update(updates: ItemUpdate[]): Promise<void> {
    const applied = this.ctx.storage.transactionSync(() => this.applyUpdates(updates));
    if (!applied.count) return;
    this.bump();
    if (applied.failedNow) this.failFast();
    await this.checkFinished();
  }

  private applyUpdates(updates: ItemUpdate[]): { count: number; failedNow: boolean } {
    const deltas = new Map<CountKey, number>();
    const failSeqBefore = this.get<number>('failSeq') ?? 0;
    let failSeq = failSeqBefore;
    let count = 0;
    let failedNow = false;
    let startedAt = this.get<number>('startedAt') ?? null;
    for (const u of updates) {
      const row = this.sql
        .exec<Pick<ItemRow, 'status' | 'reused' | 'superseded' | 'version'>>(`SELECT status, reused, superseded, version FROM items WHERE execution_id = ?`, u.executionId)
        .toArray()[0];
      if (!row || !(u.version > row.version)) continue;
      const reused = u.reused ? 1 : row.reused;
      const failure = u.status === 'failed' || u.status === 'canceled';
      this.sql.exec(
        `UPDATE items SET status = ?, version = ?, started_at = COALESCE(started_at, ?), finished_at = ?, failure_kind = ?, message = ?, exit_code = ?, reused = ?, fail_seq = ? WHERE execution_id = ?`,
        u.status,
        u.version,
        u.status === 'running' ? u.at : null,
        isFinal(u.status) ? u.at : null,
        u.failureKind ?? null,
        u.message ?? null,
        u.exitCode ?? null,
        reused,
        failure ? ++failSeq : null,
        u.executionId,
      );
      count++;
      if (u.status === 'running' && startedAt == null) this.set('startedAt', (startedAt = u.at));
      if (row.superseded) continue; // history only: superseded items are not counted
      deltas.set(row.status, (deltas.get(row.status) ?? 0) - 1);
      deltas.set(u.status, (deltas.get(u.status) ?? 0) + 1);
      deltas.set('reused', (deltas.get('reused') ?? 0) + reused - row.reused);
      if (u.status === 'failed') failedNow = true;
    }
    this.adjust(deltas);
    if (failSeq !== failSeqBefore) this.set('failSeq', failSeq);
    return { count, failedNow };
  }

  private failFast(): void {
    const meta = this.get<BatchMeta>('meta');
    if (!meta?.failFast || this.get<boolean>('failFastTriggered')) return;
    this.set('failFastTriggered', true);
    // Not awaited: a Dispatcher's flush is usually the caller of this update and is waiting for it.
    this.ctx.waitUntil(this.cancelEverywhere(meta).catch((err: unknown) => console.error('fail-fast cancel failed', err)));
  }

  /** Cancels the rest of the batch in every Dispatcher shard of its pool. */
  private async cancelEverywhere(meta: BatchMeta): Promise<void> {
    await cancelBatchInPool(this.env, meta.pool, await poolShards(this.env, meta.pool), meta.batchId, meta.accountId, [], 'canceled by --fail-fast after a failure');
  }

  /** O(1): the stored counters. */
  private counts(): BatchCounts {
    const c: BatchCounts = { total: 0, created: 0, queued: 0, running: 0, succeeded: 0, failed: 0, canceled: 0, reused: 0 };
    for (const r of this.sql.exec<{ key: CountKey; n: number }>(`SELECT key, n FROM counts`)) c[r.key] = r.n;
    for (const s of STATES) c.total += c[s];
    return c;
  }

  private async checkFinished(): Promise<void> {
    if (this.get<number>('finishedAt')) return;
    if (!this.get<number>('submittedAt') && !this.get<number>('canceledAt')) return;
    const c = this.counts();
    const open = c.created + c.queued + c.running;
    if (c.total === 0 || open > 0) return;
    const now = Date.now();
    this.set('finishedAt', now);
    this.bump();
    const meta = this.get<BatchMeta>('meta')!;
    await this.env.DB.prepare(`UPDATE batches SET finished_at = ? WHERE id = ?`).bind(now, meta.batchId).run();
    if (meta.callbackUrl && !this.get<boolean>('callbackSent')) {
      this.set('callbackAttempts', 0);
      // One delivery per finish (a retried batch finishes again: a new delivery), the same id on
      // each of its attempts, so a receiver can drop repeats.
      this.set('callbackSeq', (this.get<number>('callbackSeq') ?? 0) + 1);
      await this.ctx.storage.setAlarm(Date.now());
    }
  }

  /** Delivers the completion callback, retrying with backoff (alarm-driven, survives restarts). */
  override async alarm(): Promise<void> {
    const meta = this.get<BatchMeta>('meta');
    if (!meta?.callbackUrl || this.get<boolean>('callbackSent')) return;
    const attempts = (this.get<number>('callbackAttempts') ?? 0) + 1;
    this.set('callbackAttempts', attempts);
    const body = JSON.stringify({ type: 'batch.finished', batch: this.snapshot() });
    const headers = await signCallback(meta.callbackSecret ?? '', body, `cb_${meta.batchId}_${this.get<number>('callbackSeq') ?? 1}`);
    try {
      const res = await fetch(meta.callbackUrl, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
      if (res.ok) {
        this.set('callbackSent', true);
        return;
      }
    } catch {
      // retried below
    }
    if (attempts < CALLBACK_ATTEMPTS) await this.ctx.storage.setAlarm(Date.now() + 1000 * 2 ** attempts);
  }

  snapshot(): BatchSnapshot {
    const meta = this.get<BatchMeta>('meta');
    if (!meta) throw new Error('batch not initialized');
    const { id, version, status, counts, etaSeconds, startedAt, finishedAt } = this.progress([]);
    const failures = this.sql
      .exec<ItemRow>(`SELECT * FROM items WHERE superseded = 0 AND status IN ('failed', 'canceled') ORDER BY input_name LIMIT ?`, MAX_FAILURES_LISTED)
      .toArray()
      .map(toFailure);
    return {
      id,
      name: meta.name,
      status,
      counts,
      parallel: meta.parallel,
      failFast: meta.failFast,
      startedAt,
      finishedAt,
      etaSeconds,
      failures,
      metadata: meta.metadata,
      createdAt: new Date(meta.createdAt).toISOString(),
      version,
    };
  }

  /** What changes while a batch runs: a snapshot without its fixed fields and with only the given failures. */
  private progress(failures: BatchFailure[]): BatchProgress {
    const meta = this.get<BatchMeta>('meta');
    if (!meta) throw new Error('batch not initialized');
    const counts = this.counts();
    const startedAt = this.get<number>('startedAt') ?? null;
    const finishedAt = this.get<number>('finishedAt') ?? null;
    const canceledAt = this.get<number>('canceledAt') ?? null;
    const done = counts.succeeded + counts.failed + counts.canceled;
    let etaSeconds: number | null = null;
    if (finishedAt) etaSeconds = 0;
    else if (startedAt && done > 0) {
      // Observed throughput so far (items finished per second since the first start) covers
      // both durations and the parallelism the fleet actually gives this batch.
      const elapsed = Math.max(1, (Date.now() - startedAt) / 1000);
      etaSeconds = Math.round(((counts.total - done) * elapsed) / done);
    }
    const iso = (t: number | null) => (t ? new Date(t).toISOString() : null);
    return {
      type: 'progress',
      id: meta.batchId,
      version: this.get<number>('version') ?? 0,
      status: finishedAt ? (canceledAt ? 'canceled' : 'finished') : startedAt || this.get<number>('submittedAt') ? 'running' : 'created',
      counts,
      etaSeconds,
      startedAt: iso(startedAt),
      finishedAt: iso(finishedAt),
      failures,
    };
  }

  /** Latest execution id per input (for downloads and retries). */
  async items(): Promise<{ executionId: string; inputName: string; status: ExecutionState }[]> {
    return this.sql
      .exec<ItemRow>(`SELECT execution_id, input_name, status FROM items WHERE superseded = 0 ORDER BY input_name`)
      .toArray()
      .map((r) => ({ executionId: r.execution_id, inputName: r.input_name, status: r.status }));
  }

  async getSnapshot(): Promise<BatchSnapshot | null> {
    return this.get('meta') ? this.snapshot() : null;
  }

  /** WebSocket watch: the current snapshot at once, then throttled progress deltas (see BatchEvent). */
  override async fetch(request: Request): Promise<Response> {
    if (request.headers.get('upgrade')?.toLowerCase() !== 'websocket') return new Response('expected a WebSocket upgrade', { status: 426 });
    const pair = new WebSocketPair();
    const [client, server] = Object.values(pair) as [WebSocket, WebSocket];
    this.ctx.acceptWebSocket(server);
    server.send(JSON.stringify({ type: 'snapshot', batch: this.snapshot() } satisfies BatchEvent));
    // The new watcher is up to date: counting this as a message spares it an immediate repeat
    // (other watchers' next message is delayed by PROGRESS_MIN_MS at most).
    this.lastSentAt = Date.now();
    this.schedule();
    return new Response(null, { status: 101, webSocket: client });
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    if (message === 'snapshot') ws.send(JSON.stringify({ type: 'snapshot', batch: this.snapshot() } satisfies BatchEvent));
  }

  override async webSocketClose(ws: WebSocket, code: number): Promise<void> {
    // 1005/1006 mean "no code" and may not be sent back.
    ws.close(code === 1005 || code === 1006 ? 1000 : code, 'closing');
  }

  /**
   * Arms the broadcast timer while watchers are connected: PROGRESS_MIN_MS after the last message
   * when something changed, PROGRESS_MAX_MS when nothing did and the batch still runs (the ETA
   * moves on its own). A change can only bring the timer forward. setTimeout, not the alarm: the
   * alarm belongs to callback delivery, and the timer is only needed while a socket keeps this
   * object awake; after a restart the next change (or the constructor) arms it again.
   */
  private schedule(): void {
    if (!this.ctx.getWebSockets().length || !this.get('meta')) return;
    if (!this.dirty && this.get<number>('finishedAt')) return;
    const at = this.lastSentAt + (this.dirty ? PROGRESS_MIN_MS : PROGRESS_MAX_MS);
    if (this.timer !== undefined) {
      if (this.timerAt <= at) return;
      clearTimeout(this.timer);
    }
    this.timerAt = at;
    this.timer = setTimeout(() => this.tick(), Math.max(0, at - Date.now()));
  }

  private tick(): void {
    this.timer = undefined;
    const sockets = this.ctx.getWebSockets();
    if (!sockets.length) return;
    const msg = JSON.stringify(this.nextMessage());
    for (const ws of sockets) {
      try {
        ws.send(msg);
      } catch {
        // a closed socket is dropped by the runtime
      }
    }
    this.lastSentAt = Date.now();
    this.schedule();
  }

  /**
   * A full snapshot once the batch is finished (watchers stop on it) or after a retry; otherwise
   * a progress delta with the failures that appeared since the last message (failures are
   * numbered as they happen: fail_seq). More than a delta holds leave the batch dirty, so the
   * rest follows PROGRESS_MIN_MS later.
   */
  private nextMessage(): BatchEvent {
    const sent = this.get<number>('sentFailSeq') ?? 0;
    if (this.get<boolean>('resync') || this.get<number>('finishedAt')) {
      this.dirty = false;
      this.set('resync', false);
      this.set('sentFailSeq', this.get<number>('failSeq') ?? 0);
      return { type: 'snapshot', batch: this.snapshot() };
    }
    const rows = this.sql
      .exec<ItemRow>(
        `SELECT * FROM items WHERE fail_seq > ? AND superseded = 0 AND status IN ('failed', 'canceled') ORDER BY fail_seq LIMIT ?`,
        sent,
        MAX_FAILURES_PER_PROGRESS + 1,
      )
      .toArray();
    const batch = rows.slice(0, MAX_FAILURES_PER_PROGRESS);
    this.dirty = rows.length > batch.length;
    if (batch.length) this.set('sentFailSeq', batch[batch.length - 1]!.fail_seq);
    return this.progress(batch.map(toFailure));
  }
}

function toFailure(r: ItemRow): BatchFailure {
  return {
    executionId: r.execution_id,
    inputName: r.input_name,
    status: r.status,
    failureKind: (r.failure_kind as FailureKind | null) ?? null,
    message: r.message,
    exitCode: r.exit_code,
  };
}
