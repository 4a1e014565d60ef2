/**
 * Simulated runners for the dispatch chaos test: plain HTTP clients speaking /runner/v1 (claim for
 * every free slot, one heartbeat per runner renewing every held job, batched completions, output
 * presign), with no containers. Each job "runs" for the time its item's args say, then completes.
 *
 * Chaos is decided per runner from a seeded PRNG (see ChaosPlan): a runner may die right after a
 * claim answer (its offers are never acknowledged), die mid-job (its leases expire), freeze past
 * its leases and then complete what it held (late completions, which must be refused), and send a
 * completion twice (one after the other, concurrently, or twice in one request).
 *
 * Every runner writes what it saw to a shared Ledger: per (execution, attempt) when the claim was
 * sent and answered, every renewal a heartbeat answer confirmed, every completion and its answer.
 * The test proves its invariants from these records alone, plus D1 and the Dispatcher's audit.
 */
import { createHash } from 'node:crypto';
import { request } from 'undici';
import type { ClaimResponse, CompleteManyResponse, CompletionResult, Job, LeaseTiming, PresignOutputsResponse, RegisterRunnerResponse, RunnerHeartbeatResponse } from '../../shared/api/runner.js';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

// ------------------------------------------------------------------ seeded PRNG

/** mulberry32: small, fast, good enough to make a chaos run reproducible from its seed. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)]!;
  }
  /** An independent stream (per runner), so one runner's draws do not shift another's. */
  fork(salt: number): Rng {
    return new Rng(Math.imul(this.s ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(salt + 1, 0xc2b2ae35));
  }
}

// ------------------------------------------------------------------ records

/** One (execution, attempt) as one runner held it. Times are Date.now() on this machine (workerd shares the clock). */
export interface Hold {
  executionId: string;
  attempt: number;
  shard: number;
  runnerId: string;
  runner: string;
  claimSentAt: number;
  claimAnsweredAt: number;
  /** Heartbeats whose answer listed this job as held (not stale). */
  renewals: number;
  lastRenewSentAt: number | null;
  lastRenewAnsweredAt: number | null;
  /** How the runner's hold ended (for the report and for debugging a failure). */
  end: 'open' | 'completed' | 'refused' | 'stale' | 'died' | 'stopped';
  endAt: number | null;
}

export type CompletionMode = 'single' | 'sequential' | 'concurrent' | 'same-request' | 'late';

export interface CompletionRecord {
  executionId: string;
  attempt: number;
  runnerId: string;
  runner: string;
  outcome: 'succeeded' | 'failed';
  failureKind?: string;
  exitCode: number | null;
  message: string | null;
  outputs: number;
  mode: CompletionMode;
  sentAt: number;
  answeredAt: number;
  /** ok: accepted (duplicate says whether it was a repeat); refused: ok:false with its HTTP status and code. */
  answer: 'ok' | 'refused';
  duplicate: boolean;
  httpStatus: number | null;
  errorCode: string | null;
  errorMessage: string | null;
  /** An earlier try of this very request lost its answer (network error or 5xx during a restart). */
  retriedAfterLoss: boolean;
}

export interface Ledger {
  holds: Hold[];
  /** Latency (ms) of every answered runner call, per route. */
  latency: Record<string, number[]>;
  completions: CompletionRecord[];
  counters: Record<string, number>;
  /** Free-text events (deaths, freezes) with their time, for the report and for a failure's story. */
  events: string[];
}

export const newLedger = (): Ledger => ({ holds: [], latency: {}, completions: [], counters: {}, events: [] });
const timed = (l: Ledger, route: string, ms: number) => (l.latency[route] ??= []).push(ms);
const routeOf = (path: string) => path.replace(/exec_[a-z0-9]+/, ':id');
const bump = (l: Ledger, k: string, n = 1) => (l.counters[k] = (l.counters[k] ?? 0) + n);

// ------------------------------------------------------------------ chaos plan

export interface ChaosPlan {
  slots: number;
  /** Per claim answer that carried jobs: the runner dies before acknowledging them. */
  pDieAfterClaim: number;
  /** Per job: the runner dies mid-job, after the job was acknowledged. */
  pDieMidJob: number;
  /** Per job: the runner freezes when the job is done, past its leases, then completes everything it held. */
  pFreeze: number;
  freezeMs: number;
  /** Per completion: sent twice (sequential, concurrent or twice in one request). */
  pDuplicate: number;
  /** Deaths and freezes stop once this many happened (a bounded amount of chaos per run). */
  maxDeaths: number;
  maxFreezes: number;
}

/** A job's plan, written by the test into its item args: how long it runs, whether it fails, whether it writes an output. */
export function itemArgs(ms: number, fail: boolean, output: boolean): string[] {
  return [`ms=${ms}`, fail ? 'fail' : 'ok', output ? 'out' : 'noout'];
}
function parseArgs(args: string[]): { ms: number; fail: boolean; output: boolean } {
  const ms = Number(/^ms=(\d+)$/.exec(args[0] ?? '')?.[1] ?? 500);
  return { ms, fail: args[1] === 'fail', output: args[2] === 'out' };
}

// ------------------------------------------------------------------ HTTP

interface Answer<T = any> {
  status: number;
  json: T;
}

class Lost extends Error {}

async function postOnce<T>(url: string, token: string | undefined, body: unknown): Promise<Answer<T>> {
  // A fresh connection per call (as the harness's Client does): a kept-alive one closed by a
  // restarting workerd would fail in ways that are the test client's, not the control plane's.
  const res = await request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
    reset: true,
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
  });
  const text = await res.body.text();
  let json: any;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, json };
}

// ------------------------------------------------------------------ the fleet

export interface FleetOptions {
  baseUrl: () => string;
  registrationToken: string;
  plan: ChaosPlan;
  rng: Rng;
  ledger: Ledger;
  /** Keeps this many runners alive: a dead one is replaced (a new registration) after this long. */
  size: number;
  replaceAfterMs: number;
}

export class Fleet {
  readonly runners: SimRunner[] = [];
  stopping = false;
  deaths = 0;
  freezes = 0;
  /** The lease timing the control plane sent last (every claim and heartbeat answer carries it). */
  timing: LeaseTiming | null = null;
  private nextIndex = 0;
  private readonly replacements: Promise<void>[] = [];

  constructor(readonly opts: FleetOptions) {}

  get ledger(): Ledger {
    return this.opts.ledger;
  }

  async start(): Promise<void> {
    const batch: Promise<SimRunner>[] = [];
    for (let i = 0; i < this.opts.size; i++) batch.push(this.spawn());
    await Promise.all(batch);
  }

  private async spawn(): Promise<SimRunner> {
    const i = this.nextIndex++;
    const r = new SimRunner(this, `sim-${String(i).padStart(4, '0')}`, this.opts.rng.fork(i));
    this.runners.push(r);
    await r.register();
    r.start();
    return r;
  }

  /** A runner may die or freeze only while the run is on and the budget allows. */
  mayDie(): boolean {
    return !this.stopping && this.deaths < this.opts.plan.maxDeaths;
  }
  mayFreeze(): boolean {
    return !this.stopping && this.freezes < this.opts.plan.maxFreezes;
  }

  onDeath(r: SimRunner, how: string): void {
    this.deaths++;
    bump(this.ledger, `death_${how}`);
    this.ledger.events.push(`${new Date().toISOString()} ${r.name} (${r.runnerId}) died ${how} holding ${[...r.held.keys()].join(',') || 'nothing'}`);
    if (this.stopping) return;
    this.replacements.push(
      sleep(this.opts.replaceAfterMs).then(async () => {
        if (!this.stopping) await this.spawn();
      }),
    );
  }

  /** Stops claiming everywhere and waits for every runner's loops and jobs to end. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.replacements);
    await Promise.all(this.runners.map((r) => r.stop()));
  }

  /** POST with retries through network errors and 5xx (the control plane restarting). */
  async post<T>(r: SimRunner | null, path: string, body: unknown, token?: string): Promise<Answer<T> & { lostBefore: boolean }> {
    let lostBefore = false;
    for (let i = 0; ; i++) {
      if (r && r.dead) throw new Lost('runner is dead');
      try {
        const t0 = Date.now();
        const a = await postOnce<T>(this.opts.baseUrl() + path, token, body);
        timed(this.ledger, routeOf(path), Date.now() - t0);
        if (a.status < 500) return { ...a, lostBefore };
        bump(this.ledger, `http_${a.status}`);
      } catch (err) {
        bump(this.ledger, 'network_errors');
        if (i > 600) throw err;
      }
      lostBefore = true;
      await sleep(100 + Math.min(400, i * 50));
    }
  }
}

interface Running {
  job: Job;
  hold: Hold;
  canceled: boolean;
  stale: boolean;
  /** Wakes the job's wait early (cancel or stale). */
  wake: () => void;
  /** Held when the runner froze: its completion is a late one. */
  late: boolean;
}

export class SimRunner {
  runnerId = '';
  token = '';
  dead = false;
  private stopped = false;
  readonly held = new Map<string, Running>();
  private frozenUntil = 0;
  private timing: LeaseTiming = { leaseSeconds: 3, heartbeatSeconds: 1, offerSeconds: 3 };
  private loops: Promise<void>[] = [];
  private readonly jobs = new Set<Promise<void>>();
  private slotFreed: (() => void) | null = null;

  constructor(
    private readonly fleet: Fleet,
    readonly name: string,
    private readonly rng: Rng,
  ) {}

  private get ledger(): Ledger {
    return this.fleet.ledger;
  }
  private get plan(): ChaosPlan {
    return this.fleet.opts.plan;
  }

  async register(): Promise<void> {
    const r = await this.fleet.post<RegisterRunnerResponse>(null, '/runner/v1/register', { registrationToken: this.fleet.opts.registrationToken, name: this.name, slots: this.plan.slots });
    if (r.status !== 201) throw new Error(`register ${this.name}: ${r.status} ${JSON.stringify(r.json)}`);
    this.runnerId = r.json.runnerId;
    this.token = r.json.runnerToken;
  }

  start(): void {
    this.loops = [this.claimLoop(), this.heartbeatLoop()];
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.slotFreed?.();
    await Promise.all(this.loops);
    while (this.jobs.size) await Promise.all([...this.jobs]);
    for (const h of this.held.values()) if (h.hold.end === 'open') this.endHold(h.hold, 'stopped');
  }

  private alive(): boolean {
    return !this.dead && !this.stopped;
  }

  private die(how: string): void {
    if (this.dead) return;
    this.dead = true;
    for (const h of this.held.values()) {
      if (h.hold.end === 'open') this.endHold(h.hold, 'died');
      h.wake();
    }
    this.slotFreed?.();
    this.fleet.onDeath(this, how);
  }

  private endHold(h: Hold, end: Hold['end']): void {
    h.end = end;
    h.endAt = Date.now();
  }

  /** Everything this runner sends waits while it is frozen (a stopped process, a partition). */
  private async thawed(extraMs = 0): Promise<void> {
    while (Date.now() < this.frozenUntil + extraMs) await sleep(this.frozenUntil + extraMs - Date.now());
  }

  private post<T>(path: string, body: unknown) {
    return this.fleet.post<T>(this, path, body, this.token);
  }

  // ---------------------------------------------------------------- claim

  private async claimLoop(): Promise<void> {
    try {
      while (this.alive()) {
        await this.thawed();
        const free = this.plan.slots - this.held.size;
        if (free <= 0) {
          await new Promise<void>((r) => (this.slotFreed = r));
          this.slotFreed = null;
          continue;
        }
        const sentAt = Date.now();
        const a = await this.post<ClaimResponse>('/runner/v1/claim', { maxJobs: free, waitSeconds: 1 });
        const answeredAt = Date.now();
        bump(this.ledger, 'claims');
        if (a.status !== 200) {
          bump(this.ledger, `claim_${a.status}`);
          await sleep(200);
          continue;
        }
        this.timing = this.fleet.timing = a.json.timing;
        const holds = a.json.jobs.map((job) => {
          const hold: Hold = {
            executionId: job.executionId,
            attempt: job.attempt,
            shard: job.shard,
            runnerId: this.runnerId,
            runner: this.name,
            claimSentAt: sentAt,
            claimAnsweredAt: answeredAt,
            renewals: 0,
            lastRenewSentAt: null,
            lastRenewAnsweredAt: null,
            end: 'open',
            endAt: null,
          };
          this.ledger.holds.push(hold);
          return { job, hold };
        });
        if (!holds.length) continue;
        bump(this.ledger, 'jobs_claimed', holds.length);
        if (!this.alive()) {
          for (const h of holds) this.endHold(h.hold, this.dead ? 'died' : 'stopped');
          return;
        }
        if (this.fleet.mayDie() && this.rng.chance(this.plan.pDieAfterClaim)) {
          for (const h of holds) this.endHold(h.hold, 'died');
          this.die('after_claim');
          return;
        }
        for (const { job, hold } of holds) {
          let wake = () => {};
          const running: Running = { job, hold, canceled: false, stale: false, late: false, wake: () => wake() };
          const woken = new Promise<void>((r) => (wake = r));
          this.held.set(job.executionId, running);
          const p = this.run(running, woken).finally(() => {
            this.jobs.delete(p);
            this.held.delete(job.executionId);
            this.slotFreed?.();
          });
          this.jobs.add(p);
        }
        // Acknowledge the offers at once (the real runner does too), not at the next tick.
        void this.heartbeat();
      }
    } catch (err) {
      if (!(err instanceof Lost)) throw err;
    }
  }

  // ---------------------------------------------------------------- heartbeat

  /**
   * One beat every heartbeatSeconds from the last send, not from the last answer (as the real
   * runner does): a slow answer must not stretch the interval past the lease. At most three beats
   * in flight; a runner whose beats all hang waits for one of them.
   */
  private async heartbeatLoop(): Promise<void> {
    const inFlight = new Set<Promise<void>>();
    while (this.alive()) {
      await sleep(this.timing.heartbeatSeconds * 1000);
      // After a freeze the jobs' late completions go out first; then the heartbeat learns the rest are stale.
      await this.thawed(300);
      if (!this.alive()) break;
      if (inFlight.size >= 3) await Promise.race(inFlight);
      const p: Promise<void> = this.heartbeat().finally(() => inFlight.delete(p));
      inFlight.add(p);
    }
    await Promise.all(inFlight);
  }

  private async heartbeat(): Promise<void> {
    // A frozen runner sends nothing (the acknowledgement after a claim that was in flight when it froze waits too).
    await this.thawed();
    if (!this.alive()) return;
    const sent = [...this.held.values()];
    const sentAt = Date.now();
    let a: Answer<RunnerHeartbeatResponse>;
    try {
      // One try: a lost heartbeat is simply missed (the next tick sends another), like a runner's.
      a = await postOnce<RunnerHeartbeatResponse>(this.fleet.opts.baseUrl() + '/runner/v1/heartbeat', this.token, {
        activeJobs: sent.length,
        jobs: sent.map((r) => ({ executionId: r.job.executionId, attempt: r.job.attempt, shard: r.job.shard })),
      });
    } catch {
      bump(this.ledger, 'heartbeats_lost');
      return;
    }
    const answeredAt = Date.now();
    timed(this.ledger, '/runner/v1/heartbeat', answeredAt - sentAt);
    bump(this.ledger, 'heartbeats');
    if (a.status !== 200) {
      bump(this.ledger, `heartbeat_${a.status}`);
      return;
    }
    // A runner that died while the heartbeat was in flight never reads its answer (its records
    // stay a lower bound of what the control plane granted it).
    if (this.dead) return;
    this.timing = a.json.timing;
    const stale = new Set(a.json.stale.map((s) => s.executionId));
    const cancel = new Set(a.json.cancel);
    for (const r of sent) {
      if (stale.has(r.job.executionId)) {
        if (!r.stale) {
          r.stale = true;
          bump(this.ledger, 'stale_in_heartbeat');
          if (r.hold.end === 'open') this.endHold(r.hold, 'stale');
          r.wake();
        }
        continue;
      }
      r.hold.renewals++;
      // Beats may answer out of order: keep the latest send (the lease runs from the latest renewal).
      if (r.hold.lastRenewSentAt === null || sentAt > r.hold.lastRenewSentAt) {
        r.hold.lastRenewSentAt = sentAt;
        r.hold.lastRenewAnsweredAt = answeredAt;
      }
      if (cancel.has(r.job.executionId) && !r.canceled) {
        r.canceled = true;
        bump(this.ledger, 'cancel_in_heartbeat');
        r.wake();
      }
    }
  }

  // ---------------------------------------------------------------- a job

  private async run(r: Running, woken: Promise<void>): Promise<void> {
    try {
      await this.work(r, woken);
    } catch (err) {
      if (!(err instanceof Lost)) throw err;
    }
  }

  private async work(r: Running, woken: Promise<void>): Promise<void> {
    const { job, hold } = r;
    const spec = parseArgs(job.args);
    const dieMid = this.rng.chance(this.plan.pDieMidJob);
    const freeze = this.rng.chance(this.plan.pFreeze);
    const dup = this.rng.chance(this.plan.pDuplicate) ? this.rng.pick(['sequential', 'concurrent', 'same-request'] as const) : null;
    await Promise.race([sleep(dieMid ? spec.ms / 2 : spec.ms), woken]);
    if (!this.alive() || r.stale) return;
    if (dieMid && !r.canceled && this.fleet.mayDie()) {
      // Mid-job: once the job was acknowledged (its lease proper started), the runner goes silent.
      while (hold.renewals === 0 && this.alive() && !r.stale) await sleep(50);
      if (!this.alive() || r.stale) return;
      this.die('mid_job');
      return;
    }
    const canceled = r.canceled;
    const outputs: { path: string; sha256: string; size: number }[] = [];
    if (!canceled && spec.output) {
      // One small output per attempt, uploaded through the presign route of the attempt.
      const bytes = Buffer.from(`result:${job.executionId}:${job.attempt}\n`);
      const file = { path: 'out/result.txt', sha256: sha256(bytes), size: bytes.length };
      await this.thawed();
      const p = await this.post<PresignOutputsResponse>(`/runner/v1/executions/${job.executionId}/outputs/presign`, { attempt: job.attempt, shard: job.shard, files: [file] });
      if (p.status !== 200) {
        // The attempt is over (requeued, canceled and gone): stop, report nothing.
        bump(this.ledger, `presign_${p.status}`);
        if (hold.end === 'open') this.endHold(hold, 'stale');
        return;
      }
      for (const u of p.json.uploads) await this.putBlob(u.url, bytes, u.headers);
      outputs.push(file);
      bump(this.ledger, 'outputs_uploaded');
    }
    if (freeze && this.fleet.mayFreeze() && !this.dead) {
      this.fleet.freezes++;
      const until = Date.now() + this.plan.freezeMs;
      this.frozenUntil = Math.max(this.frozenUntil, until);
      for (const x of this.held.values()) x.late = true;
      bump(this.ledger, 'freezes');
      this.ledger.events.push(`${new Date().toISOString()} ${this.name} (${this.runnerId}) froze for ${this.plan.freezeMs} ms holding ${[...this.held.values()].map((x) => `${x.job.executionId}#${x.job.attempt}`).join(',')}`);
    }
    await this.thawed();
    if (!this.alive()) return;
    // A job that learned it is stale stops without reporting, unless it was held across a freeze:
    // those report anyway (late completions, which must be refused).
    if (r.stale && !r.late) return;
    const completion = {
      executionId: job.executionId,
      attempt: job.attempt,
      shard: job.shard,
      ...(canceled
        ? { outcome: 'failed' as const, failureKind: 'canceled' as const, exitCode: null, message: 'canceled' }
        : spec.fail
          ? { outcome: 'failed' as const, failureKind: 'script_error' as const, exitCode: 1, message: 'script failed (planned)' }
          : { outcome: 'succeeded' as const, exitCode: 0 }),
      outputs,
      durationMs: spec.ms,
    };
    const mode: CompletionMode = r.late ? 'late' : (dup ?? 'single');
    if (mode === 'concurrent') {
      await Promise.all([this.complete([completion], mode), this.complete([completion], mode)]);
    } else if (mode === 'same-request') {
      await this.complete([completion, completion], mode);
    } else {
      await this.complete([completion], mode);
      if (mode === 'sequential') await this.complete([completion], mode);
    }
  }

  private async complete(
    completions: { executionId: string; attempt: number; outcome: 'succeeded' | 'failed'; failureKind?: string; exitCode: number | null; message?: string; outputs: unknown[] }[],
    mode: CompletionMode): Promise<void> {
    const sentAt = Date.now();
    bump(this.ledger, `completions_${mode}`, completions.length);
    const a = await this.post<CompleteManyResponse>('/runner/v1/complete', { completions });
    const answeredAt = Date.now();
    if (a.status !== 200) throw new Error(`${this.name}: POST /runner/v1/complete: ${a.status} ${JSON.stringify(a.json)}`);
    const retry: typeof completions = [];
    a.json.results.forEach((res: CompletionResult, i) => {
      const c = completions[i]!;
      if (!res.ok && res.status >= 500) {
        // That item alone failed for a passing reason (e.g. the object store check): sent again, as a runner does.
        bump(this.ledger, `completion_item_${res.status}`);
        this.ledger.events.push(`${new Date().toISOString()} ${this.name}: completion of ${c.executionId}#${c.attempt} answered ${res.status} ${res.error.code}: ${res.error.message}; retrying it`);
        retry.push(c);
        return;
      }
      this.ledger.completions.push({
        executionId: c.executionId,
        attempt: c.attempt,
        runnerId: this.runnerId,
        runner: this.name,
        outcome: c.outcome,
        failureKind: c.failureKind,
        exitCode: c.exitCode,
        message: c.message ?? null,
        outputs: c.outputs.length,
        mode,
        sentAt,
        answeredAt,
        answer: res.ok ? 'ok' : 'refused',
        duplicate: res.ok ? res.duplicate : false,
        httpStatus: res.ok ? null : res.status,
        errorCode: res.ok ? null : res.error.code,
        errorMessage: res.ok ? null : res.error.message,
        retriedAfterLoss: a.lostBefore,
      });
      const h = this.held.get(c.executionId);
      if (h && h.hold.attempt === c.attempt && (h.hold.end === 'open' || h.hold.end === 'stale')) this.endHold(h.hold, res.ok ? 'completed' : 'refused');
    });
    if (retry.length) {
      await sleep(200);
      await this.complete(retry, mode);
    }
  }

  private async putBlob(url: string, bytes: Buffer, headers?: Record<string, string>): Promise<void> {
    for (let i = 0; ; i++) {
      try {
        const res = await request(url, { method: 'PUT', body: bytes, headers: { ...(headers ?? {}), 'content-length': String(bytes.length) }, reset: true });
        const text = await res.body.text();
        if (res.statusCode === 200) return;
        if (i > 20) throw new Error(`PUT ${url.split('?')[0]}: ${res.statusCode} ${text.slice(0, 200)}`);
      } catch (err) {
        if (i > 20) throw err;
      }
      await sleep(100);
    }
  }
}
