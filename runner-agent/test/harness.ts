/**
 * A real stack for runner tests: the control plane in Miniflare (workerd, D1, Durable Objects),
 * the signature-verifying S3 store on loopback, and an account, pool and registration token made
 * through the admin API. Helpers submit executions the way the CLI does (create → PUT → submit).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { startLocalControlPlane, type LocalControlPlane } from '../../control-plane/local/miniflare.js';
import { startS3Store, type S3Store } from '../../cli/dev/s3-store.js';
import type { CreateExecutionRequest, Execution, ListArtifactsResponse } from '../../shared/api/executions.js';
import { isFinal } from '../../shared/lifecycle.js';
import { loadRunnerConfig, type RunnerConfig } from '../src/config.js';

export const PIP_INDEX_URL = process.env.RGRID_PIP_INDEX_URL ?? 'http://127.0.0.1:3141/simple/';

export interface TestStack {
  url: string;
  apiKey: string;
  registrationToken: string;
  pool: string;
  dir: string;
  cp: LocalControlPlane;
  s3: S3Store;
  stop(): Promise<void>;
  runnerConfig(name: string, overrides?: Record<string, string>): RunnerConfig;
}

export async function startTestStack(opts: { leaseSeconds?: number; maxAttempts?: number } = {}): Promise<TestStack> {
  const dir = await mkdtemp(join(tmpdir(), 'rgrid-runner-it-'));
  const secret = randomBytes(16).toString('hex');
  const creds = { bucket: 'rgrid', region: 'us-east-1', accessKeyId: 'local', secretAccessKey: randomBytes(16).toString('hex') };
  const s3 = await startS3Store({ port: 0, dataDir: join(dir, 's3'), ...creds });
  const cp = await startLocalControlPlane({
    dataDir: join(dir, 'cp'),
    bindings: {
      ADMIN_SECRET: secret,
      S3_ENDPOINT: s3.endpoint,
      S3_BUCKET: creds.bucket,
      S3_REGION: creds.region,
      S3_ACCESS_KEY_ID: creds.accessKeyId,
      S3_SECRET_ACCESS_KEY: creds.secretAccessKey,
      LEASE_SECONDS: String(opts.leaseSeconds ?? 30),
      MAX_ATTEMPTS: String(opts.maxAttempts ?? 3),
    },
  });
  const admin = async (path: string, body: unknown) => {
    const r = await fetch(cp.url + '/admin/v1' + path, { method: 'POST', headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect(r.status, path).toBeLessThan(300);
    return r.json() as Promise<any>;
  };
  const account = await admin('/accounts', { name: 'runner-tests' });
  const key = await admin(`/accounts/${account.account.id}/api-keys`, {});
  await admin('/pools', { name: 'default' });
  const reg = await admin('/pools/default/registration-tokens', {});
  return {
    url: cp.url,
    apiKey: key.key,
    registrationToken: reg.token,
    pool: 'default',
    dir,
    cp,
    s3,
    async stop() {
      await cp.dispose();
      await s3.close();
      await rm(dir, { recursive: true, force: true });
    },
    runnerConfig(name, overrides = {}) {
      const r = loadRunnerConfig({
        flags: { 'api-url': cp.url, 'registration-token': reg.token, 'work-dir': join(dir, 'runners', name), slots: '2', name, 'pip-index-url': PIP_INDEX_URL, 'claim-wait': '2', ...overrides },
        env: {},
      });
      if (!r.success) throw r.error;
      return r.data;
    },
  };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

export interface SubmitSpec {
  script: string;
  scriptName?: string;
  inputs?: { path: string; content: Buffer | string; arg?: number }[];
  request?: Partial<CreateExecutionRequest>;
}

async function api(stack: TestStack, method: string, path: string, body?: unknown) {
  const r = await fetch(stack.url + '/api/v1' + path, {
    method,
    headers: { authorization: `Bearer ${stack.apiKey}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = (await r.json()) as any;
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(json)}`);
  return json;
}

export async function submit(stack: TestStack, spec: SubmitSpec): Promise<Execution> {
  const script = Buffer.from(spec.script);
  const inputs = (spec.inputs ?? []).map((i) => ({ ...i, bytes: Buffer.from(i.content) }));
  const blobs = new Map<string, Buffer>([[sha(script), script], ...inputs.map((i) => [sha(i.bytes), i.bytes] as [string, Buffer])]);
  const created = await api(stack, 'POST', '/executions', {
    script: { name: spec.scriptName ?? 'main.py', sha256: sha(script), size: script.length },
    inputs: inputs.map((i) => ({ path: i.path, sha256: sha(i.bytes), size: i.bytes.length, ...(i.arg !== undefined ? { arg: i.arg } : {}) })),
    ...spec.request,
  });
  for (const u of created.uploads) {
    const r = await fetch(u.url, { method: "PUT", body: new Uint8Array(blobs.get(u.sha256)!) });
    expect(r.status).toBe(200);
  }
  return (await api(stack, 'POST', `/executions/${created.execution.id}/submit`)).execution;
}

export async function getExecution(stack: TestStack, id: string): Promise<Execution> {
  return (await api(stack, 'GET', `/executions/${id}`)).execution;
}

export async function waitFinal(stack: TestStack, id: string, timeoutMs = 60_000): Promise<Execution> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const e = await getExecution(stack, id);
    if (isFinal(e.status)) return e;
    if (Date.now() > deadline) throw new Error(`execution ${id} still ${e.status} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

export async function waitStatus(stack: TestStack, id: string, status: string, timeoutMs = 30_000): Promise<Execution> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const e = await getExecution(stack, id);
    if (e.status === status) return e;
    if (Date.now() > deadline) throw new Error(`execution ${id} is ${e.status}, not ${status}, after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function artifacts(stack: TestStack, id: string): Promise<ListArtifactsResponse['artifacts']> {
  return (await api(stack, 'GET', `/executions/${id}/artifacts`)).artifacts;
}

export async function artifactText(a: ListArtifactsResponse['artifacts'][number]): Promise<Buffer> {
  const r = await fetch(a.download!.url);
  return Buffer.from(await r.arrayBuffer());
}

export async function logsText(stack: TestStack, id: string, stream?: string): Promise<string> {
  const r = await api(stack, 'GET', `/executions/${id}/logs${stream ? `?stream=${stream}` : ''}`);
  return r.chunks.map((c: { data: string }) => c.data).join('');
}
