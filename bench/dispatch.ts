/**
 * Dispatch: how fast the control plane hands out and closes jobs, with no containers. Simulated
 * runners (plain HTTP clients in this process) speak the runner protocol as the runner agent
 * does: per runner ONE claim loop claiming for all its free slots (`maxJobs` = free slots, one
 * long-poll), a heartbeat every `timing.heartbeatSeconds` listing every job it holds (renewal, and
 * the acknowledgement of what it claimed since), "run" (no sleep by default) and complete, through a per-runner batcher that sends whatever
 * completions are queued whenever no complete request is in flight. A slot is free again when
 * its completion is answered. Jobs are created in bulk with the batch API and submitted.
 *
 *   npx tsx bench/dispatch.ts                           # 10,000 jobs, 20 runners × 8 slots
 *   BENCH_JOBS=1000 npx tsx bench/dispatch.ts           # quick check
 *
 * The last lines on stdout are the headline numbers, one per line:
 *   dispatch: jobs_per_second N              jobs / (first claim → last completion answered)
 *   dispatch: claim_p99_ms N                 claims that returned ≥ 1 job, as the client saw them
 *   dispatch: claim_max_ms N
 *   dispatch: cpu_per_job_over_health N      workerd CPU per job / workerd CPU per GET /health (same run)
 *   dispatch: d1_round_trips_per_job N       D1 round trips first claim → outbox drained, / jobs
 *
 * D1 round trips come from GET /admin/v1/pools/:pool/dispatch (every isolate's count since it
 * started). The measured window starts after the submit has answered (enqueue flushes the queued
 * state to D1 before it answers) and ends when every Dispatcher shard's outbox is empty after the
 * last completion: claim → heartbeat → complete → flush. Create and submit are reported
 * separately. The admin call's own round trips (it reads the pool row) are subtracted.
 *
 * Then (if BENCH_DISPATCH_COMPARE_JOBS > 0) an interleaved comparison of fleet shapes
 * (BENCH_DISPATCH_SHAPES, e.g. "20x8,40x4": runners × slots), rounds alternating, and the cost
 * per request of each runner route, one request at a time.
 *
 * Settings: BENCH_JOBS (10000), BENCH_DISPATCH_RUNNERS (20), BENCH_DISPATCH_SLOTS (8),
 * BENCH_DISPATCH_WAIT (claim waitSeconds, 5), BENCH_DISPATCH_RUN_MS (per job "run" time, 0),
 * BENCH_DISPATCH_HEALTH (GET /health requests for the CPU baseline, 2000),
 * BENCH_DISPATCH_COMPARE_JOBS (jobs per round of the comparison, 2000; 0 skips it),
 * BENCH_DISPATCH_COMPARE_ROUNDS (2 per shape), BENCH_DISPATCH_SHAPES ("20x8,40x4"),
 * BENCH_DISPATCH_ROUTE_SAMPLES (jobs for the per-route costs, 800; 0 skips it).
 */
import { createHash } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { Client } from 'undici';
import { MAX_BATCH_ITEMS_PER_REQUEST } from '../shared/api/batches.js';
import type { BlobUpload } from '../shared/api/common.js';
import type { ClaimResponse, CompleteManyResponse, Completion, Job, LeaseTiming, RegisterRunnerResponse, RunnerHeartbeatResponse } from '../shared/api/runner.js';
import { intEnv, strEnv } from './lib/env.js';
import { LoadSampler, loadAverage, machineInfo } from './lib/machine.js';
import { cpuDelta, cpuSnapshot, type CpuBreakdown } from './lib/cpu.js';
import { startBenchStack, type BenchStack } from './lib/stack.js';
import { jsonCall, putBytes } from './lib/api.js';
import { fmt, fmtMs, mapLimit, sleep, summarize, table, type Summary } from './lib/stats.js';
import { publish, runBench } from './lib/doc.js';

const JOBS = intEnv('BENCH_JOBS', 10_000);
const RUNNERS = intEnv('BENCH_DISPATCH_RUNNERS', 20);
const SLOTS = intEnv('BENCH_DISPATCH_SLOTS', 8);
const WAIT = intEnv('BENCH_DISPATCH_WAIT', 5);
const RUN_MS = intEnv('BENCH_DISPATCH_RUN_MS', 0, 0);
const HEALTH = intEnv('BENCH_DISPATCH_HEALTH', 2000);
const COMPARE_JOBS = intEnv('BENCH_DISPATCH_COMPARE_JOBS', 2000, 0);
const COMPARE_ROUNDS = intEnv('BENCH_DISPATCH_COMPARE_ROUNDS', 2);
const SHAPES = strEnv('BENCH_DISPATCH_SHAPES', '20x8,40x4')
  .split(',')
  .map((s) => {
    const m = /^(\d+)x(\d+)$/.exec(s.trim());
    if (!m) throw new Error(`BENCH_DISPATCH_SHAPES: "${s}" is not RUNNERSxSLOTS`);
    return { runners: Number(m[1]), slots: Number(m[2]) };
  });
const ROUTE_SAMPLES = intEnv('BENCH_DISPATCH_ROUTE_SAMPLES', 800, 0);
const FULL = JOBS === 10_000 && RUNNERS === 20 && SLOTS === 8 && RUN_MS === 0;
/** The issue's targets. */
const TARGETS = { jobsPerSecond: 500, claimP99Ms: 250, claimMaxMs: 2000, cpuOverHealth: 2, d1PerJob: 0.1 };
/** Before: the v1 core (maxJobs 1 per slot, per-job heartbeat and complete), docs/benchmarks.md of 2026-11-28. */
const BEFORE = { perSecond: 26, claimP50: '215 ms', claimP99: '3.1 s', claimMax: '39 s', cpuPerJobMs: 33.2, healthCpuMs: 1.2 };

const log = (line: string) => process.stderr.write(`[dispatch] ${line}\n`);

/** Connections the server closed under a request (retried: only claims, heartbeats and completions, all safe to repeat). */
let socketErrors = 0;

class Conn {
  private client: Client;
  constructor(private readonly baseUrl: string) {
    this.client = new Client(baseUrl, { pipelining: 1, keepAliveTimeout: 60_000 });
  }
  async post<T>(token: string | undefined, path: string, body: unknown, signal?: AbortSignal): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        const res = await this.client.request({
          path,
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
          body: JSON.stringify(body),
          headersTimeout: 120_000,
          bodyTimeout: 120_000,
          ...(signal ? { signal } : {}),
        });
        const text = await res.body.text();
        if (res.statusCode >= 300) throw new Error(`POST ${path}: HTTP ${res.statusCode}: ${text.slice(0, 300)}`);
        return JSON.parse(text) as T;
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (signal?.aborted || attempt >= 5 || (code !== 'UND_ERR_SOCKET' && code !== 'ECONNRESET')) throw err;
        socketErrors++;
        log(`${path}: ${code} (${(err as Error).message}); retrying`);
        // A fresh client for the retry; the old one is let go.
        const old = this.client;
        this.client = new Client(this.baseUrl, { pipelining: 1, keepAliveTimeout: 60_000 });
        void old.destroy().catch(() => undefined);
      }
    }
  }
  close(): Promise<void> {
    return this.client.close().catch(() => undefined);
  }
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

// ---------------------------------------------------------------- admin: D1 round trips

interface DispatchStats {
  d1RoundTrips: number;
  shards: { ready: number; leased: number; waiters: number; outbox: number }[];
}
/** Round trips the admin call itself makes (measured at start, subtracted per call in a window). */
let adminCallRoundTrips = 0;
let adminCalls = 0;
async function dispatchStats(bench: BenchStack): Promise<DispatchStats> {
  adminCalls++;
  return jsonCall<DispatchStats>(bench.stack.apiUrl, bench.stack.adminSecret, 'GET', `/admin/v1/pools/${encodeURIComponent(bench.stack.pool)}/dispatch`);
}
/** d1RoundTrips now, and the count of admin calls so far (for subtracting their own round trips). */
async function d1Mark(bench: BenchStack): Promise<{ trips: number; calls: number }> {
  const s = await dispatchStats(bench);
  return { trips: s.d1RoundTrips, calls: adminCalls };
}
const d1Between = (a: { trips: number; calls: number }, b: { trips: number; calls: number }) => b.trips - a.trips - (b.calls - a.calls) * adminCallRoundTrips;

/** Waits until every shard's outbox has reached D1 (and no job is leased): the run's D1 work is done. */
async function settled(bench: BenchStack): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const s = await dispatchStats(bench);
    if (s.shards.every((x) => x.outbox === 0 && x.leased === 0)) {
      // The batch trackers are told right after the D1 batch of the same flush.
      await sleep(300);
      return;
    }
    await sleep(100);
  }
  throw new Error('the Dispatcher outbox did not drain within 30 s');
}

// ---------------------------------------------------------------- jobs

interface Created {
  batchId: string;
  createMs: number;
  uploadMs: number;
  submitMs: number;
  requests: number;
  d1Create: number;
  d1Submit: number;
}

/** `jobs` executions in one batch, created in bulk (1,000 items per request), then submitted. */
async function createJobs(bench: BenchStack, jobs: number, tag: string): Promise<Created> {
  const script = Buffer.from(`print("dispatch bench ${tag}")\n`);
  const input = Buffer.from(`id,value\n1,${tag}\n`);
  const blobs = new Map([
    [sha(script), script],
    [sha(input), input],
  ]);
  const items = Array.from({ length: jobs }, (_, i) => ({ inputName: `job-${String(i + 1).padStart(5, '0')}.csv`, inputs: [{ path: 'in.csv', sha256: sha(input), size: input.length }] }));
  const m0 = await d1Mark(bench);
  const t0 = performance.now();
  const first = items.slice(0, MAX_BATCH_ITEMS_PER_REQUEST);
  const created = await bench.api.post<{ batch: { id: string }; uploads: BlobUpload[] }>('/batches', {
    name: `dispatch ${tag}`,
    template: { runtime: 'python3.11', script: { name: 'job.py', sha256: sha(script), size: script.length } },
    items: first,
  });
  const uploads = [...created.uploads];
  let requests = 1;
  for (let i = first.length; i < items.length; i += MAX_BATCH_ITEMS_PER_REQUEST) {
    const more = await bench.api.post<{ uploads: BlobUpload[] }>(`/batches/${created.batch.id}/items`, { items: items.slice(i, i + MAX_BATCH_ITEMS_PER_REQUEST) });
    uploads.push(...more.uploads);
    requests++;
  }
  const t1 = performance.now();
  for (const u of new Map(uploads.map((u) => [u.sha256, u])).values()) await putBytes(u.url, blobs.get(u.sha256)!, u.headers);
  const t2 = performance.now();
  const m1 = await d1Mark(bench);
  await bench.api.post(`/batches/${created.batch.id}/submit`);
  const t3 = performance.now();
  const m2 = await d1Mark(bench);
  return { batchId: created.batch.id, createMs: t1 - t0, uploadMs: t2 - t1, submitMs: t3 - t2, requests: requests + 1, d1Create: d1Between(m0, m1), d1Submit: d1Between(m1, m2) };
}

// ---------------------------------------------------------------- the simulated fleet

interface SimRunner {
  name: string;
  token: string;
  slots: number;
  claimConn: Conn;
  heartbeatConn: Conn;
  completeConn: Conn;
}

async function registerRunners(bench: BenchStack, n: number, slots: number, prefix: string): Promise<SimRunner[]> {
  const base = bench.stack.apiUrl;
  return mapLimit(Array.from({ length: n }, (_, i) => i), 8, async (i) => {
    const name = `${prefix}-${i + 1}`;
    const r = await jsonCall<RegisterRunnerResponse>(base, undefined, 'POST', '/runner/v1/register', { registrationToken: bench.stack.registrationToken, name, slots });
    return { name, token: r.runnerToken, slots, claimConn: new Conn(base), heartbeatConn: new Conn(base), completeConn: new Conn(base) };
  });
}

interface DriveResult {
  jobs: number;
  runners: number;
  slots: number;
  /** First claim sent → last completion answered. */
  wallMs: number;
  /** Claims that returned ≥ 1 job, as the client saw them. */
  claimLatency: number[];
  /** Jobs per non-empty claim. */
  claimSizes: number[];
  emptyClaims: number;
  claimRequests: number;
  heartbeatLatency: number[];
  heartbeats: number;
  completeLatency: number[];
  completeSizes: number[];
  /** Jobs handed out as attempt 2 or later (an offer was not acknowledged in time, or a lease expired). */
  reclaimed: number;
  /** Completions answered `duplicate` or refused (stale, not found): must be 0. */
  duplicates: number;
  refused: string[];
  /**
   * Jobs a heartbeat answer called stale: a periodic heartbeat can cross the completion of a job
   * it lists (answered stale, status succeeded). Any other stale answer is an error.
   */
  staleOnHeartbeat: { executionId: string; status: string }[];
  completedAt: number[];
  /** workerd (and the rest) CPU from the first claim until the outbox drained. */
  cpu: CpuBreakdown;
  /** D1 round trips from the first claim until the outbox drained. */
  d1: number;
  timing?: LeaseTiming;
}

/** Runs the simulated fleet until `total` jobs are complete, then waits for the Dispatcher to settle. */
async function drive(bench: BenchStack, runners: SimRunner[], total: number): Promise<DriveResult> {
  const r: Omit<DriveResult, 'wallMs' | 'cpu' | 'd1'> = {
    jobs: total,
    runners: runners.length,
    slots: runners[0]!.slots,
    claimLatency: [],
    claimSizes: [],
    emptyClaims: 0,
    claimRequests: 0,
    heartbeatLatency: [],
    heartbeats: 0,
    completeLatency: [],
    completeSizes: [],
    reclaimed: 0,
    duplicates: 0,
    refused: [],
    staleOnHeartbeat: [],
    completedAt: [],
  };
  let completed = 0;
  const stop = new AbortController();
  setMaxListeners(0, stop.signal);
  let failure: unknown;
  const fail = (err: unknown) => {
    failure ??= err;
    stop.abort();
  };
  let allDone!: () => void;
  const done = new Promise<void>((res) => (allDone = res));

  const m0 = await d1Mark(bench);
  const a = await cpuSnapshot();
  const t0 = performance.now();

  const runOne = async (runner: SimRunner) => {
    const held = new Map<string, Job>();
    let free = runner.slots;
    let freed: (() => void) | undefined;
    const slotFreed = () => new Promise<void>((res) => (freed = res));
    const release = (n: number) => {
      free += n;
      const f = freed;
      freed = undefined;
      f?.();
    };

    const heartbeat = async () => {
      const jobs = [...held.values()].map((j) => ({ executionId: j.executionId, attempt: j.attempt, shard: j.shard }));
      const s = performance.now();
      const res = await runner.heartbeatConn.post<RunnerHeartbeatResponse>(runner.token, '/runner/v1/heartbeat', { activeJobs: held.size, draining: false, jobs });
      r.heartbeatLatency.push(performance.now() - s);
      r.heartbeats++;
      r.timing ??= res.timing;
      r.staleOnHeartbeat.push(...res.stale.map((x) => ({ executionId: x.executionId, status: x.status })));
      return res;
    };

    // Completions: whatever is queued goes in one request whenever none is in flight.
    const queue: Completion[] = [];
    let sending = false;
    const pump = async () => {
      if (sending || !queue.length || stop.signal.aborted) return;
      sending = true;
      const batch = queue.splice(0, 32);
      try {
        const s = performance.now();
        const res = await runner.completeConn.post<CompleteManyResponse>(runner.token, '/runner/v1/complete', { completions: batch });
        const e = performance.now();
        r.completeLatency.push(e - s);
        r.completeSizes.push(batch.length);
        for (const x of res.results) {
          if (!x.ok) r.refused.push(`${x.executionId}: ${x.status} ${x.error.code}`);
          else if (x.duplicate) r.duplicates++;
          else {
            completed++;
            r.completedAt.push(e - t0);
          }
          held.delete(x.executionId);
        }
        release(batch.length);
        if (completed >= total) allDone();
      } catch (err) {
        fail(err);
      } finally {
        sending = false;
      }
      kick();
    };
    // Completions that become ready in the same turn of the event loop go out together.
    let kicked = false;
    const kick = () => {
      if (kicked) return;
      kicked = true;
      setImmediate(() => {
        kicked = false;
        void pump();
      });
    };
    const run = async (job: Job) => {
      if (RUN_MS) await sleep(RUN_MS);
      queue.push({ executionId: job.executionId, attempt: job.attempt, shard: job.shard, outcome: 'succeeded', exitCode: 0, durationMs: RUN_MS });
      kick();
    };

    // The real agent also heartbeats every timing.heartbeatSeconds while it holds jobs.
    let periodic: NodeJS.Timeout | undefined;
    const beats: Promise<unknown>[] = [];
    const schedule = (seconds: number) => {
      periodic ??= setInterval(() => {
        if (held.size && !stop.signal.aborted) beats.push(heartbeat().catch(fail));
      }, seconds * 1000);
    };

    try {
      while (!stop.signal.aborted) {
        if (free === 0) {
          await Promise.race([slotFreed(), done]);
          continue;
        }
        const s = performance.now();
        // Never aborted: a long-poll cut on this side would stay waiting in the Dispatcher and take jobs
        // of the next phase as offers nobody acknowledges. The loop ends when its last long-poll does.
        const res = await runner.claimConn.post<ClaimResponse>(runner.token, '/runner/v1/claim', { maxJobs: free, waitSeconds: WAIT });
        const e = performance.now();
        r.claimRequests++;
        schedule(res.timing.heartbeatSeconds);
        if (!res.jobs.length) {
          r.emptyClaims++;
          continue;
        }
        r.claimLatency.push(e - s);
        r.claimSizes.push(res.jobs.length);
        r.reclaimed += res.jobs.filter((j) => j.attempt > 1).length;
        free -= res.jobs.length;
        for (const j of res.jobs) held.set(j.executionId, j);
        // Acknowledged by the next periodic heartbeat (as the agent does): no extra call per claim.
        for (const j of res.jobs) void run(j);
      }
    } catch (err) {
      fail(err);
    } finally {
      if (periodic) clearInterval(periodic);
      await Promise.all(beats);
    }
  };

  const loops = Promise.all(runners.map(runOne));
  await Promise.race([done, loops]);
  const wallMs = r.completedAt.length ? Math.max(...r.completedAt) : performance.now() - t0;
  stop.abort();
  // The trailing long-polls end empty within WAIT seconds.
  await loops;
  if (failure) throw failure;
  if (r.reclaimed) log(`${r.reclaimed} jobs were handed out again (attempt > 1)`);
  if (completed !== total) throw new Error(`completed ${completed} of ${total}`);
  await settled(bench);
  const b = await cpuSnapshot();
  const m1 = await d1Mark(bench);
  return { ...r, wallMs, cpu: cpuDelta(a, b, { runnerPids: [] }), d1: d1Between(m0, m1) };
}

// ---------------------------------------------------------------- CPU per GET /health

interface HealthCost {
  n: number;
  cpuMs: number;
  latency: Summary;
}

/** workerd CPU per GET /health (no D1, no Durable Object): the unit the dispatch CPU is measured in. */
async function healthCost(bench: BenchStack, n: number): Promise<HealthCost> {
  const lat: number[] = [];
  const a = await cpuSnapshot();
  await mapLimit(Array.from({ length: n }, (_, i) => i), 4, async () => {
    const s = performance.now();
    await jsonCall(bench.stack.apiUrl, undefined, 'GET', '/health');
    lat.push(performance.now() - s);
  });
  const b = await cpuSnapshot();
  return { n, cpuMs: cpuDelta(a, b, { runnerPids: [] })['control plane (workerd)'] / n, latency: summarize(lat) };
}

// ---------------------------------------------------------------- cost per route

interface RouteCost {
  route: string;
  requests: number;
  jobsPerRequest: number;
  cpuMs: number;
  d1PerRequest: number;
  latency: Summary;
}

/**
 * One request at a time, one route at a time, so that workerd's CPU time (and the D1 round trips)
 * can be attributed: what each call of a job's life costs the control plane. The Dispatcher's
 * flush (every 250 ms) lands in whichever route is being measured when it runs: the transitions
 * it sends were made by that route.
 */
async function routeCosts(bench: BenchStack, runner: SimRunner, n: number, k: number): Promise<RouteCost[]> {
  const base = bench.stack.apiUrl;
  const conn = new Conn(base);
  const created = await createJobs(bench, n, 'routes');
  const out: RouteCost[] = [];
  const measure = async <T>(route: string, items: T[], jobsPerRequest: number, fn: (item: T) => Promise<unknown>) => {
    const lat: number[] = [];
    const m0 = await d1Mark(bench);
    const a = await cpuSnapshot();
    for (const it of items) {
      const s = performance.now();
      await fn(it);
      lat.push(performance.now() - s);
    }
    // Let the transitions reach D1 (the flush is part of the route's cost).
    await sleep(400);
    const b = await cpuSnapshot();
    const m1 = await d1Mark(bench);
    out.push({ route, requests: items.length, jobsPerRequest, cpuMs: cpuDelta(a, b, { runnerPids: [] })['control plane (workerd)'] / items.length, d1PerRequest: d1Between(m0, m1) / items.length, latency: summarize(lat) });
  };
  const groups: Job[][] = [];
  const claims = Array.from({ length: Math.ceil(n / k) }, (_, i) => i);
  await measure(`POST /runner/v1/claim (maxJobs ${k})`, claims, k, async () => {
    const res = await conn.post<ClaimResponse>(runner.token, '/runner/v1/claim', { maxJobs: k, waitSeconds: 0 });
    groups.push(res.jobs);
  });
  const jobs = groups.flat();
  if (jobs.length !== n) throw new Error(`route costs: claimed ${jobs.length} of ${n}`);
  const ref = (j: Job) => ({ executionId: j.executionId, attempt: j.attempt, shard: j.shard });
  await measure(`POST /runner/v1/heartbeat (${k} jobs)`, groups, k, (g) => conn.post(runner.token, '/runner/v1/heartbeat', { activeJobs: g.length, jobs: g.map(ref) }));
  await measure('POST /runner/v1/heartbeat (no jobs)', groups, 0, () => conn.post(runner.token, '/runner/v1/heartbeat', { activeJobs: 0, jobs: [] }));
  await measure('POST /runner/v1/executions/ID/logs (1 chunk)', jobs, 1, (j) =>
    conn.post(runner.token, `/runner/v1/executions/${j.executionId}/logs`, { attempt: j.attempt, shard: j.shard, chunks: [{ seq: 0, stream: 'stdout', data: 'item-00001.csv: 20 rows\n' }] }),
  );
  await measure('POST /runner/v1/executions/ID/outputs/presign (1 file)', jobs, 1, (j) =>
    conn.post(runner.token, `/runner/v1/executions/${j.executionId}/outputs/presign`, { attempt: j.attempt, shard: j.shard, files: [{ path: 'out.json', sha256: sha(Buffer.from(j.executionId)), size: 100 }] }),
  );
  // Half the groups complete in one request each, the other half one job per request (the single-job route).
  const half = Math.floor(groups.length / 2);
  await measure(`POST /runner/v1/complete (${k} completions, no outputs)`, groups.slice(0, half), k, (g) =>
    conn.post(runner.token, '/runner/v1/complete', { completions: g.map((j) => ({ ...ref(j), outcome: 'succeeded', exitCode: 0 })) }),
  );
  await measure('POST /runner/v1/executions/ID/complete (1 job, no outputs)', groups.slice(half).flat(), 1, (j) =>
    conn.post(runner.token, `/runner/v1/executions/${j.executionId}/complete`, { attempt: j.attempt, shard: j.shard, outcome: 'succeeded', exitCode: 0 }),
  );
  const few = claims.slice(0, Math.min(claims.length, 50));
  await measure('GET /api/v1/batches/ID (snapshot)', few, 0, () => bench.api.get(`/batches/${created.batchId}`));
  await measure('GET /health (no D1, no Durable Object)', jobs, 0, () => jsonCall(base, undefined, 'GET', '/health'));
  await conn.close();
  return out;
}

// ---------------------------------------------------------------- verification

interface Counts {
  total: number;
  created: number;
  queued: number;
  running: number;
  succeeded: number;
  failed: number;
  canceled: number;
  reused: number;
}

/** The batch snapshot: every job succeeded, and none is counted twice or left elsewhere. */
async function verify(bench: BenchStack, batchId: string, total: number, res: DriveResult): Promise<Counts> {
  let counts: Counts | undefined;
  for (let i = 0; i < 100; i++) {
    ({ counts } = (await bench.api.get<{ batch: { counts: Counts } }>(`/batches/${batchId}`)).batch);
    if (counts.succeeded === total) break;
    await sleep(200);
  }
  const others = counts!.created + counts!.queued + counts!.running + counts!.failed + counts!.canceled + counts!.reused;
  if (counts!.total !== total || counts!.succeeded !== total || others !== 0) throw new Error(`batch ${batchId}: expected ${total} succeeded and nothing else: ${JSON.stringify(counts)}`);
  const badStale = res.staleOnHeartbeat.filter((x) => x.status !== 'succeeded');
  if (res.duplicates || res.refused.length || badStale.length) {
    throw new Error(`batch ${batchId}: ${res.duplicates} duplicate completions, ${badStale.length} stale on heartbeat (${JSON.stringify(badStale.slice(0, 3))}), ${res.refused.length} refused (${res.refused.slice(0, 3).join('; ')})`);
  }
  return counts!;
}

/** Completions per second in each tenth of the run: does the rate hold up as the queue drains? */
function rateOverTime(completedAt: number[], wallMs: number): number[] {
  const bins = 10;
  const out = new Array<number>(bins).fill(0);
  for (const t of completedAt) out[Math.min(bins - 1, Math.floor((t / wallMs) * bins))]!++;
  return out.map((n) => n / (wallMs / bins / 1000));
}

const lat = (s: Summary) => [fmtMs(s.p50), fmtMs(s.p90), fmtMs(s.p99), fmtMs(s.max)];
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / (xs.length || 1);
const ok = (pass: boolean) => (pass ? 'met' : '**missed**');

async function main(): Promise<string | undefined> {
  // Printed after the stack is stopped: workerd's own log lines go to this process's stdout.
  let output: string | undefined;
  const startedAt = new Date().toISOString();
  const t0 = performance.now();
  const machine = await machineInfo();
  const loadStart = await loadAverage();
  const sampler = new LoadSampler();
  const bench = await startBenchStack({ log });
  try {
    // The admin call's own D1 round trips (it reads the pool row), measured with nothing else running.
    const x0 = await dispatchStats(bench);
    const x1 = await dispatchStats(bench);
    const x2 = await dispatchStats(bench);
    adminCallRoundTrips = Math.min(x1.d1RoundTrips - x0.d1RoundTrips, x2.d1RoundTrips - x1.d1RoundTrips);
    log(`admin dispatch call: ${adminCallRoundTrips} D1 round trip(s) of its own`);

    const runners = await registerRunners(bench, RUNNERS, SLOTS, 'sim');
    log(`${HEALTH} GET /health for the CPU baseline`);
    await healthCost(bench, 200); // warm-up
    const health = await healthCost(bench, HEALTH);
    log(`GET /health: ${fmt(health.cpuMs, 3)} ms workerd CPU each`);

    log(`creating ${JOBS} jobs`);
    const created = await createJobs(bench, JOBS, 'main');
    log(`created in ${fmtMs(created.createMs)} (${created.d1Create} D1 round trips), submitted in ${fmtMs(created.submitMs)} (${created.d1Submit} D1 round trips); driving ${RUNNERS} runners × ${SLOTS} slots`);
    const main = await drive(bench, runners, JOBS);
    const counts = await verify(bench, created.batchId, JOBS, main);
    log(`${JOBS} jobs in ${fmt(main.wallMs / 1000, 1)} s: ${fmt((JOBS / main.wallMs) * 1000, 0)} jobs/s; batch ${JSON.stringify(counts)}`);
    const health2 = await healthCost(bench, HEALTH);
    log(`GET /health after the run: ${fmt(health2.cpuMs, 3)} ms workerd CPU each`);

    // Interleaved fleet shapes, rounds alternating (A B, B A, …).
    const compare: { shape: string; round: number; res: DriveResult }[] = [];
    if (COMPARE_JOBS && SHAPES.length > 1) {
      const fleets = new Map<string, SimRunner[]>();
      for (const s of SHAPES) fleets.set(`${s.runners}x${s.slots}`, await registerRunners(bench, s.runners, s.slots, `cmp-${s.runners}x${s.slots}`));
      const names = [...fleets.keys()];
      for (let round = 0; round < COMPARE_ROUNDS; round++) {
        const order = round % 2 === 0 ? names : [...names].reverse();
        for (const shape of order) {
          const c = await createJobs(bench, COMPARE_JOBS, `cmp-${round}-${shape}`);
          const res = await drive(bench, fleets.get(shape)!, COMPARE_JOBS);
          await verify(bench, c.batchId, COMPARE_JOBS, res);
          compare.push({ shape, round: round + 1, res });
          log(`compare round ${round + 1} ${shape}: ${fmt((COMPARE_JOBS / res.wallMs) * 1000, 0)} jobs/s, claim p99 ${fmtMs(summarize(res.claimLatency).p99)}`);
        }
      }
      for (const f of fleets.values()) for (const x of f) await Promise.all([x.claimConn.close(), x.heartbeatConn.close(), x.completeConn.close()]);
    }
    let routes: RouteCost[] = [];
    if (ROUTE_SAMPLES) {
      log(`cost per request, ${ROUTE_SAMPLES} jobs, one request at a time`);
      routes = await routeCosts(bench, runners[0]!, ROUTE_SAMPLES, SLOTS);
    }
    for (const x of runners) await Promise.all([x.claimConn.close(), x.heartbeatConn.close(), x.completeConn.close()]);
    const sampled = sampler.stop();
    const loadEnd = await loadAverage();

    // ---- the numbers
    const jobsPerSecond = (JOBS / main.wallMs) * 1000;
    const claim = summarize(main.claimLatency);
    const wCpu = main.cpu['control plane (workerd)'];
    const cpuPerJob = wCpu / JOBS;
    const cpuOverHealth = cpuPerJob / health.cpuMs;
    const d1PerJob = main.d1 / JOBS;

    const L: string[] = [];
    L.push('## Dispatch', '');
    L.push(
      `The control plane alone (workerd in Miniflare, local D1 and Durable Objects, on loopback) driven by simulated runners that speak the runner protocol (/runner/v1) as the runner agent does: ` +
        `${RUNNERS} registered runners × ${SLOTS} slots (a ${RUNNERS}-server fleet), plain HTTP clients in one Node process. Per runner, one claim loop claims for all its free slots in one long-poll ` +
        `(\`maxJobs\` = free slots, \`waitSeconds\` ${WAIT}), every \`timing.heartbeatSeconds\` one heartbeat lists every job it holds (renewal and acknowledgement), and each job "runs" (${RUN_MS ? `${RUN_MS} ms` : 'no sleep'}) and completes through a per-runner batcher ` +
        `(whatever completions are queued go in one \`POST /runner/v1/complete\` whenever none is in flight); a slot is free again when its completion is answered. ` +
        `${JOBS.toLocaleString('en-US')} jobs created with the batch API in bulk (one request per 1,000 items; each job has one small input, so claims presign a script and an input URL like real ones), submitted, then the fleet starts.`,
      '',
    );
    if (!FULL) L.push(`> **Quick check, not the published size** (BENCH_JOBS=${JOBS}, ${RUNNERS} runners × ${SLOTS} slots, run ${RUN_MS} ms).`, '');
    L.push(
      `Measured ${startedAt} (${fmt((performance.now() - t0) / 60_000, 1)} min); load average ${loadStart} at the start, ${loadEnd} at the end; 1-minute load sampled every 5 s: min ${fmt(sampled.min, 2)}, mean ${fmt(sampled.mean, 2)}, max ${fmt(sampled.max, 2)} on ${machine.nproc} cores. ` +
        'The load generator shares the machine\'s cores with workerd.',
      '',
    );
    L.push('Headline, against the targets of the dispatch-core issue:', '');
    L.push(
      table(
        ['measure', 'v2 core (this run)', 'target', '', 'before (v1 core)'],
        [
          ['jobs per second (first claim → last completion answered)', fmt(jobsPerSecond, 0), `≥ ${TARGETS.jobsPerSecond}`, ok(jobsPerSecond >= TARGETS.jobsPerSecond), `${BEFORE.perSecond}`],
          ['claim p50 (claims that returned jobs)', fmtMs(claim.p50), '', '', BEFORE.claimP50],
          ['claim p99', fmtMs(claim.p99), `≤ ${TARGETS.claimP99Ms} ms`, ok(claim.p99 <= TARGETS.claimP99Ms), BEFORE.claimP99],
          ['claim max', fmtMs(claim.max), `≤ ${TARGETS.claimMaxMs / 1000} s`, ok(claim.max <= TARGETS.claimMaxMs), BEFORE.claimMax],
          ['workerd CPU per job', `${fmt(cpuPerJob, 2)} ms`, '', '', `${BEFORE.cpuPerJobMs} ms`],
          ['workerd CPU per job / per `GET /health`', fmt(cpuOverHealth, 1), `≤ ${TARGETS.cpuOverHealth}`, ok(cpuOverHealth <= TARGETS.cpuOverHealth), `${fmt(BEFORE.cpuPerJobMs / BEFORE.healthCpuMs, 0)} (33.2 / 1.2 ms)`],
          ['D1 round trips per job (claim → complete → flushed)', fmt(d1PerJob, 3), `≤ ${TARGETS.d1PerJob}`, ok(d1PerJob <= TARGETS.d1PerJob), '–'],
        ],
      ),
      '',
    );
    L.push(
      'Before (v1 core): 8 runners × 4 claim loops, each claiming `maxJobs: 1` and sending a heartbeat and a complete per job (same machine, 2026-11-28); its rate was claims+completions per second, i.e. jobs per second.',
      '',
    );
    L.push(
      table(
        ['measure', 'value'],
        [
          ['jobs', JOBS.toLocaleString('en-US')],
          ['wall time, first claim → last completion answered', fmtMs(main.wallMs)],
          ['claim requests (of which empty long-polls)', `${main.claimRequests} (${main.emptyClaims})`],
          ['jobs per non-empty claim, mean', fmt(mean(main.claimSizes), 2)],
          ['heartbeat requests', String(main.heartbeats)],
          ['complete requests; completions per request, mean', `${main.completeSizes.length}; ${fmt(mean(main.completeSizes), 2)}`],
          [`create ${JOBS.toLocaleString('en-US')} jobs (batch API, bulk)`, `${fmtMs(created.createMs)} in ${created.requests - 1} requests; ${created.d1Create} D1 round trips (${fmt(created.d1Create / JOBS, 3)} per job)`],
          ['submit (queue every job)', `${fmtMs(created.submitMs)}; ${created.d1Submit} D1 round trips (${fmt(created.d1Submit / JOBS, 3)} per job)`],
          ['D1 round trips, first claim → outbox drained', `${main.d1} (${fmt(d1PerJob, 3)} per job)`],
          ['workerd CPU per `GET /health` (before the run; after it)', `${fmt(health.cpuMs, 3)} ms; ${fmt(health2.cpuMs, 3)} ms (${HEALTH} requests, 4 at a time)`],
          ['requests retried after workerd closed the connection', String(socketErrors)],
          ['jobs handed out again (attempt > 1: an offer or lease lapsed)', String(main.reclaimed)],
          ['batch at the end', `${counts.succeeded.toLocaleString('en-US')} succeeded, nothing else; 0 duplicate or refused completions`],
        ],
      ),
      '',
    );
    L.push('Latency under that load (each request as the simulated runner saw it):', '');
    L.push(
      table(
        ['request', 'n', 'p50', 'p90', 'p99', 'max'],
        [
          ['claim (that returned jobs)', main.claimLatency.length, ...lat(claim)],
          ['heartbeat (periodic)', main.heartbeatLatency.length, ...lat(summarize(main.heartbeatLatency))],
          ['complete (batched)', main.completeLatency.length, ...lat(summarize(main.completeLatency))],
        ],
      ),
      '',
    );
    const rot = rateOverTime(main.completedAt, main.wallMs);
    L.push(`Jobs completed per second in each tenth of the run: ${rot.map((x) => fmt(x, 0)).join(', ')}.`, '');
    L.push(
      `CPU per job: control plane (workerd) ${fmt(cpuPerJob, 2)} ms, load generator and S3 store (this process) ${fmt(main.cpu['bench process (S3 store + client)'] / JOBS, 2)} ms, whole machine ${fmt(main.cpu['machine total'] / JOBS, 2)} ms ` +
        `(first claim until the Dispatcher's outbox was flushed, so the D1 flushes are included). workerd was busy ${fmt((wCpu / main.wallMs) * 100, 0)}% of one core on average during the run. ` +
        `At ${fmt(cpuPerJob, 2)} ms of workerd CPU per job, one fully available core would sustain about ${fmt(1000 / cpuPerJob, 0)} jobs/s.`,
      '',
    );
    if (compare.length) {
      L.push(`Fleet shapes, interleaved (${COMPARE_ROUNDS} rounds of ${COMPARE_JOBS.toLocaleString('en-US')} jobs per shape, alternating order; runners × slots, same protocol):`, '');
      const rows = [...new Set(compare.map((c) => c.shape))].map((shape) => {
        const rs = compare.filter((c) => c.shape === shape);
        const jobs = rs.reduce((a, c) => a + c.res.jobs, 0);
        const ms = rs.reduce((a, c) => a + c.res.wallMs, 0);
        const cl = summarize(rs.flatMap((c) => c.res.claimLatency));
        const cpu = rs.reduce((a, c) => a + c.res.cpu['control plane (workerd)'], 0) / jobs;
        const d1 = rs.reduce((a, c) => a + c.res.d1, 0) / jobs;
        const reqs = rs.reduce((a, c) => a + c.res.claimRequests + c.res.heartbeats + c.res.completeSizes.length, 0) / jobs;
        return [shape, fmt((jobs / ms) * 1000, 0), fmtMs(cl.p50), fmtMs(cl.p99), fmtMs(cl.max), fmt(cpu, 2), fmt(cpu / health.cpuMs, 1), fmt(reqs, 2), fmt(d1, 3)];
      });
      L.push(table(['runners × slots', 'jobs/s', 'claim p50', 'claim p99', 'claim max', 'workerd CPU ms per job', '÷ health', 'requests per job', 'D1 round trips per job'], rows), '');
    }
    if (routes.length) {
      L.push(
        `Cost per request, by route: ${ROUTE_SAMPLES} jobs, one request at a time (no concurrency), so that workerd's CPU time can be attributed to the route ` +
          `(CPU from /proc at 10 ms resolution, over all the route's requests plus 400 ms for the Dispatcher's flush of what they changed). Latency here is without queueing.`,
        '',
      );
      L.push(
        table(
          ['request', 'requests', 'workerd CPU per request', 'per job', '÷ health', 'D1 round trips per request', 'latency p50', 'p90'],
          routes.map((r) => [
            `\`${r.route}\``,
            r.requests,
            `${fmt(r.cpuMs, 2)} ms`,
            r.jobsPerRequest ? `${fmt(r.cpuMs / r.jobsPerRequest, 2)} ms` : '–',
            fmt(r.cpuMs / health.cpuMs, 1),
            fmt(r.d1PerRequest, 2),
            fmtMs(r.latency.p50),
            fmtMs(r.latency.p90),
          ]),
        ),
        '',
      );
    }
    L.push('### How to reproduce', '');
    L.push('```sh');
    L.push(`npx tsx bench/dispatch.ts          # BENCH_JOBS=${JOBS} BENCH_DISPATCH_RUNNERS=${RUNNERS} BENCH_DISPATCH_SLOTS=${SLOTS} BENCH_DISPATCH_WAIT=${WAIT}`);
    L.push('BENCH_JOBS=1000 BENCH_DISPATCH_COMPARE_JOBS=200 npx tsx bench/dispatch.ts   # quick check');
    L.push('```', '');
    L.push(
      'Per runner: `POST /runner/v1/claim {"maxJobs":FREE,"waitSeconds":5}`, then `POST /runner/v1/heartbeat {"activeJobs":N,"jobs":[{executionId,attempt,shard},…]}` (also every `timing.heartbeatSeconds` while it holds jobs), ' +
        'then `POST /runner/v1/complete {"completions":[…]}` with the completions that are ready. D1 round trips are the `d1RoundTrips` of `GET /admin/v1/pools/:pool/dispatch` (every isolate, since it started), ' +
        'taken before the first claim and after every shard\'s outbox is empty, minus the admin call\'s own pool read. CPU per `GET /health`: 2,000 requests, 4 at a time, in the same run. ' +
        'The batch is checked at the end: every job succeeded, none twice, no completion refused.',
      '',
    );
    const md = L.join('\n');
    const headline = [
      `dispatch: jobs_per_second ${fmt(jobsPerSecond, 0)}`,
      `dispatch: claim_p99_ms ${fmt(claim.p99, 1)}`,
      `dispatch: claim_max_ms ${fmt(claim.max, 1)}`,
      `dispatch: cpu_per_job_over_health ${fmt(cpuOverHealth, 1)}`,
      `dispatch: d1_round_trips_per_job ${fmt(d1PerJob, 3)}`,
    ];
    output = md + '\n' + headline.join('\n');
    const summ = (d: DriveResult) => ({
      ...d,
      claimLatency: summarize(d.claimLatency),
      heartbeatLatency: summarize(d.heartbeatLatency),
      completeLatency: summarize(d.completeLatency),
      claimSizes: mean(d.claimSizes),
      completeSizes: mean(d.completeSizes),
      completedAt: undefined,
    });
    await publish({
      bench: 'dispatch',
      section: 'Dispatch',
      md,
      raw: { settings: { JOBS, RUNNERS, SLOTS, WAIT, RUN_MS, HEALTH, COMPARE_JOBS, COMPARE_ROUNDS, SHAPES }, machine, created, health, health2, adminCallRoundTrips, main: summ(main), headline, compare: compare.map((c) => ({ shape: c.shape, round: c.round, ...summ(c.res) })), routes },
      full: FULL,
      log,
    });
  } finally {
    sampler.stop();
    await bench.stop();
  }
  return output;
}

runBench(main);
