// The retry layer against a real HTTP server on loopback that fails on purpose (no mocks).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RGridClient } from './client.js';
import { ApiError, NetworkError } from './http.js';
import { delayFor, IDEMPOTENT } from './retry.js';

const EXEC_ID = 'exec_aaaaaaaaaaaaaaaaaaaaaaaa';
let server: Server;
let base: string;
/** Status codes to answer with, in order; then 200 with a whoami body. */
let script: number[] = [];
let hits = 0;

beforeAll(async () => {
  server = createServer((req, res) => {
    hits++;
    const status = script.shift() ?? 200;
    res.setHeader('content-type', 'application/json');
    if (status === 200) {
      res.end(JSON.stringify({ account: { id: 'acct_1', name: 'n' }, apiKey: { id: 'key_1', prefix: 'rgrid_sk_abcdef' } }));
      return;
    }
    if (status === 429) res.setHeader('retry-after', '0');
    res.statusCode = status;
    res.end(JSON.stringify({ error: { code: status === 400 ? 'bad_request' : status === 429 ? 'rate_limited' : 'unavailable', message: `status ${status}`, hint: 'h' } }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((r) => server.close(() => r())));

function client(notes: string[], baseUrl = base) {
  // random() = 0 → the shortest jittered delays (half of the exponential step).
  return new RGridClient({ baseUrl, token: 'rgrid_sk_x' }, { onRetry: (m) => notes.push(m), random: () => 0 });
}

describe('retry policy', () => {
  it('retries 5xx and 429 on idempotent calls, announcing each wait', async () => {
    script = [503, 429, 500];
    hits = 0;
    const notes: string[] = [];
    const who = await client(notes).whoami();
    expect(who.account.id).toBe('acct_1');
    expect(hits).toBe(4);
    expect(notes).toHaveLength(3);
    expect(notes[0]).toMatch(/^Retrying in 0\.3s: the server answered 503 \(status 503\)…$/);
    expect(notes[1]).toMatch(/rate limited/);
  });

  it('does not retry a 4xx: the same request would get the same answer', async () => {
    script = [400];
    hits = 0;
    const notes: string[] = [];
    await expect(client(notes).whoami()).rejects.toMatchObject({ status: 400, code: 'bad_request', message: 'status 400', hint: 'h' });
    expect(hits).toBe(1);
    expect(notes).toEqual([]);
  });

  it('never retries a create after a 5xx (it may have created something)', async () => {
    script = [502];
    hits = 0;
    const notes: string[] = [];
    const err = await client(notes)
      .create({ script: { name: 'a.py', sha256: 'a'.repeat(64), size: 1 } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(hits).toBe(1);
    expect(notes).toEqual([]);
  });

  it('gives up after its budget and keeps the last error', async () => {
    script = [503, 503, 503, 503, 503];
    hits = 0;
    const err = await client([]).get(EXEC_ID).catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 503 });
    expect(hits).toBe(IDEMPOTENT.tries);
  });

  it('retries refused connections, saying the control plane is unreachable', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const notes: string[] = [];
    const err = await client(notes, `http://127.0.0.1:${port}`).whoami().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetworkError);
    expect((err as NetworkError).message).toMatch(/Cannot reach the control plane at http:\/\/127\.0\.0\.1:\d+ \(connection refused\)/);
    expect(notes.length).toBe(IDEMPOTENT.tries - 1);
    expect(notes[0]).toMatch(/^Retrying in 0\.3s: control plane unreachable \(connection refused\)…$/);
  });

  it('backs off exponentially with jitter, capped, honoring Retry-After', () => {
    const p = { ...IDEMPOTENT, baseDelayMs: 1000, maxDelayMs: 4000 };
    expect([1, 2, 3, 4].map((n) => delayFor(p, n, new Error(), () => 1))).toEqual([1000, 2000, 4000, 4000]);
    expect(delayFor(p, 1, new Error(), () => 0)).toBe(500);
    expect(delayFor(p, 1, new ApiError(429, 'rate_limited', 'x', undefined, undefined, 7), () => 0)).toBe(7000);
  });
});
