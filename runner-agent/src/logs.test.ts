import { createServer, type Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { errorEnvelope } from '../../shared/errors.js';
import { LIMITS } from '../../shared/limits.js';
import type { LogChunk } from '../../shared/api/runner.js';
import { RunnerApi } from './api.js';
import { LogShipper } from './logs.js';

/**
 * A real HTTP server in place of the control plane's logs endpoint: it refuses bodies over
 * `limit` bytes with 413 (as the API does above 1 MiB) and records every chunk it accepts.
 */
let server: Server;
let api: RunnerApi;
let dir: string;
let limit = LIMITS.maxJsonBodyBytes;
let received: LogChunk[] = [];
let bodySizes: number[] = [];
let refused = 0;
let refs: string[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rgrid-logs-'));
  server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const body = Buffer.concat(parts);
      res.setHeader('content-type', 'application/json');
      if (body.length > limit) {
        refused++;
        return res.writeHead(413).end(JSON.stringify(errorEnvelope('payload_too_large', `body over ${limit} bytes`)));
      }
      bodySizes.push(body.length);
      const { chunks, attempt, shard } = JSON.parse(body.toString()) as { chunks: LogChunk[]; attempt: number; shard: number };
      received.push(...chunks);
      refs.push(`${attempt}/${shard}`);
      res.writeHead(200).end(JSON.stringify({ accepted: chunks.length, duplicates: 0, truncated: false }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  api = new RunnerApi(`http://127.0.0.1:${(server.address() as { port: number }).port}`, 'token');
});
afterAll(async () => {
  server.close();
  await rm(dir, { recursive: true, force: true });
});
beforeEach(() => {
  limit = LIMITS.maxJsonBodyBytes;
  received = [];
  bodySizes = [];
  refused = 0;
  refs = [];
});

const text = (chunks: LogChunk[], stream: string) => chunks.filter((c) => c.stream === stream).map((c) => c.data).join('');

describe('LogShipper', () => {
  it('ships a burst far over the request limit in requests under it: everything up to the cap, in order, and the truncation notice', async () => {
    const cap = 4 * 1024 * 1024;
    const logs = new LogShipper(api, 'exec_x', { attempt: 1, shard: 0 }, await mkdtemp(join(dir, 'burst-')), cap);
    logs.write('stdout', Buffer.alloc(20 * 1024 * 1024, 'x'));
    await logs.close();
    expect(refused).toBe(0);
    expect(Math.max(...bodySizes)).toBeLessThanOrEqual(512 * 1024 + 1024);
    expect(received.map((c) => c.seq)).toEqual(received.map((_, i) => i));
    expect(text(received, 'stdout').length).toBe(cap);
    expect(text(received, 'system')).toMatch(/live log truncated/);
  });

  it('counts serialized bytes, not characters: control characters that JSON escapes sixfold still fit', async () => {
    const logs = new LogShipper(api, 'exec_y', { attempt: 1, shard: 0 }, await mkdtemp(join(dir, 'ctl-')), 10 * 1024 * 1024);
    logs.write('stderr', Buffer.alloc(3 * 1024 * 1024, 1));
    await logs.close();
    expect(refused).toBe(0);
    expect(text(received, 'stderr').length).toBe(3 * 1024 * 1024);
  });

  it('splits a batch the API refuses as too large (413) instead of dropping it', async () => {
    limit = 200 * 1024; // a stricter server than the shipper assumes
    const logs = new LogShipper(api, 'exec_z', { attempt: 2, shard: 7 }, await mkdtemp(join(dir, 'split-')), 10 * 1024 * 1024);
    logs.write('stdout', Buffer.alloc(2 * 1024 * 1024, 'y'));
    await logs.close();
    expect(refused).toBeGreaterThan(0);
    expect(text(received, 'stdout').length).toBe(2 * 1024 * 1024);
    expect(new Set(refs)).toEqual(new Set(['2/7'])); // every push names the attempt and its shard
    expect(received.map((c) => c.seq)).toEqual(received.map((_, i) => i));
  });
});
