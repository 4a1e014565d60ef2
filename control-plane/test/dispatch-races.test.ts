/**
 * The races and stuck states of the first dispatch core, each forced deterministically: test hooks
 * pause the Dispatcher between two steps (a flush held back, D1 failing, a restart between D1's
 * commit and the outbox's bookkeeping) or move its clock, instead of hoping the interleaving
 * happens. Every test ends with D1 and the Dispatcher agreeing.
 */
import { env, runInDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { Dispatcher, FLUSH_MS, OUTBOX_LIMIT } from '../src/dispatch/dispatcher.js';
import { dispatcherAt } from '../src/dispatch/shards.js';
import { leaseTiming, loadConfig } from '../src/env.js';
import { admin, blob, call, claim, getExecution, heartbeatJobs, jobHeartbeat, newRunner, newTenant, put, queuedExecution, type Tenant } from './helpers.js';

const withDispatcher = <T>(pool: string, fn: (d: Dispatcher, state: DurableObjectState) => T | Promise<T>, shard = 0) =>
  runInDurableObject(dispatcherAt(env, pool, shard), (instance, state) => fn(instance as unknown as Dispatcher, state));

/** A gate a hook waits on until the test opens it. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  let reached!: () => void;
  const arrived = new Promise<void>((r) => (reached = r));
  return { open, arrived, wait: () => (reached(), opened) };
}

async function batchOf(t: Tenant, n: number, extra: Record<string, unknown> = {}) {
  const script = await blob(`print("race ${Math.random()}")`);
  const items = Array.from({ length: n }, (_, i) => ({ inputName: `in-${i}.csv`, inputs: [] }));
  const res = await call('POST', '/api/v1/batches', { token: t.key, body: { template: { script: { name: 'job.py', sha256: script.sha256, size: script.size }, pool: t.pool }, items, ...extra } });
  expect(res.status, res.text).toBe(201);
  for (const u of res.json.uploads) await put(u.url, script.bytes);
  const sub = await call('POST', `/api/v1/batches/${res.json.batch.id}/submit`, { token: t.key });
  expect(sub.status, sub.text).toBe(200);
  return res.json as { batch: { id: string }; items: { executionId: string }[] };
}

const complete = (token: string, id: string, attempt: number, body: Record<string, unknown> = {}) =>
  call('POST', `/runner/v1/executions/${id}/complete`, { token, body: { attempt, outcome: 'succeeded', exitCode: 0, ...body } });

/** D1's executions rows and the Dispatcher's audit agree on every execution it remembers. */
async function expectAgreement(t: Tenant) {
  const audit = await withDispatcher(t.pool, (d) => d.audit());
  expect(audit.outbox).toBe(0);
  for (const snap of [...audit.live, ...audit.finished]) {
    const row = await env.DB.prepare(`SELECT status, attempt, version FROM executions WHERE id = ?`).bind(snap.id).first<{ status: string; attempt: number; version: number }>();
    expect(row, snap.id).toEqual({ status: snap.status, attempt: snap.attempt, version: snap.version });
  }
  return audit;
}

describe('dispatch races, forced', () => {
  it('cancel of a batch while runners claim: the claims in between never leave an execution stuck (was: D1 running, no job)', async () => {
    const t = await newTenant();
    const a = await newRunner(t, 'a');
    const b = await newRunner(t, 'b');
    const { batch, items } = await batchOf(t, 6);
    const first = (await claim(a.runnerToken, { maxJobs: 2 })).jobs;
    expect(first).toHaveLength(2);

    // Hold every flush back: the cancel decides everything in one synchronous step, then waits for D1.
    await withDispatcher(t.pool, (d) => d.flush());
    const g = gate();
    await withDispatcher(t.pool, (d) => void (d.hooks.beforeFlush = g.wait));
    const canceling = dispatcherAt(env, t.pool, 0).cancelBatch(batch.id, t.accountId, [], 'batch canceled by user');
    await g.arrived;
    for (;;) {
      const decided = await withDispatcher(t.pool, (_d, s) => s.storage.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM canceled_batches`).one().n);
      if (decided) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    // A claim between the cancel's decision and its D1 write finds nothing of the batch.
    expect((await claim(b.runnerToken, { maxJobs: 6 })).jobs).toEqual([]);
    // The two running jobs are told to stop at their next heartbeat.
    expect((await heartbeatJobs(a.runnerToken, first)).cancel.sort()).toEqual(first.map((j) => j.executionId).sort());
    await withDispatcher(t.pool, (d) => void (d.hooks.beforeFlush = undefined));
    g.open();
    expect(await canceling).toEqual({ canceled: 4, stopping: 2 });
    expect((await call('POST', `/api/v1/batches/${batch.id}/cancel`, { token: t.key })).status).toBe(200);

    for (const j of first) expect((await complete(a.runnerToken, j.executionId, j.attempt, { outcome: 'failed', failureKind: 'canceled' })).json.status).toBe('canceled');
    const snap = (await call('GET', `/api/v1/batches/${batch.id}`, { token: t.key })).json.batch;
    expect(snap.counts).toMatchObject({ total: 6, canceled: 6, queued: 0, running: 0 });
    expect(snap.status).toBe('canceled');
    for (const it of items) expect((await getExecution(t, it.executionId)).status).toBe('canceled');
    await expectAgreement(t);
    // Nothing answers "still running": the batch can be retried.
    const retry = await call('POST', '/api/v1/executions/retry', { token: t.key, body: { batchId: batch.id } });
    expect(retry.status, retry.text).toBe(201);
    expect(retry.json.executions).toHaveLength(6);
  });

  it('a restart between D1 committing a flush and the outbox bookkeeping repeats the flush harmlessly (no stuck completing, no double artifacts or counts)', async () => {
    const t = await newTenant();
    const runner = await newRunner(t);
    const exec = await queuedExecution(t);
    const job = (await claim(runner.runnerToken)).jobs[0]!;
    const out = await blob('result');
    const pre = await call('POST', `/runner/v1/executions/${exec.id}/outputs/presign`, { token: runner.runnerToken, body: { attempt: 1, files: [{ path: 'r.txt', sha256: out.sha256, size: out.size }] } });
    for (const u of pre.json.uploads) await put(u.url, out.bytes);

    // The flush after the completion commits in D1, then the object "dies" before marking it sent.
    const g = gate();
    await withDispatcher(t.pool, (d) => void (d.hooks.afterD1Commit = g.wait));
    const done = await complete(runner.runnerToken, exec.id, job.attempt, { outputs: [{ path: 'r.txt', sha256: out.sha256, size: out.size }], cache: { envHit: true, buildSeconds: 0 } });
    expect(done.json).toEqual({ status: 'succeeded', duplicate: false });
    const flushing = withDispatcher(t.pool, (d) => d.alarm());
    await g.arrived;
    // A new instance over the same storage (what a restart gives) finds the entries unsent and sends them again.
    await withDispatcher(t.pool, async (_d, state) => {
      const fresh = new Dispatcher(state, env as never);
      await fresh.flush();
    });
    g.open();
    await flushing;
    await withDispatcher(t.pool, (d) => d.flush());

    expect(await getExecution(t, exec.id)).toMatchObject({ status: 'succeeded', attempt: 1 });
    const arts = await env.DB.prepare(`SELECT COUNT(*) AS n FROM artifacts WHERE execution_id = ?`).bind(exec.id).first<{ n: number }>();
    expect(arts!.n).toBe(1);
    const env_ = await env.DB.prepare(`SELECT hits FROM cache_records WHERE account_id = ? AND kind = 'env'`).bind(t.accountId).first<{ hits: number }>();
    expect(env_!.hits).toBe(1);
    await expectAgreement(t);
  });

  it('D1 failing: claims and completions go on, D1 catches up afterwards, and a reader never sees an older state than it was shown', async () => {
    const t = await newTenant();
    const runner = await newRunner(t);
    const exec = await queuedExecution(t);
    await withDispatcher(t.pool, (d) => void (d.hooks.d1Batch = () => Promise.reject(new Error('D1 is down'))));
    const job = (await claim(runner.runnerToken)).jobs[0]!;
    // D1 still says queued; the API answers from the Dispatcher.
    expect((await env.DB.prepare(`SELECT status FROM executions WHERE id = ?`).bind(exec.id).first<{ status: string }>())!.status).toBe('queued');
    expect((await getExecution(t, exec.id)).status).toBe('running');
    // Submitting again is harmless and says what is true.
    expect((await call('POST', `/api/v1/executions/${exec.id}/submit`, { token: t.key })).json.execution.status).toBe('running');
    expect((await complete(runner.runnerToken, exec.id, job.attempt)).json.status).toBe('succeeded');
    expect((await getExecution(t, exec.id)).status).toBe('succeeded');

    await withDispatcher(t.pool, (d) => void (d.hooks.d1Batch = undefined));
    await withDispatcher(t.pool, (d) => d.flush());
    expect((await env.DB.prepare(`SELECT status FROM executions WHERE id = ?`).bind(exec.id).first<{ status: string }>())!.status).toBe('succeeded');
    await expectAgreement(t);
  });

  it('a full outbox (D1 far behind) makes claims answer 503 with Retry-After instead of falling further behind', async () => {
    const t = await newTenant();
    const runner = await newRunner(t);
    await queuedExecution(t);
    await withDispatcher(t.pool, (d) => void ((d as unknown as { pendingD1: number }).pendingD1 = OUTBOX_LIMIT));
    const r = await call('POST', '/runner/v1/claim', { token: runner.runnerToken, body: { waitSeconds: 0 } });
    expect(r.status).toBe(503);
    expect(r.json.error.code).toBe('unavailable');
    expect(r.headers.get('retry-after')).toBe('1');
    await withDispatcher(t.pool, (d) => void ((d as unknown as { pendingD1: number }).pendingD1 = 0));
    expect((await claim(runner.runnerToken)).jobs).toHaveLength(1);
  });
});

describe('leases, pinned', () => {
  it('a lease requeues at its deadline exactly: not a millisecond before, and the alarm is set no later than the deadline', async () => {
    const t = await newTenant();
    const runner = await newRunner(t);
    const exec = await queuedExecution(t);
    const t0 = Date.now();
    await withDispatcher(t.pool, (d) => void (d.now = () => t0));
    await claim(runner.runnerToken);
    const leaseMs = leaseTiming(loadConfig(env as never)).leaseSeconds * 1000;
    const { deadline, alarm } = await withDispatcher(t.pool, async (d, state) => ({
      deadline: state.storage.sql.exec<{ d: number }>(`SELECT lease_deadline AS d FROM jobs`).one().d,
      alarm: await state.storage.getAlarm(),
    }));
    expect(deadline).toBe(t0 + leaseMs);
    expect(alarm).not.toBeNull();
    expect(alarm!).toBeLessThanOrEqual(deadline);

    await withDispatcher(t.pool, async (d) => {
      d.now = () => deadline - 1;
      await d.alarm();
    });
    expect((await getExecution(t, exec.id)).status).toBe('running');
    await withDispatcher(t.pool, async (d) => {
      d.now = () => deadline;
      await d.alarm();
    });
    expect((await getExecution(t, exec.id)).status).toBe('queued');
    await withDispatcher(t.pool, (d) => void (d.now = Date.now));
  });

  it('an answer no runner acknowledged goes back to the queue after offerSeconds without costing an attempt; a release costs none either', async () => {
    // MAX_ATTEMPTS is 2 in these tests.
    const t = await newTenant();
    const runner = await newRunner(t);
    const exec = await queuedExecution(t);
    const { offerSeconds, leaseSeconds } = leaseTiming(loadConfig(env as never));
    let now = Date.now();
    await withDispatcher(t.pool, (d) => void (d.now = () => now));
    const expireAll = async (ms: number) => {
      now += ms;
      await withDispatcher(t.pool, (d) => d.alarm());
    };
    // Three answers lost in transit: each returns to the queue when its offer runs out.
    for (let i = 0; i < 3; i++) {
      expect((await claim(runner.runnerToken, {}, { ack: false })).jobs[0]!.executionId).toBe(exec.id);
      await expireAll(offerSeconds * 1000 - 1);
      expect((await getExecution(t, exec.id)).status).toBe('running');
      await expireAll(1);
      expect((await getExecution(t, exec.id)).status).toBe('queued');
    }
    // Given back on shutdown: no attempt either.
    const given = (await claim(runner.runnerToken)).jobs[0]!;
    expect((await call('POST', `/runner/v1/executions/${exec.id}/release`, { token: runner.runnerToken, body: { attempt: given.attempt } })).status).toBe(200);
    // Two real attempts, each started (acknowledged) and lost: only now is the execution lost.
    await claim(runner.runnerToken);
    await expireAll(leaseSeconds * 1000);
    expect((await getExecution(t, exec.id)).status).toBe('queued');
    await claim(runner.runnerToken);
    await expireAll(leaseSeconds * 1000);
    expect(await getExecution(t, exec.id)).toMatchObject({ status: 'failed', failureKind: 'runner_lost' });
    await withDispatcher(t.pool, (d) => void (d.now = Date.now));
    await expectAgreement(t);
  });

  it('a late completion of a lease that expired and ended the execution (canceled, or out of attempts) is stale, not a duplicate', async () => {
    const t = await newTenant();
    const runner = await newRunner(t);
    const { leaseSeconds } = leaseTiming(loadConfig(env as never));
    let now = Date.now();
    await withDispatcher(t.pool, (d) => void (d.now = () => now));
    const expire = async () => {
      now += leaseSeconds * 1000;
      await withDispatcher(t.pool, (d) => d.alarm());
    };
    // Canceled while its runner was unreachable.
    const a = await queuedExecution(t);
    const ja = (await claim(runner.runnerToken)).jobs[0]!;
    expect((await call('POST', `/api/v1/executions/${a.id}/cancel`, { token: t.key })).status).toBe(200);
    await expire();
    expect((await getExecution(t, a.id)).status).toBe('canceled');
    const lateA = await complete(runner.runnerToken, a.id, ja.attempt);
    expect(lateA.status).toBe(409);
    expect(lateA.json.error).toMatchObject({ code: 'stale_attempt', details: { status: 'canceled', currentAttempt: ja.attempt } });
    // Out of attempts (MAX_ATTEMPTS is 2 here).
    const b = await queuedExecution(t);
    await claim(runner.runnerToken);
    await expire();
    const jb = (await claim(runner.runnerToken)).jobs[0]!;
    await expire();
    expect(await getExecution(t, b.id)).toMatchObject({ status: 'failed', failureKind: 'runner_lost' });
    const lateB = await complete(runner.runnerToken, b.id, jb.attempt);
    expect(lateB.status).toBe(409);
    expect(lateB.json.error.code).toBe('stale_attempt');
    await withDispatcher(t.pool, (d) => void (d.now = Date.now));
    await expectAgreement(t);
  });

  it('lease timing comes from the control plane with every claim and heartbeat answer; registration stores none', async () => {
    const t = await newTenant();
    const reg = await call('POST', '/runner/v1/register', { body: { registrationToken: t.registrationToken, name: 'r', slots: 1 } });
    expect(Object.keys(reg.json).sort()).toEqual(['pool', 'runnerId', 'runnerToken']);
    const timing = leaseTiming(loadConfig(env as never));
    expect(timing.heartbeatSeconds * 3).toBeLessThanOrEqual(timing.leaseSeconds);
    const c = await call('POST', '/runner/v1/claim', { token: reg.json.runnerToken, body: { waitSeconds: 0 } });
    expect(c.json.timing).toEqual(timing);
    expect((await heartbeatJobs(reg.json.runnerToken, [])).timing).toEqual(timing);
    // The rule: at least four heartbeats per lease, at most 10 s apart.
    expect(leaseTiming({ leaseSeconds: 60, heartbeatSeconds: undefined })).toEqual({ leaseSeconds: 60, heartbeatSeconds: 10, offerSeconds: 20 });
    expect(leaseTiming({ leaseSeconds: 8, heartbeatSeconds: undefined })).toEqual({ leaseSeconds: 8, heartbeatSeconds: 2, offerSeconds: 8 });
    expect(leaseTiming({ leaseSeconds: 3, heartbeatSeconds: undefined })).toEqual({ leaseSeconds: 3, heartbeatSeconds: 1, offerSeconds: 3 });
  });

  it('a replayed completion records its artifacts once (ids derive from execution, attempt, kind and path)', async () => {
    const t = await newTenant();
    const runner = await newRunner(t);
    const exec = await queuedExecution(t);
    await claim(runner.runnerToken);
    const out = await blob('once');
    const pre = await call('POST', `/runner/v1/executions/${exec.id}/outputs/presign`, { token: runner.runnerToken, body: { attempt: 1, files: [{ path: 'o.txt', sha256: out.sha256, size: out.size }] } });
    for (const u of pre.json.uploads) await put(u.url, out.bytes);
    const body = { completions: [0, 1].map(() => ({ executionId: exec.id, attempt: 1, outcome: 'succeeded', exitCode: 0, outputs: [{ path: 'o.txt', sha256: out.sha256, size: out.size }] })) };
    const r = await call('POST', '/runner/v1/complete', { token: runner.runnerToken, body });
    expect(r.json.results.map((x: { duplicate: boolean }) => x.duplicate)).toEqual([false, true]);
    const again = await call('POST', '/runner/v1/complete', { token: runner.runnerToken, body });
    expect(again.json.results.map((x: { duplicate: boolean }) => x.duplicate)).toEqual([true, true]);
    const arts = (await call('GET', `/api/v1/executions/${exec.id}/artifacts`, { token: t.key })).json.artifacts;
    expect(arts).toHaveLength(1);
    await expectAgreement(t);
  });
});

describe('shards', () => {
  it('spreads a pool over its shards; a runner takes work from every shard; a capped batch keeps its cap exactly', async () => {
    const t = await newTenant();
    expect((await admin('POST', '/pools', { name: t.pool, dispatchShards: 3 })).json.pool.dispatchShards).toBe(3);
    // Lowering is refused silently: the count only grows.
    expect((await admin('POST', '/pools', { name: t.pool, dispatchShards: 1 })).json.pool.dispatchShards).toBe(3);
    const runner = await newRunner(t);
    const { items } = await batchOf(t, 30);
    const shards = await env.DB.prepare(`SELECT shard, COUNT(*) AS n FROM executions WHERE id IN (SELECT value FROM json_each(?)) GROUP BY shard`)
      .bind(JSON.stringify(items.map((i) => i.executionId)))
      .all<{ shard: number; n: number }>();
    expect(shards.results.length).toBe(3);
    const got = new Set<string>();
    for (let i = 0; i < 10 && got.size < 30; i++) for (const j of (await claim(runner.runnerToken, { maxJobs: 32 })).jobs) got.add(`${j.executionId}/${j.shard}`);
    expect(got.size).toBe(30);

    // A capped batch: one shard, at most `parallel` running across runners.
    const capped = await batchOf(t, 10, { parallel: 3 });
    const rows = await env.DB.prepare(`SELECT DISTINCT shard FROM executions WHERE batch_id = ?`).bind(capped.batch.id).all<{ shard: number }>();
    expect(rows.results).toHaveLength(1);
    const others = await Promise.all([1, 2, 3].map((i) => newRunner(t, `r${i}`)));
    const claimed = (await Promise.all(others.map((o) => claim(o.runnerToken, { maxJobs: 5 })))).flatMap((c) => c.jobs);
    expect(claimed).toHaveLength(3);
  });
});

it('flushes within FLUSH_MS of a transition when nobody reads (the alarm drives it)', async () => {
  const t = await newTenant();
  const runner = await newRunner(t);
  const exec = await queuedExecution(t);
  await claim(runner.runnerToken);
  const alarm = await withDispatcher(t.pool, (_d, state) => state.storage.getAlarm());
  expect(alarm).not.toBeNull();
  expect(alarm! - Date.now()).toBeLessThanOrEqual(FLUSH_MS);
  await jobHeartbeat(runner.runnerToken, exec.id, 1);
});
