// The watcher's handling of pushed events, without the control plane: merging progress deltas
// into the latest snapshot (pure), and watchBatch against a scripted WebSocket on 127.0.0.1.
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { BatchEvent, BatchFailure, BatchProgress, BatchSnapshot } from '../../shared/api/batches.js';
import { newId } from '../../shared/ids.js';
import { RGridClient } from '../api/client.js';
import { applyEvent, mergeProgress, watchBatch } from './watch.js';

const batchId = newId('batch');
const [a, b, c] = [newId('execution'), newId('execution'), newId('execution')];

function snapshot(version: number, extra: Partial<BatchSnapshot> = {}): BatchSnapshot {
  return {
    id: batchId,
    name: 'fake',
    status: 'running',
    counts: { total: 3, created: 0, queued: 3, running: 0, succeeded: 0, failed: 0, canceled: 0, reused: 0 },
    parallel: null,
    failFast: false,
    startedAt: null,
    finishedAt: null,
    etaSeconds: null,
    failures: [],
    metadata: { k: 'v' },
    createdAt: '2026-01-01T00:00:00.000Z',
    version,
    ...extra,
  };
}

const failure = (executionId: string, message = 'boom'): BatchFailure => ({ executionId, inputName: `in-${executionId.slice(-4)}`, status: 'failed', failureKind: 'script_error', message, exitCode: 1 });

function progress(version: number, counts: Partial<BatchSnapshot['counts']>, failures: BatchFailure[] = [], extra: Partial<BatchProgress> = {}): BatchProgress {
  return { type: 'progress', id: batchId, version, status: 'running', counts: { ...snapshot(0).counts, ...counts }, etaSeconds: 30, startedAt: '2026-01-01T00:00:01.000Z', finishedAt: null, failures, ...extra };
}

describe('applyEvent', () => {
  it('merges a delta into the latest snapshot: moving fields replaced, fixed ones kept, failures added', () => {
    const base = snapshot(1, { failures: [failure(a)] });
    const merged = applyEvent(base, progress(3, { queued: 1, running: 1, failed: 1 }, [failure(b)]))!;
    expect(merged).toEqual({
      ...base,
      version: 3,
      counts: { total: 3, created: 0, queued: 1, running: 1, succeeded: 0, failed: 1, canceled: 0, reused: 0 },
      etaSeconds: 30,
      startedAt: '2026-01-01T00:00:01.000Z',
      failures: [failure(a), failure(b)],
    });
    expect(merged).not.toHaveProperty('type');
  });

  it('keeps one failure per execution, the newest', () => {
    const merged = mergeProgress(snapshot(1, { failures: [failure(a, 'old'), failure(b)] }), progress(2, {}, [failure(a, 'new'), failure(c)]));
    expect(merged.failures).toEqual([failure(a, 'new'), failure(b), failure(c)]);
  });

  it('drops older events, takes a delta repeating the version (ETA refresh), and needs a snapshot first', () => {
    const base = snapshot(5);
    expect(applyEvent(base, progress(4, { running: 1 }))).toBeUndefined();
    expect(applyEvent(base, progress(5, {}, [], { etaSeconds: 12 }))!.etaSeconds).toBe(12);
    expect(applyEvent(undefined, progress(6, {}))).toBeUndefined();
    expect(applyEvent(base, { ...progress(6, {}), id: newId('batch') })).toBeUndefined();
    // Snapshots: newer wins, the same version again is nothing new unless it finishes the batch.
    expect(applyEvent(base, { type: 'snapshot', batch: snapshot(4) })).toBeUndefined();
    expect(applyEvent(base, { type: 'snapshot', batch: snapshot(5) })).toBeUndefined();
    expect(applyEvent(base, { type: 'snapshot', batch: snapshot(6) })!.version).toBe(6);
    const done = snapshot(7, { status: 'finished', finishedAt: '2026-01-01T00:00:09.000Z' });
    expect(applyEvent(done, progress(7, {}))).toBeUndefined();
  });
});

/** A minimal server: GET the batch (a snapshot), and a WebSocket that sends `script` once open. */
async function fakeControlPlane(initial: BatchSnapshot, script: BatchEvent[]): Promise<Server> {
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ batch: initial }));
  });
  server.on('upgrade', (req, socket) => {
    const accept = createHash('sha1').update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    for (const ev of script) socket.write(textFrame(JSON.stringify(ev)));
    socket.on('data', () => socket.destroy()); // the client's close frame
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

/** One unmasked WebSocket text frame (server to client). */
function textFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  const n = payload.length;
  const head = n < 126 ? Buffer.from([0x81, n]) : n < 65536 ? Buffer.from([0x81, 126, n >> 8, n & 255]) : Buffer.concat([Buffer.from([0x81, 127]), bigLength(n)]);
  return Buffer.concat([head, payload]);
}

function bigLength(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

let server: Server | undefined;
afterEach(() => {
  server?.close();
  server?.closeAllConnections();
});

describe('watchBatch with pushed deltas', () => {
  it('shows each delta merged into the latest snapshot, skips stale ones, and ends on the final snapshot', async () => {
    const final = snapshot(7, {
      status: 'finished',
      counts: { total: 3, created: 0, queued: 0, running: 0, succeeded: 1, failed: 2, canceled: 0, reused: 0 },
      startedAt: '2026-01-01T00:00:01.000Z',
      finishedAt: '2026-01-01T00:00:09.000Z',
      etaSeconds: 0,
      failures: [failure(a, 'again'), failure(b)],
    });
    server = await fakeControlPlane(snapshot(1), [
      { type: 'snapshot', batch: snapshot(1) },
      progress(3, { queued: 2, running: 1 }),
      progress(2, { queued: 3 }), // late: dropped
      progress(4, { queued: 1, running: 1, failed: 1 }, [failure(a)]),
      progress(4, { queued: 1, running: 1, failed: 1 }, [], { etaSeconds: 9 }), // a refresh
      progress(6, { queued: 0, running: 1, succeeded: 1, failed: 1 }, [failure(a, 'again')]), // the same execution again
      { type: 'snapshot', batch: final },
    ]);
    const { port } = server.address() as AddressInfo;
    const client = new RGridClient({ baseUrl: `http://127.0.0.1:${port}`, token: 'rgrid_sk_test' }, { onRetry: () => {} });
    const seen: BatchSnapshot[] = [];
    const last = await watchBatch(client, batchId, { onSnapshot: (s) => seen.push(structuredClone(s)), pollMs: 60_000, openPollMs: 60_000 });

    expect(last).toEqual(final);
    expect(seen.map((s) => [s.version, s.counts.queued, s.counts.running, s.counts.failed, s.etaSeconds])).toEqual([
      [1, 3, 0, 0, null],
      [3, 2, 1, 0, 30],
      [4, 1, 1, 1, 30],
      [4, 1, 1, 1, 9],
      [6, 0, 1, 1, 30],
      [7, 0, 0, 2, 0],
    ]);
    expect(seen[2]!.failures).toEqual([failure(a)]);
    expect(seen[4]!.failures).toEqual([failure(a, 'again')]);
    // Fixed fields survive the deltas.
    for (const s of seen) expect(s).toMatchObject({ id: batchId, name: 'fake', metadata: { k: 'v' }, createdAt: '2026-01-01T00:00:00.000Z' });
  });
});
