/**
 * BatchTracker: one Durable Object per batch. It keeps each item's latest state (fed by the
 * Dispatcher at every transition), answers snapshots with counts and an ETA, pushes every change
 * to WebSocket watchers, applies fail-fast, and when the last item is final records the finish
 * and POSTs the signed completion callback.
 *
 * A retried item supersedes its original: counts and failures always describe the latest
 * execution of each input, while the originals stay in history (D1).
 */
import { DurableObject } from 'cloudflare:workers';
import { isFinal, type ExecutionState, type FailureKind } from '../../../shared/lifecycle.js';
import type { BatchCounts, BatchSnapshot } from '../../../shared/api/batches.js';
import type { Bindings } from '../env.js';
import type { BatchMeta, ItemUpdate, NewItem } from './types.js';
import { signCallback } from '../webhooks/signature.js';
import { cancelBatchInPool } from '../dispatch/shards.js';

const STATES: ExecutionState[] = ['created', 'queued', 'running', 'succeeded', 'failed', 'canceled'];
const MAX_FAILURES_LISTED = 1000;
const CALLBACK_ATTEMPTS = 5;

interface ItemRow extends Record<string, SqlStorageValue> {
  execution_id: string;
  input_name: string;
  status: ExecutionState;
  reused: number;
  superseded: number;
  started_at: number | null;
  finished_at: number | null;
  failure_kind: string | null;
  message: string | null;
  exit_code: number | null;
}

export class BatchTracker extends DurableObject<Bindings> {
  private readonly sql: SqlStorage;

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
        started_at INTEGER,
        finished_at INTEGER,
        failure_kind TEXT,
        message TEXT,
        exit_code INTEGER
      );
      CREATE INDEX IF NOT EXISTS items_status ON items(superseded, status);
    `);
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
    this.scheduleBroadcast();
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
    for (const it of items) {
      this.sql.exec(`INSERT OR IGNORE INTO items (execution_id, input_name, status) VALUES (?, ?, 'created')`, it.executionId, it.inputName);
    }
    this.bump();
  }

  /** Retries: the originals stop counting, the new executions take their place. */
  async supersede(originals: string[], items: NewItem[]): Promise<void> {
    for (const id of originals) this.sql.exec(`UPDATE items SET superseded = 1 WHERE execution_id = ?`, id);
    this.set('finishedAt', null);
    this.set('callbackSent', false);
    await this.addItems(items);
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

  async update(updates: ItemUpdate[]): Promise<void> {
    let failedNow = false;
    for (const u of updates) {
      const row = this.sql.exec<ItemRow>(`SELECT * FROM items WHERE execution_id = ?`, u.executionId).toArray()[0];
      if (!row) continue;
      // Final states are sticky: a late, reordered notification never moves an item back.
      if (isFinal(row.status) && row.status !== u.status) continue;
      this.sql.exec(
        `UPDATE items SET status = ?, started_at = COALESCE(started_at, ?), finished_at = ?, failure_kind = ?, message = ?, exit_code = ?, reused = ? WHERE execution_id = ?`,
        u.status,
        u.status === 'running' ? u.at : null,
        isFinal(u.status) ? u.at : null,
        u.failureKind ?? null,
        u.message ?? null,
        u.exitCode ?? null,
        u.reused ? 1 : row.reused,
        u.executionId,
      );
      if (u.status === 'running' && this.get<number>('startedAt') == null) this.set('startedAt', u.at);
      if (u.status === 'failed' && !row.superseded) failedNow = true;
    }
    this.bump();
    const meta = this.get<BatchMeta>('meta');
    if (failedNow && meta?.failFast && !this.get<boolean>('failFastTriggered')) {
      this.set('failFastTriggered', true);
      // Not awaited: the Dispatcher is usually the caller of this update and is waiting for it.
      this.ctx.waitUntil(this.failFast(meta).catch((err: unknown) => console.error('fail-fast cancel failed', err)));
    }
    await this.checkFinished();
  }

  /** Cancels the rest of the batch in every Dispatcher shard of its pool. */
  private async failFast(meta: BatchMeta): Promise<void> {
    const pool = await this.env.DB.prepare(`SELECT dispatch_shards AS shards FROM pools WHERE name = ?`).bind(meta.pool).first<{ shards: number }>();
    await cancelBatchInPool(this.env, meta.pool, pool?.shards ?? 1, meta.batchId, meta.accountId, [], 'canceled by --fail-fast after a failure');
  }

  private counts(): BatchCounts {
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
    const failures = this.sql
      .exec<ItemRow>(`SELECT * FROM items WHERE superseded = 0 AND status IN ('failed', 'canceled') ORDER BY input_name LIMIT ?`, MAX_FAILURES_LISTED)
      .toArray()
      .map((r) => ({
        executionId: r.execution_id,
        inputName: r.input_name,
        status: r.status,
        failureKind: (r.failure_kind as FailureKind | null) ?? null,
        message: r.message,
        exitCode: r.exit_code,
      }));
    const iso = (t: number | null) => (t ? new Date(t).toISOString() : null);
    return {
      id: meta.batchId,
      name: meta.name,
      status: finishedAt ? (canceledAt ? 'canceled' : 'finished') : startedAt || this.get<number>('submittedAt') ? 'running' : 'created',
      counts,
      parallel: meta.parallel,
      failFast: meta.failFast,
      startedAt: iso(startedAt),
      finishedAt: iso(finishedAt),
      etaSeconds,
      failures,
      metadata: meta.metadata,
      createdAt: new Date(meta.createdAt).toISOString(),
      version: this.get<number>('version') ?? 0,
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

  /** WebSocket watch: the current snapshot at once, then one message per change. */
  override async fetch(request: Request): Promise<Response> {
    if (request.headers.get('upgrade')?.toLowerCase() !== 'websocket') return new Response('expected a WebSocket upgrade', { status: 426 });
    const pair = new WebSocketPair();
    const [client, server] = Object.values(pair) as [WebSocket, WebSocket];
    this.ctx.acceptWebSocket(server);
    server.send(JSON.stringify({ type: 'snapshot', batch: this.snapshot() }));
    return new Response(null, { status: 101, webSocket: client });
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    if (message === 'snapshot') ws.send(JSON.stringify({ type: 'snapshot', batch: this.snapshot() }));
  }

  override async webSocketClose(ws: WebSocket, code: number): Promise<void> {
    // 1005/1006 mean "no code" and may not be sent back.
    ws.close(code === 1005 || code === 1006 ? 1000 : code, 'closing');
  }

  /** Every change is pushed at once, so a watcher sees each transition (versions increase by one). */
  private scheduleBroadcast(): void {
    if (!this.get('meta')) return;
    const sockets = this.ctx.getWebSockets();
    if (!sockets.length) return;
    const msg = JSON.stringify({ type: 'snapshot', batch: this.snapshot() });
    for (const ws of sockets) {
      try {
        ws.send(msg);
      } catch {
        // a closed socket is dropped by the runtime
      }
    }
  }
}
