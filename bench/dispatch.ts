/**
 * Dispatch: how fast the control plane hands out and closes jobs, with no containers. Simulated
 * runners (plain HTTP clients speaking the runner protocol) claim a job, heartbeat it once and
 * complete it with no outputs, over 10,000 jobs created in bulk with the batch API.
 *
 *   npx tsx bench/dispatch.ts                           # 10,000 jobs, 8 runners × 4 slots
 *   BENCH_JOBS=1000 npx tsx bench/dispatch.ts           # quick check
 *
 * Then a smaller interleaved comparison of claim sizes (maxJobs 1, as the runner claims today,
 * vs BENCH_DISPATCH_BATCH_CLAIM jobs per claim), rounds alternating.
 *
 * Settings: BENCH_JOBS (10000), BENCH_DISPATCH_RUNNERS (8), BENCH_DISPATCH_SLOTS (claim loops
 * per runner, 4), BENCH_DISPATCH_MAXJOBS (jobs per claim in the main run, 1),
 * BENCH_DISPATCH_COMPARE_JOBS (jobs per round of the comparison, 1000; 0 skips it),
 * BENCH_DISPATCH_COMPARE_ROUNDS (2 per variant), BENCH_DISPATCH_BATCH_CLAIM (4).
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { Client } from 'undici';
import { MAX_BATCH_ITEMS_PER_REQUEST } from '../shared/api/batches.js';
import type { BlobUpload } from '../shared/api/common.js';
import type { ClaimResponse, Job, RegisterRunnerResponse } from '../shared/api/runner.js';
import { intEnv } from './lib/env.js';
import { LoadSampler, loadAverage, machineInfo } from './lib/machine.js';
import { cpuDelta, cpuSnapshot, type CpuBreakdown } from './lib/cpu.js';
import { startBenchStack, type BenchStack } from './lib/stack.js';
import { jsonCall, putBytes } from './lib/api.js';
import { fmt, fmtMs, summarize, table, type Summary } from './lib/stats.js';
import { publish, runBench } from './lib/doc.js';

const JOBS = intEnv('BENCH_JOBS', 10_000);
const RUNNERS = intEnv('BENCH_DISPATCH_RUNNERS', 8);
const SLOTS = intEnv('BENCH_DISPATCH_SLOTS', 4);
const MAXJOBS = intEnv('BENCH_DISPATCH_MAXJOBS', 1);
const COMPARE_JOBS = intEnv('BENCH_DISPATCH_COMPARE_JOBS', 1000, 0);
const COMPARE_ROUNDS = intEnv('BENCH_DISPATCH_COMPARE_ROUNDS', 2);
const BATCH_CLAIM = intEnv('BENCH_DISPATCH_BATCH_CLAIM', 4);
const ROUTE_SAMPLES = intEnv('BENCH_DISPATCH_ROUTE_SAMPLES', 100, 0);
const FULL = JOBS === 10_000 && RUNNERS === 8 && SLOTS === 4 && MAXJOBS === 1;

const log = (line: string) => process.stderr.write(`[dispatch] ${line}\n`);
/**
 * One keep-alive connection per claim loop, as a runner slot has: with one shared pool of
 * connections, requests sporadically landed on a connection workerd had already closed
 * ("other side closed"); with a connection per loop that never happened.
 */
const clients = new Map<string, Client>();
function clientFor(baseUrl: string, key: string): Client {
  let c = clients.get(key);
  if (!c) clients.set(key, (c = new Client(baseUrl, { pipelining: 1, keepAliveTimeout: 60_000 })));
  return c;
}

/** Connections the server closed under a request (retried: every call here is safe to repeat). */
let socketErrors = 0;

async function post<T>(baseUrl: string, token: string | undefined, path: string, body: unknown, conn = 'default'): Promise<{ status: number; json: T }> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await postOnce<T>(clientFor(baseUrl, conn), token, path, body);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (attempt >= 5 || (code !== 'UND_ERR_SOCKET' && code !== 'ECONNRESET')) throw err;
      socketErrors++;
      log(`${path}: ${code} (${(err as Error).message}); retrying`);
    }
  }
}

async function postOnce<T>(client: Client, token: string | undefined, path: string, body: unknown): Promise<{ status: number; json: T }> {
  const res = await client.request({
    path,
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
    headersTimeout: 120_000,
    bodyTimeout: 120_000,
  });
  const text = await res.body.text();
  if (res.statusCode >= 300) throw new Error(`POST ${path}: HTTP ${res.statusCode}: ${text.slice(0, 300)}`);
  return { status: res.statusCode, json: JSON.parse(text) as T };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface Created {
  batchId: string;
  createMs: number;
  uploadMs: number;
  submitMs: number;
  requests: number;
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
  await bench.api.post(`/batches/${created.batch.id}/submit`);
  const t3 = performance.now();
  return { batchId: created.batch.id, createMs: t1 - t0, uploadMs: t2 - t1, submitMs: t3 - t2, requests: requests + 1 };
}

interface SimRunner {
  token: string;
}

async function registerRunners(bench: BenchStack, n: number): Promise<SimRunner[]> {
  const out: SimRunner[] = [];
  for (let i = 0; i < n; i++) {
    const r = await post<RegisterRunnerResponse>(bench.stack.apiUrl, undefined, '/runner/v1/register', { registrationToken: bench.stack.registrationToken, name: `sim-${i + 1}`, slots: SLOTS });
    out.push({ token: r.json.runnerToken });
  }
  return out;
}

interface DriveResult {
  jobs: number;
  wallMs: number;
  /** When the first job was claimed → when the last completion was answered. */
  claimLatency: number[];
  emptyClaims: number;
  claimRequests: number;
  /** Jobs handed out as attempt 2 or later: their first claim's answer was lost, the lease expired. */
  reclaimed: number;
  heartbeatLatency: number[];
  completeLatency: number[];
  /** ms from start at which each completion was answered (for the rate over time). */
  completedAt: number[];
  claimedAt: number[];
  cpu: CpuBreakdown;
}

/** Runs the simulated fleet until `total` jobs are complete. */
async function drive(bench: BenchStack, runners: SimRunner[], total: number, maxJobs: number): Promise<DriveResult> {
  const base = bench.stack.apiUrl;
  let claimed = 0;
  let completed = 0;
  const r: Omit<DriveResult, 'wallMs' | 'cpu'> = { jobs: total, claimLatency: [], emptyClaims: 0, claimRequests: 0, reclaimed: 0, heartbeatLatency: [], completeLatency: [], completedAt: [], claimedAt: [] };
  const a = await cpuSnapshot();
  const t0 = performance.now();
  const loop = async (runner: SimRunner, conn: string) => {
    while (claimed < total) {
      const s = performance.now();
      const { json } = await post<ClaimResponse>(base, runner.token, '/runner/v1/claim', { maxJobs, waitSeconds: 1 }, conn);
      const e = performance.now();
      r.claimRequests++;
      if (!json.jobs.length) {
        r.emptyClaims++;
        continue;
      }
      r.claimLatency.push(e - s);
      claimed += json.jobs.length;
      r.reclaimed += json.jobs.filter((j) => j.attempt > 1).length;
      for (const _ of json.jobs) r.claimedAt.push(e - t0);
      for (const job of json.jobs) {
        const h0 = performance.now();
        await post(base, runner.token, `/runner/v1/executions/${job.executionId}/heartbeat`, { attempt: job.attempt }, conn);
        const h1 = performance.now();
        await post(base, runner.token, `/runner/v1/executions/${job.executionId}/complete`, { attempt: job.attempt, outcome: 'succeeded', exitCode: 0 }, conn);
        const c1 = performance.now();
        r.heartbeatLatency.push(h1 - h0);
        r.completeLatency.push(c1 - h1);
        r.completedAt.push(c1 - t0);
        completed++;
      }
    }
  };
  await Promise.all(runners.flatMap((runner, i) => Array.from({ length: SLOTS }, (_, k) => loop(runner, `${i}/${k}`))));
  const wallMs = Math.max(...r.completedAt);
  const b = await cpuSnapshot();
  if (completed !== total) throw new Error(`completed ${completed} of ${total}`);
  return { ...r, wallMs, cpu: cpuDelta(a, b, { runnerPids: [] }) };
}

interface RouteCost {
  route: string;
  n: number;
  cpuMs: number;
  latency: Summary;
}

/**
 * One request at a time, one route at a time, so that workerd's CPU time can be attributed:
 * what each call of a job's life costs the control plane.
 */
async function routeCosts(bench: BenchStack, runner: SimRunner, n: number): Promise<RouteCost[]> {
  const base = bench.stack.apiUrl;
  const created = await createJobs(bench, n, 'routes');
  const out: RouteCost[] = [];
  const measure = async <T>(route: string, items: T[], fn: (item: T) => Promise<unknown>) => {
    const lat: number[] = [];
    const a = await cpuSnapshot();
    for (const it of items) {
      const s = performance.now();
      await fn(it);
      lat.push(performance.now() - s);
    }
    const b = await cpuSnapshot();
    out.push({ route, n: items.length, cpuMs: cpuDelta(a, b, { runnerPids: [] })['control plane (workerd)'] / items.length, latency: summarize(lat) });
  };
  const jobs: Job[] = [];
  const slots = Array.from({ length: n }, (_, i) => i);
  await measure('POST /runner/v1/claim (maxJobs 1)', slots, async () => {
    const { json } = await post<ClaimResponse>(base, runner.token, '/runner/v1/claim', { maxJobs: 1, waitSeconds: 0 }, 'routes');
    jobs.push(...json.jobs);
  });
  if (jobs.length !== n) throw new Error(`route costs: claimed ${jobs.length} of ${n}`);
  await measure('POST /runner/v1/executions/ID/heartbeat', jobs, (j) => post(base, runner.token, `/runner/v1/executions/${j.executionId}/heartbeat`, { attempt: j.attempt }, 'routes'));
  await measure('POST /runner/v1/executions/ID/logs (1 chunk)', jobs, (j) =>
    post(base, runner.token, `/runner/v1/executions/${j.executionId}/logs`, { attempt: j.attempt, chunks: [{ seq: 0, stream: 'stdout', data: 'item-00001.csv: 20 rows\n' }] }, 'routes'),
  );
  await measure('POST /runner/v1/executions/ID/outputs/presign (1 file)', jobs, (j) =>
    post(base, runner.token, `/runner/v1/executions/${j.executionId}/outputs/presign`, { attempt: j.attempt, files: [{ path: 'out.json', sha256: sha(Buffer.from(j.executionId)), size: 100 }] }, 'routes'),
  );
  await measure('POST /runner/v1/executions/ID/complete (no outputs)', jobs, (j) => post(base, runner.token, `/runner/v1/executions/${j.executionId}/complete`, { attempt: j.attempt, outcome: 'succeeded', exitCode: 0 }, 'routes'));
  await measure('GET /api/v1/batches/ID (snapshot)', slots, () => bench.api.get(`/batches/${created.batchId}`));
  await measure(`GET /api/v1/batches/ID/items (${n} items)`, slots, () => bench.api.get(`/batches/${created.batchId}/items`));
  await measure('GET /api/v1/executions/ID/artifacts', jobs, (j) => bench.api.get(`/executions/${j.executionId}/artifacts`));
  await measure('GET /health (no D1, no Durable Object)', slots, () => jsonCall(base, undefined, 'GET', '/health'));
  return out;
}

async function verify(bench: BenchStack, batchId: string, total: number): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const { batch } = await bench.api.get<{ batch: { counts: { succeeded: number }; status: string } }>(`/batches/${batchId}`);
    if (batch.counts.succeeded === total) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  const { batch } = await bench.api.get(`/batches/${batchId}`);
  throw new Error(`batch ${batchId} did not finish with ${total} succeeded: ${JSON.stringify(batch.counts)}`);
}

/** Completions per second in each tenth of the run: does the rate hold up as the queue drains? */
function rateOverTime(completedAt: number[], wallMs: number): number[] {
  const bins = 10;
  const out = new Array<number>(bins).fill(0);
  for (const t of completedAt) out[Math.min(bins - 1, Math.floor((t / wallMs) * bins))]!++;
  return out.map((n) => n / (wallMs / bins / 1000));
}

const lat = (s: Summary) => [fmtMs(s.p50), fmtMs(s.p90), fmtMs(s.p99), fmtMs(s.max)];

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
    const runners = await registerRunners(bench, RUNNERS);
    log(`creating ${JOBS} jobs`);
    const created = await createJobs(bench, JOBS, 'main');
    log(`created in ${fmtMs(created.createMs)}, submitted in ${fmtMs(created.submitMs)}; driving ${RUNNERS}×${SLOTS} claim loops (maxJobs ${MAXJOBS})`);
    const main = await drive(bench, runners, JOBS, MAXJOBS);
    await verify(bench, created.batchId, JOBS);
    log(`${JOBS} jobs in ${fmt(main.wallMs / 1000, 1)} s: ${fmt((JOBS / main.wallMs) * 1000, 0)} completions/s`);

    // Interleaved: maxJobs 1 vs BATCH_CLAIM, rounds alternating (A B B A …).
    const compare: { maxJobs: number; round: number; res: DriveResult }[] = [];
    if (COMPARE_JOBS) {
      const variants = [1, BATCH_CLAIM];
      for (let round = 0; round < COMPARE_ROUNDS; round++) {
        const order = round % 2 === 0 ? variants : [...variants].reverse();
        for (const mj of order) {
          const c = await createJobs(bench, COMPARE_JOBS, `cmp-${round}-${mj}`);
          const res = await drive(bench, runners, COMPARE_JOBS, mj);
          await verify(bench, c.batchId, COMPARE_JOBS);
          compare.push({ maxJobs: mj, round: round + 1, res });
          log(`compare round ${round + 1} maxJobs ${mj}: ${fmt((COMPARE_JOBS / res.wallMs) * 1000, 0)} completions/s`);
        }
      }
    }
    let routes: RouteCost[] = [];
    if (ROUTE_SAMPLES) {
      log(`cost per request, ${ROUTE_SAMPLES} sequential requests per route`);
      routes = await routeCosts(bench, runners[0]!, ROUTE_SAMPLES);
    }
    const sampled = sampler.stop();
    const loadEnd = await loadAverage();

    const L: string[] = [];
    L.push('## Dispatch', '');
    L.push(
      `The control plane alone (workerd in Miniflare, local D1 and Durable Objects, on loopback) driven by simulated runners: ${RUNNERS} registered runners × ${SLOTS} claim loops each ` +
        `(${RUNNERS * SLOTS} requests in flight at most), plain HTTP clients in one Node process that claim (\`maxJobs: ${MAXJOBS}\`, as the runner agent does per slot), heartbeat the job once and complete it with no outputs. ` +
        `${JOBS.toLocaleString('en-US')} jobs created with the batch API in bulk (one request per 1,000 items; each job has one small input, so claims presign a script and an input URL like real ones).`,
      '',
    );
    if (!FULL) L.push(`> **Quick check, not the published size** (BENCH_JOBS=${JOBS}, ${RUNNERS}×${SLOTS} loops, maxJobs ${MAXJOBS}).`, '');
    L.push(`Measured ${startedAt} (${fmt((performance.now() - t0) / 60_000, 1)} min); load average ${loadStart} at the start, ${loadEnd} at the end; 1-minute load sampled every 5 s: min ${fmt(sampled.min, 2)}, mean ${fmt(sampled.mean, 2)}, max ${fmt(sampled.max, 2)} on ${machine.nproc} cores. The load generator shares the machine's cores with workerd.`, '');
    const rate = (n: number, ms: number) => fmt((n / ms) * 1000, 0);
    L.push(
      table(
        ['measure', 'value'],
        [
          ['jobs', JOBS.toLocaleString('en-US')],
          ['wall time, first claim → last completion', fmtMs(main.wallMs)],
          ['claims per second (jobs handed out)', rate(JOBS, Math.max(...main.claimedAt))],
          ['completions per second', rate(JOBS, main.wallMs)],
          ['claim requests (of which empty, at the end)', `${main.claimRequests} (${main.emptyClaims})`],
          ['create 10,000 jobs (batch API, bulk)'.replace('10,000', JOBS.toLocaleString('en-US')), `${fmtMs(created.createMs)} in ${created.requests - 1} requests`],
          ['submit (queue every job)', fmtMs(created.submitMs)],
          ['requests retried after workerd closed the connection', String(socketErrors)],
          ['jobs claimed again after their lease expired (a claim answer was lost)', String(main.reclaimed)],
        ],
      ),
      '',
    );
    L.push('Latency under that load (each request as the simulated runner saw it):', '');
    L.push(
      table(
        ['request', 'p50', 'p90', 'p99', 'max'],
        [
          ['claim (that returned a job)', ...lat(summarize(main.claimLatency))],
          ['job heartbeat', ...lat(summarize(main.heartbeatLatency))],
          ['complete', ...lat(summarize(main.completeLatency))],
        ],
      ),
      '',
    );
    const rot = rateOverTime(main.completedAt, main.wallMs);
    L.push(`Completions per second in each tenth of the run: ${rot.map((x) => fmt(x, 0)).join(', ')}.`, '');
    const wCpu = main.cpu['control plane (workerd)'];
    L.push(
      `CPU per job: control plane (workerd) ${fmt(wCpu / JOBS, 1)} ms, load generator and S3 store (this process) ${fmt(main.cpu['bench process (S3 store + client)'] / JOBS, 1)} ms, whole machine ${fmt(main.cpu['machine total'] / JOBS, 1)} ms ` +
        `(everything running on the machine, divided by the jobs). workerd was busy ${fmt((wCpu / main.wallMs) * 100, 0)}% of one core on average during the run. ` +
        `At ${fmt(wCpu / JOBS, 1)} ms of workerd CPU per job, one fully available core would sustain about ${fmt(1000 / (wCpu / JOBS), 0)} jobs/s (claim + heartbeat + complete): ` +
        'when the measured rate is far below that, the control plane was starved of CPU by the rest of the machine, not limited by its own work.',
      '',
    );
    if (compare.length) {
      L.push(`Jobs per claim, interleaved (${COMPARE_ROUNDS} rounds of ${COMPARE_JOBS.toLocaleString('en-US')} jobs per variant, alternating order; same fleet):`, '');
      const rows = [1, BATCH_CLAIM].map((mj) => {
        const rs = compare.filter((c) => c.maxJobs === mj);
        const jobs = rs.reduce((a, c) => a + c.res.jobs, 0);
        const ms = rs.reduce((a, c) => a + c.res.wallMs, 0);
        const cl = summarize(rs.flatMap((c) => c.res.claimLatency));
        const cpu = rs.reduce((a, c) => a + c.res.cpu['control plane (workerd)'], 0) / jobs;
        return { mj, perSec: (jobs / ms) * 1000, cl, cpu };
      });
      L.push(
        table(
          ['maxJobs per claim', 'completions/s', 'claim p50', 'claim p99', 'workerd CPU ms per job'],
          rows.map((r) => [r.mj, fmt(r.perSec, 0), fmtMs(r.cl.p50), fmtMs(r.cl.p99), fmt(r.cpu, 1)]),
        ),
        '',
      );
      L.push(`Ratio: maxJobs ${BATCH_CLAIM} / maxJobs 1 = ${fmt(rows[1]!.perSec / rows[0]!.perSec, 2)}× completions per second.`, '');
    }
    if (routes.length) {
      L.push(
        `Cost per request, by route: ${ROUTE_SAMPLES} requests of each, one at a time (no concurrency), so that workerd's CPU time can be attributed to the route. ` +
          'Latency here is without queueing; the CPU is what every such call costs the control plane, whatever the load.',
        '',
      );
      L.push(table(['request', 'workerd CPU per request', 'latency p50', 'p90'], routes.map((r) => [`\`${r.route}\``, `${fmt(r.cpuMs, 1)} ms`, fmtMs(r.latency.p50), fmtMs(r.latency.p90)])), '');
    }
    L.push('### How to reproduce', '');
    L.push('```sh');
    L.push(`npx tsx bench/dispatch.ts          # BENCH_JOBS=${JOBS} BENCH_DISPATCH_RUNNERS=${RUNNERS} BENCH_DISPATCH_SLOTS=${SLOTS} BENCH_DISPATCH_MAXJOBS=${MAXJOBS}`);
    L.push('BENCH_JOBS=1000 BENCH_DISPATCH_COMPARE_JOBS=200 npx tsx bench/dispatch.ts   # quick check');
    L.push('```', '');
    L.push(
      'Each loop: `POST /runner/v1/claim {"maxJobs":N,"waitSeconds":1}`, then per job `POST /runner/v1/executions/ID/heartbeat {"attempt":A}` and `POST /runner/v1/executions/ID/complete {"attempt":A,"outcome":"succeeded","exitCode":0}`, until every job is claimed. ' +
        'The batch is checked at the end: every job succeeded, none twice.',
      '',
    );
    const md = L.join('\n');
    output = md;
    await publish({ bench: 'dispatch', section: 'Dispatch', md, raw: { settings: { JOBS, RUNNERS, SLOTS, MAXJOBS, COMPARE_JOBS, COMPARE_ROUNDS, BATCH_CLAIM }, machine, created, main: { ...main, claimLatency: summarize(main.claimLatency), heartbeatLatency: summarize(main.heartbeatLatency), completeLatency: summarize(main.completeLatency), completedAt: undefined, claimedAt: undefined }, compare: compare.map((c) => ({ maxJobs: c.maxJobs, round: c.round, wallMs: c.res.wallMs, claim: summarize(c.res.claimLatency) })), routes }, full: FULL, log });
  } finally {
    sampler.stop();
    await bench.stop();
  }
  return output;
}

runBench(main);
