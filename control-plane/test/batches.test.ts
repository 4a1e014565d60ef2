import { env, runInDurableObject } from 'cloudflare:test';
import { exports } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { BatchEvent, BatchItemsResponse, MAX_FAILURES_PER_PROGRESS, type BatchCounts, type BatchSnapshot } from '../../shared/api/batches.js';
import { newId } from '../../shared/ids.js';
import type { ExecutionState } from '../../shared/lifecycle.js';
import type { BatchTracker } from '../src/batches/tracker.js';
import type { BatchMeta, ItemUpdate } from '../src/batches/types.js';
import { blob, call, claim, newRunner, newTenant, put, type Tenant, jobHeartbeat } from './helpers.js';

async function createBatch(t: Tenant, n: number, extra: Record<string, unknown> = {}) {
  const script = await blob(`print("batch ${Math.random()}")`);
  const shared = await blob('shared input');
  const files = await Promise.all(Array.from({ length: n }, (_, i) => blob(`row ${i}\n`)));
  const items = files.map((f, i) => ({
    inputName: `data/file${String(i).padStart(3, '0')}.csv`,
    args: ['--in', `file${i}.csv`],
    inputs: [
      { path: `file${i}.csv`, sha256: f.sha256, size: f.size, arg: 1 },
      { path: 'shared.txt', sha256: shared.sha256, size: shared.size },
    ],
  }));
  const res = await call('POST', '/api/v1/batches', {
    token: t.key,
    body: { name: 'test', template: { script: { name: 'job.py', sha256: script.sha256, size: script.size }, pool: t.pool }, items, ...extra },
  });
  expect(res.status, res.text).toBe(201);
  const blobs = new Map([script, shared, ...files].map((b) => [b.sha256, b]));
  // Uploads are deduplicated across the batch: the shared input once.
  expect(res.json.uploads.length).toBe(n + 2);
  for (const u of res.json.uploads) expect((await put(u.url, blobs.get(u.sha256)!.bytes)).status).toBe(200);
  return res.json as { batch: any; items: { executionId: string; inputName: string }[] };
}

async function snapshot(t: Tenant, id: string) {
  const r = await call('GET', `/api/v1/batches/${id}`, { token: t.key });
  expect(r.status).toBe(200);
  return r.json.batch;
}

/**
 * Collects a watch socket's events (parsed with the shared schema) and keeps the view a client
 * builds from them: snapshots replace it, progress deltas are merged in.
 */
function watch(ws: WebSocket) {
  const events: BatchEvent[] = [];
  const at: number[] = [];
  let view: BatchSnapshot | undefined;
  ws.accept();
  ws.addEventListener('message', (e) => {
    const ev = BatchEvent.parse(JSON.parse(e.data as string));
    events.push(ev);
    at.push(Date.now());
    if (ev.type === 'snapshot') view = ev.batch;
    else if (view) {
      const { type: _type, failures, ...moving } = ev;
      const byId = new Map([...view.failures, ...failures].map((f) => [f.executionId, f]));
      view = { ...view, ...moving, failures: [...byId.values()] };
    }
  });
  return {
    ws,
    events,
    at,
    view: () => view,
    async waitFor(pred: (b: BatchSnapshot) => boolean, ms = 3000) {
      for (let i = 0; i < ms / 20 && !(view && pred(view)); i++) await new Promise((r) => setTimeout(r, 20));
      expect(view && pred(view), JSON.stringify(view?.counts)).toBe(true);
    },
  };
}

const complete = (token: string, id: string, attempt: number, body: Record<string, unknown> = {}) =>
  call('POST', `/runner/v1/executions/${id}/complete`, { token, body: { attempt, outcome: 'succeeded', exitCode: 0, ...body } });

describe('batches', () => {
  it('creates items in bulk, submits them at once, and tracks counts, failures and the finish', async () => {
    const t = await newTenant();
    const runner = await newRunner(t);
    const { batch, items } = await createBatch(t, 4);
    expect(batch.counts).toMatchObject({ total: 4, created: 4 });
    expect(items.map((i) => i.inputName)).toEqual(['data/file000.csv', 'data/file001.csv', 'data/file002.csv', 'data/file003.csv']);

    const sub = await call('POST', `/api/v1/batches/${batch.id}/submit`, { token: t.key });
    expect(sub.status, sub.text).toBe(200);
    expect(sub.json.batch.counts).toMatchObject({ total: 4, queued: 4 });
    expect(sub.json.batch.status).toBe('running');

    const { jobs } = await claim(runner.runnerToken, { maxJobs: 4 });
    expect(jobs.map((j) => j.executionId)).toEqual(items.map((i) => i.executionId)); // sorted by input
    expect(jobs[0]!.args).toEqual(['--in', 'file0.csv']);
    expect((await snapshot(t, batch.id)).counts).toMatchObject({ running: 4, queued: 0 });

    await complete(runner.runnerToken, jobs[0]!.executionId, 1);
    await complete(runner.runnerToken, jobs[1]!.executionId, 1, { outcome: 'failed', failureKind: 'script_error', exitCode: 2, message: 'boom' });
    const mid = await snapshot(t, batch.id);
    expect(mid.counts).toMatchObject({ succeeded: 1, failed: 1, running: 2 });
    expect(mid.etaSeconds).not.toBeNull();
    expect(mid.failures).toEqual([expect.objectContaining({ inputName: 'data/file001.csv', failureKind: 'script_error', exitCode: 2, message: 'boom' })]);

    await complete(runner.runnerToken, jobs[2]!.executionId, 1);
    await complete(runner.runnerToken, jobs[3]!.executionId, 1);
    const end = await snapshot(t, batch.id);
    expect(end).toMatchObject({ status: 'finished', etaSeconds: 0, counts: { total: 4, succeeded: 3, failed: 1 } });
    expect(end.finishedAt).not.toBeNull();

    // Canceling a finished batch changes nothing: it stays finished.
    const late = await call('POST', `/api/v1/batches/${batch.id}/cancel`, { token: t.key });
    expect(late.status).toBe(200);
    expect(late.json.batch).toMatchObject({ status: 'finished', counts: { succeeded: 3, failed: 1, canceled: 0 } });
    expect(await snapshot(t, batch.id)).toMatchObject({ status: 'finished', finishedAt: end.finishedAt });

    const list = await call('GET', '/api/v1/executions?batch=' + batch.id, { token: t.key });
    expect(list.json.executions).toHaveLength(4);
    const batches = await call('GET', '/api/v1/batches', { token: t.key });
    expect(batches.json.batches.map((b: any) => b.id)).toEqual([batch.id]);
  });

  it('appends items before submit and refuses them after', async () => {
    const t = await newTenant();
    const { batch } = await createBatch(t, 1);
    const f = await blob('late item');
    const more = await call('POST', `/api/v1/batches/${batch.id}/items`, { token: t.key, body: { items: [{ inputName: 'late.csv', inputs: [{ path: 'late.csv', sha256: f.sha256, size: f.size }] }] } });
    expect(more.status, more.text).toBe(201);
    // The script was declared but is not confirmed until submit, so it is offered again.
    const up = more.json.uploads.find((u: any) => u.sha256 === f.sha256);
    await put(up.url, f.bytes);
    await call('POST', `/api/v1/batches/${batch.id}/submit`, { token: t.key });
    expect((await snapshot(t, batch.id)).counts).toMatchObject({ total: 2, queued: 2 });
    const after = await call('POST', `/api/v1/batches/${batch.id}/items`, { token: t.key, body: { items: [{ inputName: 'x' }] } });
    expect(after.status).toBe(409);
  });

  it('--parallel caps how many items run at once across all runners', async () => {
    const t = await newTenant();
    const runners = await Promise.all([newRunner(t, 'a'), newRunner(t, 'b'), newRunner(t, 'c')]);
    const { batch } = await createBatch(t, 5, { parallel: 2 });
    await call('POST', `/api/v1/batches/${batch.id}/submit`, { token: t.key });
    const first = await Promise.all(runners.map((r) => claim(r.runnerToken, { maxJobs: 2 })));
    const got = first.flatMap((r, i) => r.jobs.map((j) => ({ runner: runners[i]!, job: j })));
    expect(got).toHaveLength(2);
    // Other work in the pool is not blocked by the capped batch.
    expect((await snapshot(t, batch.id)).counts).toMatchObject({ running: 2, queued: 3 });
    await complete(got[0]!.runner.runnerToken, got[0]!.job.executionId, 1);
    const next = await claim(runners[2]!.runnerToken, { maxJobs: 3 });
    expect(next.jobs).toHaveLength(1);
  });

  it('--fail-fast cancels the rest after the first failure', async () => {
    const t = await newTenant();
    const runner = await newRunner(t);
    const { batch, items } = await createBatch(t, 4, { failFast: true });
    await call('POST', `/api/v1/batches/${batch.id}/submit`, { token: t.key });
    const { jobs } = await claim(runner.runnerToken, { maxJobs: 2 });
    await complete(runner.runnerToken, jobs[0]!.executionId, 1, { outcome: 'failed', failureKind: 'script_error', exitCode: 1 });
    let snap = await snapshot(t, batch.id);
    for (let i = 0; i < 50 && snap.counts.queued > 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
      snap = await snapshot(t, batch.id);
    }
    expect(snap.counts).toMatchObject({ failed: 1, canceled: 2, running: 1, queued: 0 });
    const hb = { json: await jobHeartbeat(runner.runnerToken, jobs[1]!.executionId, 1) };
    expect(hb.json.cancel).toBe(true);
    await complete(runner.runnerToken, jobs[1]!.executionId, 1, { outcome: 'failed', failureKind: 'canceled' });
    const end = await snapshot(t, batch.id);
    expect(end.status).toBe('finished');
    expect(end.counts).toMatchObject({ failed: 1, canceled: 3 });
    expect(items).toHaveLength(4);
  });

  it('retries exactly the failed items as new executions linked to their originals', async () => {
    const t = await newTenant();
    const runner = await newRunner(t);
    const { batch } = await createBatch(t, 3);
    await call('POST', `/api/v1/batches/${batch.id}/submit`, { token: t.key });
    const { jobs } = await claim(runner.runnerToken, { maxJobs: 3 });
    await complete(runner.runnerToken, jobs[0]!.executionId, 1);
    await complete(runner.runnerToken, jobs[1]!.executionId, 1, { outcome: 'failed', failureKind: 'oom' });
    await complete(runner.runnerToken, jobs[2]!.executionId, 1, { outcome: 'failed', failureKind: 'script_error', exitCode: 1 });
    expect((await snapshot(t, batch.id)).status).toBe('finished');

    const r = await call('POST', '/api/v1/executions/retry', { token: t.key, body: { batchId: batch.id } });
    expect(r.status, r.text).toBe(201);
    expect(r.json.executions.map((e: any) => e.retryOf).sort()).toEqual([jobs[1]!.executionId, jobs[2]!.executionId].sort());
    expect(r.json.executions.every((e: any) => e.status === 'queued' && e.batchId === batch.id)).toBe(true);
    const mid = await snapshot(t, batch.id);
    expect(mid.counts).toMatchObject({ total: 3, succeeded: 1, queued: 2, failed: 0 });
    expect(mid.status).toBe('running');

    const again = await claim(runner.runnerToken, { maxJobs: 3 });
    expect(again.jobs.map((j) => j.executionId).sort()).toEqual(r.json.executions.map((e: any) => e.id).sort());
    for (const j of again.jobs) await complete(runner.runnerToken, j.executionId, 1);
    expect((await snapshot(t, batch.id))).toMatchObject({ status: 'finished', counts: { succeeded: 3, failed: 0 } });
    // The items listing follows the retries: the latest execution of each input (shared schema).
    const listed = await call('GET', `/api/v1/batches/${batch.id}/items`, { token: t.key });
    expect(listed.status).toBe(200);
    const latest = BatchItemsResponse.parse(listed.json).items;
    expect(latest.map((i) => i.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    expect(latest.map((i) => i.executionId)).toContain(r.json.executions[0].id);
    // History stays: the originals are still there, failed.
    const orig = await call('GET', `/api/v1/executions/${jobs[1]!.executionId}`, { token: t.key });
    expect(orig.json.execution.status).toBe('failed');
    // Retrying one execution by id works too; an unfinished one is refused.
    const one = await call('POST', '/api/v1/executions/retry', { token: t.key, body: { executionIds: [jobs[0]!.executionId] } });
    expect(one.status).toBe(201);
    const busy = await call('POST', '/api/v1/executions/retry', { token: t.key, body: { executionIds: [one.json.executions[0].id] } });
    expect(busy.status).toBe(409);
  });

  it('a WebSocket watcher sees every change, throttled, and ends with the final snapshot', async () => {
    const t = await newTenant();
    const runner = await newRunner(t);
    const { batch } = await createBatch(t, 2);
    const res = await exports.default.fetch(new Request(`http://rgrid.test/api/v1/batches/${batch.id}/watch`, { headers: { upgrade: 'websocket', authorization: `Bearer ${t.key}` } }));
    expect(res.status).toBe(101);
    const watcher = watch(res.webSocket!);
    const waitFor = (pred: (b: any) => boolean) => watcher.waitFor(pred);
    await waitFor((b) => b.counts.created === 2);
    await call('POST', `/api/v1/batches/${batch.id}/submit`, { token: t.key });
    await waitFor((b) => b.counts.queued === 2);
    const [job] = (await claim(runner.runnerToken, { maxJobs: 1 })).jobs;
    await waitFor((b) => b.counts.running === 1 && b.counts.queued === 1);
    await complete(runner.runnerToken, job!.executionId, 1);
    await waitFor((b) => b.counts.succeeded === 1 && b.counts.queued === 1);
    const [job2] = (await claim(runner.runnerToken, { maxJobs: 1 })).jobs;
    await waitFor((b) => b.counts.running === 1 && b.counts.succeeded === 1);
    await complete(runner.runnerToken, job2!.executionId, 1, { outcome: 'failed', failureKind: 'timeout' });
    await waitFor((b) => b.status === 'finished' && b.counts.failed === 1);
    const last = watcher.events.at(-1)!;
    expect(last.type).toBe('snapshot');
    expect(last.type === 'snapshot' && last.batch).toMatchObject({ status: 'finished', counts: { total: 2, succeeded: 1, failed: 1 }, failures: [expect.objectContaining({ executionId: job2!.executionId, failureKind: 'timeout' })] });
    const versions = watcher.events.map((e) => (e.type === 'snapshot' ? e.batch.version : e.version));
    expect([...versions].sort((a, b) => a - b)).toEqual(versions);
    watcher.ws.close();
  });

  it('cancels a whole batch, and hides it from other accounts', async () => {
    const t = await newTenant();
    const other = await newTenant(t.pool);
    const { batch } = await createBatch(t, 3);
    await call('POST', `/api/v1/batches/${batch.id}/submit`, { token: t.key });
    expect((await call('GET', `/api/v1/batches/${batch.id}`, { token: other.key })).status).toBe(404);
    expect((await call('POST', `/api/v1/batches/${batch.id}/cancel`, { token: other.key })).status).toBe(404);
    const r = await call('POST', `/api/v1/batches/${batch.id}/cancel`, { token: t.key });
    expect(r.status).toBe(200);
    expect(r.json.batch).toMatchObject({ status: 'canceled', counts: { canceled: 3 } });
  });
});

// ---------------------------------------------------------------- the BatchTracker itself

/** mulberry32: a small seeded PRNG, so a failing sequence replays exactly. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const upd = (executionId: string, status: ExecutionState, version: number, extra: Partial<ItemUpdate> = {}): ItemUpdate => ({
  executionId,
  status,
  version,
  at: Date.now(),
  ...(status === 'failed' ? { failureKind: 'script_error' as const, exitCode: 1, message: 'boom' } : {}),
  ...(status === 'canceled' ? { failureKind: 'canceled' as const, message: 'canceled' } : {}),
  ...extra,
});

/** A tracker of `n` created items, straight on the Durable Object (no D1 batch behind it). */
async function newTracker(n: number) {
  const batchId = newId('batch');
  const stub = env.BATCHES.get(env.BATCHES.idFromName(batchId));
  const meta: BatchMeta = { batchId, accountId: newId('account'), pool: 'none', name: 'tracker', parallel: null, failFast: false, metadata: {}, createdAt: Date.now(), callbackUrl: null, callbackSecret: null };
  await stub.init(meta);
  const ids = Array.from({ length: n }, () => newId('execution'));
  await stub.addItems(ids.map((executionId, i) => ({ executionId, inputName: inputName(i) })));
  return { stub, ids };
}
const inputName = (i: number) => `in${String(i).padStart(4, '0')}`;

/** The stored counters next to a GROUP BY over the items (what the tracker did before counters). */
function countersAndRecount(stub: DurableObjectStub<BatchTracker>) {
  return runInDurableObject(stub, (tracker: BatchTracker, state) => {
    const recount: BatchCounts = { total: 0, created: 0, queued: 0, running: 0, succeeded: 0, failed: 0, canceled: 0, reused: 0 };
    for (const r of state.storage.sql.exec<{ status: ExecutionState; n: number; reused: number }>(
      `SELECT status, COUNT(*) AS n, SUM(reused) AS reused FROM items WHERE superseded = 0 GROUP BY status`,
    )) {
      recount[r.status] += r.n;
      recount.total += r.n;
      recount.reused += r.reused ?? 0;
    }
    return { counters: tracker.snapshot().counts, recount, finishedAt: tracker.snapshot().finishedAt };
  });
}

async function watchTracker(stub: DurableObjectStub<BatchTracker>) {
  const res = await stub.fetch(new Request('http://tracker/watch', { headers: { upgrade: 'websocket' } }));
  expect(res.status).toBe(101);
  return watch(res.webSocket!);
}

const eventCounts = (e: BatchEvent) => (e.type === 'snapshot' ? e.batch.counts : e.counts);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One execution's transitions in version order: queued, claims and requeues, then a final state. */
function life(rand: () => number, id: string): ItemUpdate[] {
  const r = rand();
  if (r < 0.05) return [upd(id, 'canceled', 1)]; // canceled while created
  if (r < 0.1) return [upd(id, 'succeeded', 1, { reused: true, exitCode: 0 })]; // outputs reused
  const out = [upd(id, 'queued', 1)];
  const attempts = 1 + Math.floor(rand() * 3);
  for (let a = 1; a <= attempts; a++) {
    if (rand() < 0.05) return [...out, upd(id, 'canceled', 2 * a)]; // canceled while waiting
    out.push(upd(id, 'running', 2 * a));
    if (a < attempts) out.push(upd(id, 'queued', 2 * a + 1));
  }
  const end = rand();
  return [...out, upd(id, end < 0.6 ? 'succeeded' : end < 0.85 ? 'failed' : 'canceled', 2 * attempts + 1)];
}

describe('BatchTracker', () => {
  it('keeps its counters equal to a recount through repeated, reordered, unknown and superseded updates', async () => {
    const rand = prng(20261204);
    const { stub, ids } = await newTracker(120);
    await stub.markSubmitted(Date.now());
    const pending = new Map(ids.map((id) => [id, life(rand, id)]));
    /** The execution each input currently counts with, and the status its life ends in. */
    const current = new Map(ids.map((id, i) => [inputName(i), id]));
    const lastOf = new Map([...pending].map(([id, l]) => [id, l.at(-1)!.status]));
    const delivered: ItemUpdate[] = [];
    let chunks = 0;
    while (pending.size) {
      const chunk: ItemUpdate[] = [];
      const size = 1 + Math.floor(rand() * 40);
      while (chunk.length < size && pending.size) {
        const r = rand();
        if (r < 0.15 && delivered.length) chunk.push(delivered[Math.floor(rand() * delivered.length)]!); // a repeat, often older than what the item holds
        else if (r < 0.17) chunk.push(upd(newId('execution'), 'running', 2)); // not in this batch
        else {
          const keys = [...pending.keys()];
          const id = keys[Math.floor(rand() * keys.length)]!;
          const list = pending.get(id)!;
          // Now and then a later transition overtakes an earlier one, which then arrives late.
          const [u] = list.splice(list.length > 1 && rand() < 0.25 ? 1 : 0, 1);
          if (!list.length) pending.delete(id);
          chunk.push(u!);
          delivered.push(u!);
        }
      }
      await stub.update(chunk);
      if (rand() < 0.15) {
        // A retry: any input's current execution (finished or not; its remaining transitions still arrive, as history).
        const inputs = [...current.keys()];
        const input = inputs[Math.floor(rand() * inputs.length)]!;
        const next = newId('execution');
        await stub.supersede([current.get(input)!], [{ executionId: next, inputName: input }]);
        current.set(input, next);
        const l = life(rand, next);
        pending.set(next, l);
        lastOf.set(next, l.at(-1)!.status);
      }
      if (rand() < 0.05) await stub.addItems([{ executionId: current.get(inputName(0))!, inputName: inputName(0) }]); // a repeated add
      const { counters, recount } = await countersAndRecount(stub);
      expect(counters, `after chunk ${++chunks}`).toEqual(recount);
    }
    // Every transition arrived at least once: each input ends in its current execution's final state.
    const expected: BatchCounts = { total: current.size, created: 0, queued: 0, running: 0, succeeded: 0, failed: 0, canceled: 0, reused: 0 };
    for (const id of current.values()) expected[lastOf.get(id)!]++;
    const items = await stub.items();
    expect(items.map((i) => i.executionId).sort()).toEqual([...current.values()].sort());
    for (const i of items) expect(i.status, i.inputName).toBe(lastOf.get(i.executionId));
    const { counters, finishedAt } = await countersAndRecount(stub);
    expect({ ...counters, reused: 0 }).toEqual(expected);
    expect(finishedAt).not.toBeNull();
    expect(chunks).toBeGreaterThan(20);
  });

  it('counts a repeated final once and never moves a final item back', async () => {
    const { stub, ids } = await newTracker(2);
    const [a, b] = ids as [string, string];
    await stub.update([upd(a, 'queued', 1), upd(a, 'running', 2), upd(a, 'succeeded', 3), upd(b, 'queued', 1)]);
    await stub.update([upd(a, 'succeeded', 3), upd(a, 'succeeded', 3)]);
    await stub.update([upd(a, 'failed', 3), upd(a, 'running', 2), upd(a, 'queued', 1)]);
    const { counters, recount } = await countersAndRecount(stub);
    expect(counters).toEqual({ total: 2, created: 0, queued: 1, running: 0, succeeded: 1, failed: 0, canceled: 0, reused: 0 });
    expect(recount).toEqual(counters);
    expect((await stub.items()).find((i) => i.executionId === a)!.status).toBe('succeeded');
  });

  it('finishes exactly when the last item becomes final', async () => {
    const { stub, ids } = await newTracker(3);
    const [a, b, c] = ids as [string, string, string];
    await stub.update([upd(a, 'canceled', 1), upd(b, 'succeeded', 1, { reused: true }), upd(c, 'queued', 1)]);
    await stub.markSubmitted(Date.now());
    await stub.update([upd(c, 'running', 2), upd(c, 'queued', 3), upd(c, 'running', 4)]);
    expect((await stub.getSnapshot())!.finishedAt).toBeNull();
    await stub.update([upd(c, 'running', 4)]); // a repeat is no transition
    expect((await stub.getSnapshot())!.finishedAt).toBeNull();
    await stub.update([upd(c, 'failed', 5)]);
    const end = (await stub.getSnapshot())!;
    expect(end).toMatchObject({ status: 'finished', counts: { total: 3, succeeded: 1, failed: 1, canceled: 1, reused: 1 } });
    expect(end.finishedAt).not.toBeNull();
    // A late repeat changes nothing, not even the version.
    await stub.update([upd(c, 'running', 4), upd(c, 'failed', 5)]);
    expect((await stub.getSnapshot())!).toMatchObject({ finishedAt: end.finishedAt, version: end.version });
  });

  it('an unsubmitted batch does not finish even when every item is final', async () => {
    const { stub, ids } = await newTracker(1);
    await stub.update([upd(ids[0]!, 'canceled', 1)]);
    expect((await stub.getSnapshot())!.finishedAt).toBeNull();
  });

  it('sends a burst of changes as a handful of progress deltas, then the final snapshot, then goes quiet', async () => {
    const { stub, ids } = await newTracker(200);
    await stub.markSubmitted(Date.now());
    const w = await watchTracker(stub);
    await w.waitFor((b) => b.counts.created === 200);
    const start = Date.now();
    // 200 calls back to back, each an item's whole life (every 7th fails). One after the other,
    // so the object is idle between them: only the throttle keeps this from 200 messages.
    for (const [i, id] of ids.entries()) await stub.update([upd(id, 'queued', 1), upd(id, 'running', 2), upd(id, i % 7 ? 'succeeded' : 'failed', 3)]);
    await w.waitFor((b) => b.status === 'finished');
    const elapsed = Date.now() - start;
    const after = w.events.slice(1);
    // At most one message per 500 ms (plus one of slack for the edges of the window).
    expect(after.length, `${after.length} messages in ${elapsed} ms`).toBeLessThanOrEqual(2 + Math.ceil(elapsed / 500));
    expect(after.length).toBeLessThan(20);
    const last = w.events.at(-1)!;
    const failed = ids.filter((_, i) => i % 7 === 0);
    expect(last.type).toBe('snapshot');
    if (last.type !== 'snapshot') return;
    expect(last.batch.counts).toEqual({ total: 200, created: 0, queued: 0, running: 0, succeeded: 200 - failed.length, failed: failed.length, canceled: 0, reused: 0 });
    expect(last.batch.failures.map((f) => f.executionId).sort()).toEqual([...failed].sort());
    expect(after.slice(0, -1).every((e) => e.type === 'progress')).toBe(true);
    const versions = w.events.map((e) => (e.type === 'snapshot' ? e.batch.version : e.version));
    expect([...versions].sort((a, b) => a - b)).toEqual(versions);
    // Finished: no more refreshes (the object may hibernate).
    await sleep(2500);
    expect(w.events.at(-1)).toBe(last);
    w.ws.close();
  });

  it('sends each new failure once in bounded deltas, refreshes a quiet running batch, and resyncs with a snapshot after a retry', async () => {
    const { stub, ids } = await newTracker(300);
    await stub.markSubmitted(Date.now());
    const w = await watchTracker(stub);
    await w.waitFor((b) => b.counts.created === 300);
    const failing = ids.slice(0, 250);
    await stub.update([...failing.map((id) => upd(id, 'failed', 3)), ...ids.slice(250).map((id) => upd(id, 'running', 2))]);
    await w.waitFor((b) => b.counts.failed === 250 && b.failures.length === 250);
    const progress = w.events.filter((e) => e.type === 'progress');
    for (const p of progress) expect(p.failures.length).toBeLessThanOrEqual(MAX_FAILURES_PER_PROGRESS);
    const sent = progress.flatMap((p) => p.failures.map((f) => f.executionId));
    expect(sent.sort()).toEqual([...failing].sort()); // each once, none missing
    expect(progress.filter((p) => p.failures.length).length).toBeGreaterThanOrEqual(3);

    // Nothing changes: a refresh still comes within about 2 s (the ETA moves on its own).
    const quiet = w.events.length;
    for (let i = 0; i < 150 && w.events.length === quiet; i++) await sleep(20);
    expect(w.events.length).toBeGreaterThan(quiet);
    const refresh = w.events.at(-1)!;
    expect(refresh.type).toBe('progress');
    expect(refresh.type === 'progress' && refresh.failures).toEqual([]);

    // A retry takes a failure back: deltas cannot, so the next message is a whole snapshot.
    const next = newId('execution');
    await stub.supersede([ids[0]!], [{ executionId: next, inputName: inputName(0) }]);
    await w.waitFor((b) => b.counts.created === 1);
    const resync = w.events.find((e) => eventCounts(e).created === 1)!;
    expect(resync.type).toBe('snapshot');
    expect(w.view()!.failures.map((f) => f.executionId)).not.toContain(ids[0]);
    expect(w.view()!.counts).toMatchObject({ total: 300, failed: 249, running: 50, created: 1 });
    w.ws.close();
  });

  it('migrates a tracker created before counters and versions', async () => {
    const { stub, ids } = await newTracker(4);
    await stub.update([upd(ids[0]!, 'succeeded', 3, { reused: true }), upd(ids[1]!, 'failed', 3), upd(ids[2]!, 'running', 2)]);
    const counts = await runInDurableObject(stub, (tracker: BatchTracker, state) => {
      const sql = state.storage.sql;
      // The tables as they were: no counters, no version or fail_seq columns.
      sql.exec(`DROP TABLE counts; DROP INDEX items_fail_seq; ALTER TABLE items DROP COLUMN fail_seq; ALTER TABLE items DROP COLUMN version;`);
      const Tracker = tracker.constructor as new (ctx: DurableObjectState, env: Cloudflare.Env) => BatchTracker;
      return new Tracker(state, env).snapshot().counts;
    });
    expect(counts).toEqual({ total: 4, created: 1, queued: 0, running: 1, succeeded: 1, failed: 1, canceled: 0, reused: 1 });
    // Items already final stay final whatever version arrives; the others move on.
    await stub.update([upd(ids[1]!, 'running', 7), upd(ids[2]!, 'succeeded', 3)]);
    const { counters, recount } = await countersAndRecount(stub);
    expect(counters).toMatchObject({ running: 0, succeeded: 2, failed: 1 });
    expect(recount).toEqual(counters);
  });
});
