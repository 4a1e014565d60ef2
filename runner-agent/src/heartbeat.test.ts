import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { newId } from '../../shared/ids.js';
import type { LeaseTiming, RunnerHeartbeatRequest, RunnerHeartbeatResponse } from '../../shared/api/runner.js';
import { ApiTimeoutError } from './api.js';
import { DEFAULT_HEARTBEAT_MS, HeartbeatLoop, type LeaseHolder } from './heartbeat.js';

/**
 * The heartbeat loop on fake timers: every time below is exact. `send` stands in for
 * RunnerApi.heartbeat; in 'manual' mode the test answers each call itself, in 'hang' mode a call
 * fails with ApiTimeoutError after the timeout it was given (what RunnerApi does when the control
 * plane drops packets).
 */
type Mode = 'ok' | 'fail' | 'hang' | 'manual';
interface Call {
  body: RunnerHeartbeatRequest;
  timeoutMs: number;
  at: number;
  answer(r?: Partial<RunnerHeartbeatResponse>): void;
  fail(): void;
}

let t0: number;
let mode: Mode;
let serverTiming: LeaseTiming;
let calls: Call[];
let held: string[];
let draining: boolean;
let drains: number;
let loop: HeartbeatLoop;

const now = () => Date.now() - t0;
const at = (ms: number) => vi.advanceTimersByTimeAsync(ms - now());
const timing = (leaseSeconds: number, heartbeatSeconds: number, offerSeconds = 60): LeaseTiming => ({ leaseSeconds, heartbeatSeconds, offerSeconds });
const jobsOf = (c: Call) => c.body.jobs?.map((j) => j.executionId);
const ids = (...hs: TestHolder[]) => hs.map((h) => h.job.executionId);

interface TestHolder extends LeaseHolder {
  holding: boolean;
  events: string[];
}

function holder(shard = 0): TestHolder {
  return {
    job: { executionId: newId('execution'), attempt: 2, shard },
    holding: true,
    events: [],
    cancel() {
      this.events.push(`cancel@${now()}`);
    },
    stale() {
      this.events.push(`stale@${now()}`);
      this.holding = false;
    },
    leaseLost() {
      this.events.push(`leaseLost@${now()}`);
      this.holding = false;
    },
  };
}

beforeEach(() => {
  vi.useFakeTimers();
  t0 = Date.now();
  mode = 'ok';
  serverTiming = timing(10, 2);
  calls = [];
  held = ['b'.repeat(64)];
  draining = false;
  drains = 0;
  loop = new HeartbeatLoop({
    send: (body, timeoutMs) =>
      new Promise((resolve, reject) => {
        const call: Call = {
          body: structuredClone(body),
          timeoutMs,
          at: now(),
          answer: (r = {}) => resolve({ ok: true, drain: false, timing: serverTiming, cancel: [], stale: [], ...r }),
          fail: () => reject(new TypeError('fetch failed')),
        };
        calls.push(call);
        if (mode === 'ok') call.answer();
        if (mode === 'fail') call.fail();
        if (mode === 'hang') setTimeout(() => reject(new ApiTimeoutError(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    status: () => ({ activeJobs: 1, draining }),
    envKeys: () => held,
    onDrain: () => drains++,
    log: () => undefined,
  });
});

afterEach(async () => {
  mode = 'ok';
  for (const c of calls) c.answer();
  await loop.stop();
  vi.useRealTimers();
});

describe('HeartbeatLoop: cadence and timing', () => {
  it('beats at once on start, every DEFAULT_HEARTBEAT_MS until an answer carries timing, then by that timing', async () => {
    mode = 'fail';
    loop.start();
    expect(calls.map((c) => c.at)).toEqual([0]);
    await at(2 * DEFAULT_HEARTBEAT_MS);
    expect(calls.map((c) => [c.at, c.timeoutMs])).toEqual([0, 1, 2].map((i) => [i * DEFAULT_HEARTBEAT_MS, DEFAULT_HEARTBEAT_MS]));
    mode = 'ok';
    serverTiming = timing(20, 5);
    await at(3 * DEFAULT_HEARTBEAT_MS); // answered: 5 s from now on
    await at(3 * DEFAULT_HEARTBEAT_MS + 5000);
    expect(calls.slice(3).map((c) => [c.at, c.timeoutMs])).toEqual([
      [6000, DEFAULT_HEARTBEAT_MS],
      [11_000, 5000],
    ]);
  });

  it('follows the timing of the latest answer, from a heartbeat or a claim; each call is bounded by the interval in force', async () => {
    serverTiming = timing(12, 3);
    loop.start();
    await at(2999);
    serverTiming = timing(4, 1); // the control plane shortens the interval: the answer at 3 s carries it
    await at(5000);
    expect(calls.map((c) => [c.at, c.timeoutMs])).toEqual([
      [0, DEFAULT_HEARTBEAT_MS],
      [3000, 3000],
      [4000, 1000],
      [5000, 1000],
    ]);
    // A claim answer changes it too: no extra call for the claim; the next one 4 s after the last send.
    serverTiming = timing(16, 4);
    await at(5500);
    loop.claimed([holder()], timing(16, 4));
    await at(13_000);
    expect(calls.slice(4).map((c) => [c.at, c.timeoutMs])).toEqual([
      [9000, 4000],
      [13_000, 4000],
    ]);
  });

  it('sends envKeys in the first heartbeat and then only when the set changed since the last successful one', async () => {
    serverTiming = timing(10, 1);
    mode = 'fail';
    loop.start();
    await at(1999);
    mode = 'ok';
    await at(3000);
    held = [...held, 'a'.repeat(64)];
    await at(5000);
    expect(calls.map((c) => [c.at, c.body.envKeys])).toEqual([
      [0, ['b'.repeat(64)]], // first
      [2000, ['b'.repeat(64)]], // the first failed: not received yet
      [3000, undefined],
      [4000, ['a'.repeat(64), 'b'.repeat(64)]], // changed
      [5000, undefined],
    ]);
  });
});

describe('HeartbeatLoop: acknowledging claims', () => {
  it('the next regular heartbeat acknowledges the jobs of a claim answer (no extra call), naming attempt and shard', async () => {
    loop.start();
    await at(500);
    const a = holder(7);
    loop.claimed([a], serverTiming);
    await at(1999);
    expect(calls.map((c) => c.at)).toEqual([0]);
    await at(2000);
    expect(calls.map((c) => c.at)).toEqual([0, 2000]); // one interval after the last send, within the offer
    expect(calls[1]!.body.jobs).toEqual([{ executionId: a.job.executionId, attempt: 2, shard: 7 }]);
    expect(calls[1]!.body).toMatchObject({ activeJobs: 1, draining: false });
  });

  it('several claims between two heartbeats are acknowledged by the next one, even while a call is in flight', async () => {
    mode = 'manual';
    loop.start();
    await at(300);
    const [a, b] = [holder(), holder()];
    loop.claimed([a], serverTiming);
    loop.claimed([b], serverTiming);
    expect(calls.length).toBe(1);
    await at(700);
    calls[0]!.answer();
    await at(1999);
    expect(calls.length).toBe(1);
    await at(2000);
    expect(jobsOf(calls[1]!)).toEqual(ids(a, b));
  });

  it('a claim with no jobs sends nothing extra', async () => {
    loop.start();
    await at(500);
    loop.claimed([], timing(10, 2));
    expect(calls.length).toBe(1);
  });
});

describe('HeartbeatLoop: answers', () => {
  it('routes cancel and stale to their jobs and drain to the agent; a canceled job stays renewed, a stale one does not', async () => {
    mode = 'manual';
    loop.start();
    calls[0]!.answer();
    await at(100);
    const [a, b, c] = [holder(), holder(), holder()];
    loop.claimed([a, b, c], serverTiming);
    await at(2000);
    calls[1]!.answer({ cancel: [a.job.executionId], stale: [{ executionId: b.job.executionId, currentAttempt: 3, status: 'running' }], drain: true });
    await vi.advanceTimersByTimeAsync(0);
    expect([a.events, b.events, c.events]).toEqual([['cancel@2000'], ['stale@2000'], []]);
    expect(drains).toBe(1);
    await at(4000);
    expect(jobsOf(calls[2]!)).toEqual(ids(a, c));
  });

  it('renews until a job is dropped, and never a job given up (shut down)', async () => {
    loop.start();
    await vi.advanceTimersByTimeAsync(0);
    const [a, b, c] = [holder(), holder(), holder()];
    loop.claimed([a, b, c], serverTiming);
    await at(2000);
    loop.drop(b);
    c.holding = false;
    await at(4000);
    expect(calls.slice(1).map(jobsOf)).toEqual([ids(a, b, c), ids(a)]);
    await at(60_000);
    expect(c.events).toEqual([]); // not renewed, and not checked either
  });

  it('stop() sends one last heartbeat (draining) and nothing after it', async () => {
    loop.start();
    await at(1000);
    draining = true;
    await loop.stop();
    expect(calls.map((c) => [c.at, c.body.draining])).toEqual([
      [0, false],
      [1000, true],
    ]);
    await at(60_000);
    expect(calls.length).toBe(2);
  });
});

describe('HeartbeatLoop: lease loss (F1, F11)', () => {
  it('a healthy runner never loses a lease, whatever the timing (even a lease of at most two intervals)', async () => {
    // Timings the control plane can send (shared/lease.ts): the offer is at least two intervals.
    for (const t of [timing(2, 1, 2), timing(3, 1, 3), timing(4, 2, 4), timing(5, 4, 8), timing(40, 10, 20)]) {
      serverTiming = t;
      const a = holder();
      loop.start();
      loop.claimed([a], t);
      await at(now() + 120_000);
      expect([t, a.events]).toEqual([t, []]);
      loop.drop(a);
    }
  });

  it('a new job stops exactly leaseSeconds - heartbeatSeconds after the claim answer when no heartbeat succeeds', async () => {
    mode = 'fail';
    loop.start();
    await at(1000);
    const a = holder();
    loop.claimed([a], timing(10, 2));
    await at(8999);
    expect(a.events).toEqual([]);
    await at(9000);
    expect(a.events).toEqual(['leaseLost@9000']);
    await at(30_000);
    expect(a.events).toEqual(['leaseLost@9000']); // once
    expect(calls.filter((c) => c.at > 9000).every((c) => jobsOf(c)!.length === 0)).toBe(true); // and no longer renewed
  });

  it('counts from when the last successful heartbeat naming the job was sent, not when it was answered', async () => {
    mode = 'manual';
    serverTiming = timing(10, 2);
    loop.start();
    const a = holder();
    loop.claimed([a], serverTiming);
    calls[0]!.fail(); // the start heartbeat did not name a; the next one does
    await at(2000);
    expect(calls[1]!.at).toBe(2000);
    await at(3500);
    calls[1]!.answer(); // sent at 2 s, answered at 3.5 s: the lease was renewed no earlier than 2 s
    mode = 'fail';
    await at(9999);
    expect(a.events).toEqual([]);
    await at(10_000);
    expect(a.events).toEqual(['leaseLost@10000']);
  });

  it('a hung heartbeat delays the next one by at most one interval and never delays the lease check', async () => {
    mode = 'hang';
    loop.start();
    const a = holder();
    loop.claimed([a], timing(7, 2)); // gives up after 7 - 2 = 5 s
    await at(6000);
    // Every call is cut at its timeout (the interval) and the next goes out at once.
    expect(calls.map((c) => [c.at, c.timeoutMs])).toEqual([
      [0, DEFAULT_HEARTBEAT_MS],
      [2000, 2000],
      [4000, 2000],
      [6000, 2000],
    ]);
    expect(a.events).toEqual(['leaseLost@5000']); // while the call sent at 4 s still hung
    expect(calls.map(jobsOf)).toEqual([[], ids(a), ids(a), []]);
  });

  it('a heartbeat due at the deadline goes out without the job (it is given up first)', async () => {
    mode = 'fail';
    loop.start();
    const a = holder();
    loop.claimed([a], timing(10, 2)); // deadline 8 s, when a heartbeat is due too
    await at(8000);
    expect(a.events).toEqual(['leaseLost@8000']);
    expect(calls.filter((c) => c.at === 8000).map(jobsOf)).toEqual([[]]);
  });

  it('the window is at least two intervals (the next heartbeat and its timeout), but never longer than the lease', async () => {
    for (const [t, after] of [
      [timing(5, 2), 4000], // 5 - 2 = 3 s would leave the heartbeat sent at 2 s less than its timeout: two intervals
      [timing(3, 2), 3000], // two intervals would outlast the lease: the lease
    ] as const) {
      mode = 'fail';
      loop.start();
      const a = holder();
      const from = now();
      loop.claimed([a], t);
      await at(from + after - 1);
      expect(a.events).toEqual([]);
      await at(from + after);
      expect(a.events).toEqual([`leaseLost@${from + after}`]);
    }
  });

  it('a job never acknowledged gives up when its offer ends, if that comes before the lease bound', async () => {
    mode = 'manual';
    const t = timing(30, 5, 10);
    loop.start();
    calls[0]!.answer({ timing: t });
    await vi.advanceTimersByTimeAsync(0);
    const a = holder();
    loop.claimed([a], t);
    await at(5000);
    calls[1]!.answer({ timing: t }); // a acknowledged by the heartbeat sent at 5 s
    await at(6000);
    const b = holder();
    loop.claimed([b], t);
    mode = 'fail';
    await at(10_000);
    calls[2]!.fail(); // b's first heartbeat fails, and every one after it
    await at(15_999);
    expect(b.events).toEqual([]);
    await at(16_000);
    expect(b.events).toEqual(['leaseLost@16000']); // the offer (10 s from its claim) ended
    await at(29_999);
    expect(a.events).toEqual([]);
    await at(30_000);
    expect(a.events).toEqual(['leaseLost@30000']); // 30 - 5 s after its last good heartbeat
  });
});
