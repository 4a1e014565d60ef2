import { describe, expect, it } from 'vitest';
import { blob, call, claim, createExecution, getExecution, newRunner, newTenant, put, queuedExecution, jobHeartbeat } from './helpers.js';

describe('executions: two-phase submit', () => {
  it('asks only for blobs the account lacks, and queues only after they exist', async () => {
    const t = await newTenant();
    const script = await blob('print(1)');
    const input = await blob('a,b\n1,2\n');
    const created = await createExecution(t, { inputs: [{ path: 'data.csv', sha256: input.sha256, size: input.size, arg: 0 }], args: ['data.csv'] }, [script]);
    expect(created.execution.status).toBe('created');
    expect(created.uploads.map((u) => u.sha256).sort()).toEqual([script.sha256, input.sha256].sort());
    expect(created.execution.scriptKey).toMatch(/^[0-9a-f]{64}$/);

    // Submitting before the upload is refused and names the missing file.
    const early = await call('POST', `/api/v1/executions/${created.execution.id}/submit`, { token: t.key });
    expect(early.status).toBe(409);
    expect(early.json.error.code).toBe('conflict');
    expect(early.json.error.message).toMatch(/was not uploaded/);
    expect((await getExecution(t, created.execution.id)).status).toBe('created');

    for (const u of created.uploads) {
      const bytes = u.sha256 === script.sha256 ? script.bytes : input.bytes;
      expect((await put(u.url, bytes)).status).toBe(200);
    }
    const sub = await call('POST', `/api/v1/executions/${created.execution.id}/submit`, { token: t.key });
    expect(sub.status).toBe(200);
    expect(sub.json.execution.status).toBe('queued');
    expect(sub.json.execution.submittedAt).not.toBeNull();

    // The same blobs again: nothing to upload (content-addressed input cache), and autoSubmit queues at once.
    const again = await createExecution(t, { inputs: [{ path: 'x.csv', sha256: input.sha256, size: input.size }], autoSubmit: true }, [script]);
    expect(again.uploads).toEqual([]);
    expect(again.execution.status).toBe('queued');
  });

  it('refuses an upload whose size differs from the declared size', async () => {
    const t = await newTenant();
    const script = await blob('print("size")');
    const created = await createExecution(t, {}, [script]);
    await put(created.uploads[0]!.url, new TextEncoder().encode('print("size") # different'));
    const sub = await call('POST', `/api/v1/executions/${created.execution.id}/submit`, { token: t.key });
    expect(sub.status).toBe(409);
    expect(sub.json.error.message).toMatch(/declared/);
  });

  it('refuses requirements that change package sources, quoting the line', async () => {
    const t = await newTenant();
    const script = await blob('print(2)');
    const res = await call('POST', '/api/v1/executions', {
      token: t.key,
      body: { script: { name: 'a.py', sha256: script.sha256, size: script.size }, pool: t.pool, requirements: 'numpy==1.26.4\n--index-url http://evil.example/simple\n' },
    });
    expect(res.status).toBe(400);
    expect(res.json.error.message).toContain('--index-url http://evil.example/simple');
  });

  it('rejects an unknown pool with a hint', async () => {
    const t = await newTenant();
    const script = await blob('print(3)');
    const res = await call('POST', '/api/v1/executions', { token: t.key, body: { script: { name: 'a.py', sha256: script.sha256, size: script.size }, pool: 'no-such-pool' } });
    expect(res.status).toBe(400);
    expect(res.json.error.hint).toBeTruthy();
  });

  it('lists newest first with status and metadata filters and cursor pagination', async () => {
    const t = await newTenant();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const e = await createExecution(t, { metadata: { project: i % 2 ? 'odd' : 'even', n: String(i) } });
      ids.push(e.execution.id);
    }
    await queuedExecution(t, { metadata: { project: 'queued' } });

    const page1 = await call('GET', '/api/v1/executions?limit=2&status=created', { token: t.key });
    expect(page1.status).toBe(200);
    expect(page1.json.executions.map((e: any) => e.id)).toEqual([ids[4], ids[3]]);
    const page2 = await call('GET', `/api/v1/executions?limit=2&status=created&cursor=${page1.json.nextCursor}`, { token: t.key });
    expect(page2.json.executions.map((e: any) => e.id)).toEqual([ids[2], ids[1]]);
    const page3 = await call('GET', `/api/v1/executions?limit=2&status=created&cursor=${page2.json.nextCursor}`, { token: t.key });
    expect(page3.json.executions.map((e: any) => e.id)).toEqual([ids[0]]);
    expect(page3.json.nextCursor).toBeNull();

    const even = await call('GET', '/api/v1/executions?metadata=project=even', { token: t.key });
    expect(even.json.executions.map((e: any) => e.id)).toEqual([ids[4], ids[2], ids[0]]);
    const both = await call('GET', '/api/v1/executions?metadata=project=even&metadata=n=2', { token: t.key });
    expect(both.json.executions.map((e: any) => e.id)).toEqual([ids[2]]);
    const queued = await call('GET', '/api/v1/executions?status=queued', { token: t.key });
    expect(queued.json.executions).toHaveLength(1);
    const bad = await call('GET', '/api/v1/executions?cursor=garbage', { token: t.key });
    expect(bad.status).toBe(400);
  });

  it('cancels created, queued and running executions', async () => {
    const t = await newTenant();
    const created = await createExecution(t);
    const c1 = await call('POST', `/api/v1/executions/${created.execution.id}/cancel`, { token: t.key });
    expect(c1.json.execution.status).toBe('canceled');

    const queued = await queuedExecution(t);
    const c2 = await call('POST', `/api/v1/executions/${queued.id}/cancel`, { token: t.key });
    expect(c2.json.execution.status).toBe('canceled');
    const runner = await newRunner(t);
    expect((await claim(runner.runnerToken)).jobs).toEqual([]); // the canceled one is gone from the queue

    const running = await queuedExecution(t);
    const [job] = (await claim(runner.runnerToken)).jobs;
    expect(job!.executionId).toBe(running.id);
    const c3 = await call('POST', `/api/v1/executions/${running.id}/cancel`, { token: t.key });
    expect(c3.json.execution.status).toBe('running'); // pending until the runner stops it
    const hb = { json: await jobHeartbeat(runner.runnerToken, running.id, 1) };
    expect(hb.json.cancel).toBe(true);
    const done = await call('POST', `/runner/v1/executions/${running.id}/complete`, { token: runner.runnerToken, body: { attempt: 1, outcome: 'failed', failureKind: 'canceled', exitCode: 137 } });
    expect(done.json.status).toBe('canceled');
    expect((await getExecution(t, running.id)).status).toBe('canceled');

    const again = await call('POST', `/api/v1/executions/${running.id}/cancel`, { token: t.key });
    expect(again.status).toBe(200);
  });
});
