/**
 * Follows a batch until every item is final. The control plane's BatchTracker pushes changes
 * over a WebSocket (GET /api/v1/batches/{id}/watch): a full snapshot when it opens and when the
 * batch finishes, throttled progress deltas between, which are merged into the latest snapshot.
 * When the socket cannot be opened or drops, GET /api/v1/batches/{id} is polled every 2 seconds
 * instead, and the socket is tried again now and then. Snapshots and deltas carry a version
 * that increases with every change, so whichever path delivers one first wins and an older one
 * arriving later is dropped.
 *
 * Node 20 has no global WebSocket; undici's is the same implementation Node 22 ships.
 */
import { WebSocket } from 'undici';
import { BatchEvent, type BatchFailure, type BatchProgress, type BatchSnapshot } from '../../shared/api/batches.js';
import { watchUrl } from '../api/batches.js';
import type { RGridClient } from '../api/client.js';
import { log } from '../ui.js';

export interface WatchOptions {
  onSnapshot: (s: BatchSnapshot) => void;
  /** Poll interval while the socket is not open (default 2 s). */
  pollMs?: number;
  /** Poll interval while the socket is open: a safety net for a silently dead connection. */
  openPollMs?: number;
  /** Wait before opening the socket again after it failed or closed. */
  reconnectMs?: number;
  /** Overrides the WebSocket URL (tests point it at nothing to exercise the fallback). */
  wsUrl?: string;
  /** Set false to poll only. */
  webSocket?: boolean;
  signal?: AbortSignal;
}

/** A batch is over when every item is final (finishedAt is set by the tracker). */
export function isBatchDone(s: BatchSnapshot): boolean {
  return s.finishedAt !== null;
}

/**
 * What a watcher shows after an event (a pushed message or a polled snapshot): the new snapshot,
 * or undefined when the event brings nothing newer. A snapshot replaces the latest one; a delta
 * is merged into it and may repeat the version (a refresh of the ETA, or failures that did not
 * fit in the previous delta).
 */
export function applyEvent(latest: BatchSnapshot | undefined, ev: BatchEvent): BatchSnapshot | undefined {
  if (ev.type === 'snapshot') {
    const s = ev.batch;
    if (latest && s.version < latest.version) return undefined;
    if (latest && s.version === latest.version && isBatchDone(latest) === isBatchDone(s)) return undefined;
    return s;
  }
  // A delta needs a snapshot to merge into: the socket's first message or the first poll.
  if (!latest || ev.id !== latest.id || ev.version < latest.version) return undefined;
  if (ev.version === latest.version && isBatchDone(latest)) return undefined;
  return mergeProgress(latest, ev);
}

/** The delta's moving fields replace the snapshot's; its failures are added (one per execution, newest wins). */
export function mergeProgress(s: BatchSnapshot, p: BatchProgress): BatchSnapshot {
  const { type: _type, failures, ...moving } = p;
  return { ...s, ...moving, failures: mergeFailures(s.failures, failures) };
}

function mergeFailures(known: BatchFailure[], fresh: BatchFailure[]): BatchFailure[] {
  if (!fresh.length) return known;
  const byId = new Map(known.map((f) => [f.executionId, f]));
  for (const f of fresh) byId.set(f.executionId, f);
  return [...byId.values()];
}

/** Resolves with the final snapshot (or the latest one when `signal` aborts). */
export async function watchBatch(client: RGridClient, id: string, opts: WatchOptions): Promise<BatchSnapshot> {
  const pollMs = opts.pollMs ?? 2000;
  const openPollMs = opts.openPollMs ?? 15_000;
  const reconnectMs = opts.reconnectMs ?? 10_000;
  let latest: BatchSnapshot | undefined;
  let ws: WebSocket | undefined;
  let open = false;
  let lastAttempt = -Infinity;
  let wake: (() => void) | undefined;

  const deliver = (ev: BatchEvent) => {
    const s = applyEvent(latest, ev);
    if (!s) return;
    latest = s;
    opts.onSnapshot(s);
    if (isBatchDone(s)) wake?.();
  };

  const connect = () => {
    lastAttempt = Date.now();
    const token = client.http.opts.token;
    let socket: WebSocket;
    try {
      socket = new WebSocket(opts.wsUrl ?? watchUrl(client.http, id), { headers: token ? { authorization: `Bearer ${token}` } : {} });
    } catch (err) {
      log.debug(`batch watch: cannot open a WebSocket (${(err as Error).message}); polling`);
      return;
    }
    ws = socket;
    socket.addEventListener('open', () => {
      open = true;
      log.debug('batch watch: WebSocket open');
    });
    socket.addEventListener('message', (e) => {
      let data: unknown;
      try {
        data = JSON.parse(String(e.data));
      } catch {
        return;
      }
      const ev = BatchEvent.safeParse(data);
      if (ev.success) deliver(ev.data);
    });
    const lost = (why: string) => {
      if (ws !== socket) return;
      if (open) log.debug(`batch watch: WebSocket ${why}; polling every ${pollMs / 1000}s`);
      open = false;
      ws = undefined;
      wake?.();
    };
    socket.addEventListener('error', () => lost('failed'));
    socket.addEventListener('close', () => lost('closed'));
  };

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        wake = undefined;
        opts.signal?.removeEventListener('abort', done);
        resolve();
      }
      wake = done;
      opts.signal?.addEventListener('abort', done, { once: true });
    });

  try {
    if (opts.webSocket !== false) connect();
    // The first snapshot comes from a GET: the UI has something to show at once.
    deliver({ type: 'snapshot', batch: (await client.pollBatch(id)).batch });
    while (!(latest && isBatchDone(latest)) && !opts.signal?.aborted) {
      await sleep(open ? openPollMs : pollMs);
      if ((latest && isBatchDone(latest)) || opts.signal?.aborted) break;
      if (opts.webSocket !== false && !ws && Date.now() - lastAttempt >= reconnectMs) connect();
      deliver({ type: 'snapshot', batch: (await client.pollBatch(id)).batch });
    }
    return latest!;
  } finally {
    const socket = ws;
    ws = undefined;
    socket?.close();
  }
}
