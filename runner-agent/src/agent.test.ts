import { createHash } from 'node:crypto';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import type { z } from 'zod';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { errorEnvelope } from '../../shared/errors.js';
import { newId } from '../../shared/ids.js';
import {
  AppendLogsRequest,
  ClaimRequest,
  CompleteManyRequest,
  PresignOutputsRequest,
  RegisterRunnerRequest,
  ReleaseRequest,
  RunnerHeartbeatRequest,
  type Job,
  type LeaseTiming,
  type RunnerHeartbeatResponse,
} from '../../shared/api/runner.js';
import { RunnerAgent } from './agent.js';
import { loadRunnerConfig } from './config.js';
import type { ContainerRuntime, RunJobSpec } from './docker/runtime.js';

/**
 * The real RunnerAgent (claim loop, heartbeat, batcher, JobRun) against a fake control plane that
 * speaks protocol v2 on 127.0.0.1 and checks every request body with the shared schemas, and a
 * fake container runtime (no Docker): the wiring between the pieces, end to end.
 */
const SCRIPT = Buffer.from('print("hello")\n');
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const TIMING: LeaseTiming = { leaseSeconds: 8, heartbeatSeconds: 1, offerSeconds: 8 };

interface Received {
  path: string;
  at: number;
  body: any;
}

let server: Server;
let url: string;
let dir: string;
let received: Received[];
/** Answers the n-th claim (1-based); undefined → an empty answer after the long poll's wait. */
let claimAnswer: (n: number, body: any) => Promise<Job[]> | undefined;
/** Changes a heartbeat answer. */
let heartbeatAnswer: (body: any) => Partial<RunnerHeartbeatResponse>;
let agent: RunnerAgent | undefined;
/** Per execution: the fake container ends when this resolves (or when it is stopped). */
let containers: Map<string, { started: () => void; exit: Promise<void> }>;

const schemas: Record<string, z.ZodType> = {
  '/runner/v1/register': RegisterRunnerRequest,
  '/runner/v1/heartbeat': RunnerHeartbeatRequest,
  '/runner/v1/claim': ClaimRequest,
  '/runner/v1/complete': CompleteManyRequest,
};
function schemaFor(path: string): z.ZodType | undefined {
  if (schemas[path]) return schemas[path];
  if (path.endsWith('/logs')) return AppendLogsRequest;
  if (path.endsWith('/outputs/presign')) return PresignOutputsRequest;
  if (path.endsWith('/release')) return ReleaseRequest;
  return undefined;
}

const json = (res: ServerResponse, status: number, body: unknown): void => void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));

async function answer(path: string, body: any, res: ServerResponse): Promise<void> {
  if (path === '/blob/script') return void res.writeHead(200).end(SCRIPT);
  const schema = schemaFor(path);
  if (!schema) return json(res, 404, errorEnvelope('not_found', `no route ${path}`));
  const parsed = schema.safeParse(body);
  if (!parsed.success) return json(res, 400, errorEnvelope('bad_request', parsed.error.message));
  received.push({ path, at: Date.now(), body });
  if (path === '/runner/v1/register') return json(res, 201, { runnerId: newId('runner'), runnerToken: 'rgrid_rt_test', pool: 'default' });
  if (path === '/runner/v1/heartbeat') return json(res, 200, { ok: true, drain: false, timing: TIMING, cancel: [], stale: [], ...heartbeatAnswer(body) });
  if (path === '/runner/v1/claim') {
    const n = received.filter((r) => r.path === path).length;
    const jobs = (await claimAnswer(n, body)) ?? (await new Promise<Job[]>((r) => setTimeout(() => r([]), body.waitSeconds * 1000)));
    return json(res, 200, { jobs, timing: TIMING });
  }
  if (path === '/runner/v1/complete') {
    return json(res, 200, { results: body.completions.map((c: any) => ({ executionId: c.executionId, ok: true, status: c.outcome === 'succeeded' ? 'succeeded' : 'canceled', duplicate: false })) });
  }
  if (path.endsWith('/logs')) return json(res, 200, { accepted: body.chunks.length, duplicates: 0, truncated: false });
  if (path.endsWith('/outputs/presign')) return json(res, 200, { uploads: [] }); // every blob "already stored"
  return json(res, 200, { ok: true });
}

function job(shard: number): Job {
  const expiresAt = new Date(Date.now() + 3600_000).toISOString();
  return {
    executionId: newId('execution'),
    attempt: 1,
    shard,
    leaseExpiresAt: expiresAt,
    runtime: 'python3.11',
    script: { name: 'main.py', sha256: sha(SCRIPT), size: SCRIPT.length, download: { method: 'GET', url: `${url}/blob/script`, headers: {}, expiresAt } },
    scriptKey: sha('script'),
    envKey: sha('env'),
    requirements: null,
    rebuildEnv: false,
    inputs: [],
    remoteInputs: [],
    args: [],
    env: {},
    limits: { timeoutSeconds: 60, memoryMb: 256, cpus: 1 },
  };
}

/** A container that prints, writes one output and exits when its gate opens, or when stopped. */
const runtime: ContainerRuntime = {
  ping: async () => undefined,
  imageExists: async () => true,
  removeContainersByLabel: async () => 0,
  async runJob(spec: RunJobSpec) {
    const id = spec.labels['rgrid.execution']!;
    const c = containers.get(id);
    const stopped = new Promise<void>((r) => (spec.signal?.aborted ? r() : spec.signal?.addEventListener('abort', () => r())));
    spec.onStdout(Buffer.from(`hello from ${id}\n`));
    await writeFile(join(spec.workDir, 'out.txt'), id);
    c?.started();
    await Promise.race([c?.exit ?? Promise.resolve(), stopped]);
    const canceled = !!spec.signal?.aborted;
    return { exitCode: canceled ? null : 0, timedOut: false, oomKilled: false, canceled, durationMs: 5 };
  },
};
const docker = { ping: async () => 'OK', listImages: async () => [{ Labels: { 'rgrid.env-key': 'e'.repeat(64) } }] } as unknown as Docker;

function container(id: string): { started: Promise<void>; exit: () => void } {
  let started!: () => void;
  let exit!: () => void;
  const s = new Promise<void>((r) => (started = r));
  containers.set(id, { started, exit: new Promise<void>((r) => (exit = r)) });
  return { started: s, exit };
}

async function until<T>(what: string, fn: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; received: ${received.map((r) => r.path).join(', ')}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function startAgent(): RunnerAgent {
  const cfg = loadRunnerConfig({ flags: { 'api-url': url, 'registration-token': 'rgrid_reg_testtesttest', 'work-dir': dir, slots: '2', name: 't', 'claim-wait': '1' }, env: {} });
  if (!cfg.success) throw cfg.error;
  agent = new RunnerAgent(cfg.data, { docker, runtime: () => runtime, log: (l) => process.env.AGENT_LOG && console.log(l) });
  return agent;
}

const of = (path: string) => received.filter((r) => r.path === path);

beforeEach(async () => {
  received = [];
  containers = new Map();
  claimAnswer = () => undefined;
  heartbeatAnswer = () => ({});
  dir = await mkdtemp(join(tmpdir(), 'rgrid-agent-'));
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c));
    req.on('end', () => void answer(req.url!, body ? JSON.parse(body) : undefined, res));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

afterEach(async () => {
  await agent?.kill();
  agent = undefined;
  server.closeAllConnections();
  server.close();
  await rm(dir, { recursive: true, force: true });
});

describe('RunnerAgent on protocol v2 (fake control plane, fake containers)', () => {
  it('claims for both slots at once, acknowledges with the next heartbeat, names the shard on every job call, completes in a batch, and cancels from the heartbeat answer', async () => {
    const [a, b] = [job(9), job(4)];
    const ca = container(a.executionId);
    container(b.executionId); // b runs until it is canceled
    claimAnswer = (n) => (n === 1 ? Promise.resolve([a, b]) : undefined);
    heartbeatAnswer = (hb) => (hb.jobs.some((j: any) => j.executionId === b.executionId) ? { cancel: [b.executionId] } : {});
    await startAgent().start();

    const stored = JSON.parse(await readFile(join(dir, 'runner.json'), 'utf8'));
    expect(Object.keys(stored).sort()).toEqual(['apiUrl', 'pool', 'runnerId', 'runnerToken']); // no timing
    const firstClaim = of('/runner/v1/claim')[0] ?? (await until('a claim', () => of('/runner/v1/claim')[0]));
    expect(firstClaim.body).toMatchObject({ maxJobs: 2, waitSeconds: 1, envKeys: ['e'.repeat(64)] });

    // The ack: the next regular heartbeat (at most one 1 s interval later) names both jobs with their shards.
    const ack = await until('the ack heartbeat', () => of('/runner/v1/heartbeat').find((h) => h.body.jobs.length));
    expect(ack.body.jobs).toEqual([
      { executionId: a.executionId, attempt: 1, shard: 9 },
      { executionId: b.executionId, attempt: 1, shard: 4 },
    ]);
    expect(ack.at - firstClaim.at).toBeLessThan(2000);
    expect(ack.body.activeJobs).toBe(2);

    await ca.started;
    ca.exit();
    const completions = await until('both completions', () => {
      const all = of('/runner/v1/complete').flatMap((r) => r.body.completions);
      return all.length >= 2 ? all : undefined;
    });
    const byId = new Map(completions.map((c: any) => [c.executionId, c]));
    expect(byId.get(a.executionId)).toMatchObject({ attempt: 1, shard: 9, outcome: 'succeeded', outputs: [expect.objectContaining({ path: 'out.txt' })] });
    expect(byId.get(b.executionId)).toMatchObject({ attempt: 1, shard: 4, outcome: 'failed', failureKind: 'canceled', outputs: [] });
    expect(received.some((r) => /\/executions\/[^/]+\/complete$/.test(r.path))).toBe(false); // the single route is not used

    const jobCalls = received.filter((r) => r.path.startsWith('/runner/v1/executions/'));
    expect(jobCalls.some((r) => r.path.endsWith('/logs'))).toBe(true);
    expect(jobCalls.some((r) => r.path.endsWith('/outputs/presign'))).toBe(true);
    for (const r of jobCalls) {
      const id = r.path.split('/')[4];
      expect([id, r.body.attempt, r.body.shard]).toEqual([id, 1, id === a.executionId ? 9 : 4]);
    }

    await agent!.drain();
    const last = of('/runner/v1/heartbeat').at(-1)!;
    expect(last.body).toMatchObject({ draining: true, jobs: [] });
  });

  it('kill(): a running job and a job that arrives from the open claim are both released with their shard', async () => {
    const running = job(5);
    const late = job(3);
    const c = container(running.executionId);
    let answerLate!: () => void;
    claimAnswer = (n) => {
      if (n === 1) return Promise.resolve([running]);
      if (n === 2) return new Promise((r) => (answerLate = () => r([late])));
      return undefined;
    };
    await startAgent().start();
    await c.started;
    await until('the second claim', () => of('/runner/v1/claim')[1]);
    const killed = agent!.kill();
    await until('the running job released', () => of(`/runner/v1/executions/${running.executionId}/release`)[0]);
    answerLate();
    await killed;
    expect(of(`/runner/v1/executions/${running.executionId}/release`).map((r) => r.body)).toEqual([{ attempt: 1, shard: 5 }]);
    expect(of(`/runner/v1/executions/${late.executionId}/release`).map((r) => r.body)).toEqual([{ attempt: 1, shard: 3 }]);
    expect(of('/runner/v1/complete')).toEqual([]); // nothing reported for either
    expect(of('/runner/v1/heartbeat').some((h) => h.body.jobs.some((j: any) => j.executionId === late.executionId))).toBe(false);
  });
});
