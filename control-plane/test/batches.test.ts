import { exports } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { BatchItemsResponse } from '../../shared/api/batches.js';
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

  it('a WebSocket watcher receives every transition', async () => {
    const t = await newTenant();
    const runner = await newRunner(t);
    const { batch } = await createBatch(t, 2);
    const res = await exports.default.fetch(new Request(`http://rgrid.test/api/v1/batches/${batch.id}/watch`, { headers: { upgrade: 'websocket', authorization: `Bearer ${t.key}` } }));
    expect(res.status).toBe(101);
    const ws = res.webSocket!;
    const seen: any[] = [];
    ws.accept();
    ws.addEventListener('message', (e) => seen.push(JSON.parse(e.data as string).batch));
    const waitFor = async (pred: (b: any) => boolean) => {
      for (let i = 0; i < 100 && !seen.some(pred); i++) await new Promise((r) => setTimeout(r, 20));
      expect(seen.some(pred)).toBe(true);
    };
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
    const versions = seen.map((b) => b.version);
    expect([...versions].sort((a, b) => a - b)).toEqual(versions);
    ws.close();
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
