import { createServer, type Server, type ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiTimeoutError, RunnerApi } from './api.js';
import { isRetryable } from './retry.js';

/**
 * A real HTTP server that accepts every request and never answers: what a runner sees when the
 * path to the control plane drops packets after the connection was made (F1).
 */
let server: Server;
let url: string;
const hanging: ServerResponse[] = [];

beforeAll(async () => {
  server = createServer((_req, res) => void hanging.push(res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(async () => {
  for (const res of hanging) res.destroy();
  server.close();
});

describe('RunnerApi against a control plane that never answers', () => {
  it('a heartbeat gives up after the timeout it is given, with a retryable error', async () => {
    const api = new RunnerApi(url, 'token');
    const t0 = Date.now();
    const err = await api.heartbeat({ activeJobs: 1, draining: false, jobs: [{ executionId: 'exec_x', attempt: 1, shard: 3 }] }, 300).catch((e: unknown) => e);
    const ms = Date.now() - t0;
    expect(err).toBeInstanceOf(ApiTimeoutError);
    expect((err as Error).message).toMatch(/did not answer \/runner\/v1\/heartbeat within 300 ms/);
    expect(ms).toBeGreaterThanOrEqual(250);
    expect(ms).toBeLessThan(5000);
    expect(isRetryable(err)).toBe(true);
  });

  it("the caller's own abort is not turned into a timeout (and is not retried)", async () => {
    const api = new RunnerApi(url, 'token');
    const ctl = new AbortController();
    setTimeout(() => ctl.abort(), 100);
    const err = await api.claim({ maxJobs: 1, waitSeconds: 1 }, ctl.signal).catch((e: unknown) => e);
    expect(err).not.toBeInstanceOf(ApiTimeoutError);
    expect(isRetryable(err)).toBe(false);
  });
});
