/** Test helpers for the workerd tests: call the Worker, bootstrap accounts, pools and runners. */
import { exports } from 'cloudflare:workers';
import { expect } from 'vitest';
import { sha256Hex } from '../../shared/hashing.js';
import type { CreateExecutionRequest, CreateExecutionResponse, Execution } from '../../shared/api/executions.js';
import type { ClaimResponse, RegisterRunnerResponse } from '../../shared/api/runner.js';
import { TEST_S3 } from './constants.js';

export const BASE = 'http://rgrid.test';

export async function call(method: string, path: string, opts: { token?: string; body?: unknown; raw?: string; headers?: Record<string, string> } = {}) {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  let body: string | undefined;
  if (opts.raw !== undefined) body = opts.raw;
  else if (opts.body !== undefined) body = JSON.stringify(opts.body);
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await exports.default.fetch(new Request(BASE + path, { method, headers, body }));
  const text = await res.text();
  let json: any;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text, headers: res.headers };
}

export const admin = (method: string, path: string, body?: unknown) => call(method, `/admin/v1${path}`, { token: TEST_S3.adminSecret, body });

let counter = 0;
export function uniqueName(prefix: string): string {
  counter += 1;
  return `${prefix}-${Date.now().toString(36)}-${counter}-${Math.random().toString(36).slice(2, 6)}`;
}

export interface Tenant {
  accountId: string;
  key: string;
  keyId: string;
  pool: string;
  registrationToken: string;
}

export async function newTenant(pool = uniqueName('pool')): Promise<Tenant> {
  const acct = await admin('POST', '/accounts', { name: uniqueName('acct') });
  expect(acct.status).toBe(201);
  const key = await admin('POST', `/accounts/${acct.json.account.id}/api-keys`, { name: 'test' });
  expect(key.status).toBe(201);
  const p = await admin('POST', '/pools', { name: pool });
  expect([200, 201]).toContain(p.status);
  const reg = await admin('POST', `/pools/${pool}/registration-tokens`, {});
  expect(reg.status).toBe(201);
  return { accountId: acct.json.account.id, key: key.json.key, keyId: key.json.apiKey.id, pool, registrationToken: reg.json.token };
}

export async function newRunner(t: Tenant, name = 'runner'): Promise<RegisterRunnerResponse> {
  const r = await call('POST', '/runner/v1/register', { body: { registrationToken: t.registrationToken, name, slots: 2 } });
  expect(r.status).toBe(201);
  return r.json;
}

const enc = new TextEncoder();

export interface Blob {
  bytes: Uint8Array;
  sha256: string;
  size: number;
}

export async function blob(content: string | Uint8Array): Promise<Blob> {
  const bytes = typeof content === 'string' ? enc.encode(content) : content;
  return { bytes, sha256: await sha256Hex(bytes), size: bytes.length };
}

/** PUTs bytes to a presigned URL on the loopback S3 store (the real thing, verifying signatures). */
export async function put(url: string, bytes: Uint8Array): Promise<Response> {
  return fetch(url, { method: 'PUT', body: bytes });
}

export async function createExecution(t: Tenant, overrides: Partial<CreateExecutionRequest> = {}, files: Blob[] = []): Promise<CreateExecutionResponse> {
  const script = files[0] ?? (await blob(`print("hello ${Math.random()}")`));
  const res = await call('POST', '/api/v1/executions', {
    token: t.key,
    body: { script: { name: 'main.py', sha256: script.sha256, size: script.size }, pool: t.pool, ...overrides },
  });
  expect(res.status, res.text).toBe(201);
  return res.json;
}

/** Create, upload what is missing, submit: an execution queued in the tenant's pool. */
export async function queuedExecution(t: Tenant, overrides: Partial<CreateExecutionRequest> = {}): Promise<Execution> {
  const script = await blob(`print("job ${Math.random()}")`);
  const created = await createExecution(t, overrides, [script]);
  for (const u of created.uploads) {
    expect(u.sha256).toBe(script.sha256);
    const r = await put(u.url, script.bytes);
    expect(r.status).toBe(200);
  }
  const sub = await call('POST', `/api/v1/executions/${created.execution.id}/submit`, { token: t.key });
  expect(sub.status, sub.text).toBe(200);
  // Queued, or already running when a waiting long-poll claimed it before the answer.
  expect(['queued', 'running']).toContain(sub.json.execution.status);
  return sub.json.execution;
}

/**
 * Claims as a runner does: the answer is acknowledged at once by a heartbeat listing the jobs
 * (which starts their leases proper); `ack: false` leaves them as offers nobody confirmed.
 */
export async function claim(runnerToken: string, body: Record<string, unknown> = {}, opts: { ack?: boolean } = {}): Promise<ClaimResponse> {
  const r = await call('POST', '/runner/v1/claim', { token: runnerToken, body: { waitSeconds: 0, ...body } });
  expect(r.status, r.text).toBe(200);
  if (opts.ack !== false && r.json.jobs.length) {
    const hb = await heartbeatJobs(runnerToken, r.json.jobs);
    expect(hb.stale).toEqual([]);
  }
  return r.json;
}

/** The runner heartbeat for these jobs: renews their leases; answers cancels and stale ones. */
export async function heartbeatJobs(runnerToken: string, jobs: { executionId: string; attempt: number; shard?: number }[]) {
  const r = await call('POST', '/runner/v1/heartbeat', {
    token: runnerToken,
    body: { activeJobs: jobs.length, jobs: jobs.map((j) => ({ executionId: j.executionId, attempt: j.attempt, shard: j.shard ?? 0 })) },
  });
  expect(r.status, r.text).toBe(200);
  return r.json as { drain: boolean; cancel: string[]; stale: { executionId: string; currentAttempt: number; status: string }[]; timing: { leaseSeconds: number; heartbeatSeconds: number; offerSeconds: number } };
}

/** One job's view of a heartbeat: whether to cancel it, or its stale details. */
export async function jobHeartbeat(runnerToken: string, executionId: string, attempt: number) {
  const hb = await heartbeatJobs(runnerToken, [{ executionId, attempt }]);
  return { cancel: hb.cancel.includes(executionId), stale: hb.stale.find((s) => s.executionId === executionId), timing: hb.timing };
}

export async function getExecution(t: Tenant, id: string): Promise<Execution> {
  const r = await call('GET', `/api/v1/executions/${id}`, { token: t.key });
  expect(r.status).toBe(200);
  return r.json.execution;
}
