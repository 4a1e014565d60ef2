import { env, runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { blob, call, claim, getExecution, jobHeartbeat, newRunner, newTenant, put, queuedExecution, type Tenant } from './helpers.js';
import { requestDrain } from '../src/dispatch/shards.js';
import type { Dispatcher } from '../src/dispatch/dispatcher.js';

function dispatcherOf(pool: string) {
  return env.DISPATCHER.get(env.DISPATCHER.idFromName(pool));
}

/** Moves every lease's deadline into the past and fires the alarm, as if the lease ran out. */
async function expireLeases(pool: string) {
  const stub = dispatcherOf(pool);
  await runInDurableObject(stub, (_instance, state) => {
    state.storage.sql.exec(`UPDATE jobs SET lease_deadline = 1 WHERE state = 'leased'`);
  });
  // Run the alarm now (the one set for the original deadline may have fired already, for a flush).
  await runInDurableObject(stub, (instance) => (instance as unknown as Dispatcher).alarm());
}

async function complete(runnerToken: string, id: string, body: Record<string, unknown>) {
  return call('POST', `/runner/v1/executions/${id}/complete`, { token: runnerToken, body: { outcome: 'succeeded', exitCode: 0, ...body } });
}

async function uploadOutput(t: Tenant, runnerToken: string, id: string, attempt: number, path: string, content: string) {
  const b = await blob(content);
  const pre = await call('POST', `/runner/v1/executions/${id}/outputs/presign`, { token: runnerToken, body: { attempt, files: [{ path, sha256: b.sha256, size: b.size }] } });
  expect(pre.status, pre.text).toBe(200);
  for (const u of pre.json.uploads) expect((await put(u.url, b.bytes)).status).toBe(200);
  return { path, sha256: b.sha256, size: b.size, contentType: 'text/plain' };
}

describe('dispatcher: claim, lease, heartbeat, completion', () => {
  it('hands a queued job to a runner with a lease and presigned downloads, then completes it once', async () => {
    const t = await newTenant();
    const runner = await newRunner(t);
    const exec = await queuedExecution(t, { args: ['--x', '1'], env: { MODE: 'test' } });
    const { jobs } = await claim(runner.runnerToken);
    expect(jobs).toHaveLength(1);
    const job = jobs[0]!;
    expect(job.executionId).toBe(exec.id);
    expect(job.attempt).toBe(1);
    expect(Date.parse(job.leaseExpiresAt)).toBeGreaterThan(Date.now());
    expect(job.args).toEqual(['--x', '1']);
    expect(job.env).toEqual({ MODE: 'test' });
    const script = await fetch(job.script.download.url);
    expect(script.status).toBe(200);
    expect(await script.text()).toMatch(/^print\("job/);
    expect((await getExecution(t, exec.id)).status).toBe('running');

    const hb = await jobHeartbeat(runner.runnerToken, exec.id, 1);
    expect(hb).toMatchObject({ cancel: false, stale: undefined });

    const out = await uploadOutput(t, runner.runnerToken, exec.id, 1, 'out/result.txt', 'result!');
    const done = await complete(runner.runnerToken, exec.id, { attempt: 1, outputs: [out], cache: { envHit: true, buildSeconds: 0 }, durationMs: 1234 });
    expect(done.status, done.text).toBe(200);
    expect(done.json).toEqual({ status: 'succeeded', duplicate: false });
    // The same completion again is idempotent: no second set of artifacts.
    const dup = await complete(runner.runnerToken, exec.id, { attempt: 1, outputs: [out] });
    expect(dup.json).toEqual({ status: 'succeeded', duplicate: true });

    const final = await getExecution(t, exec.id);
    expect(final.status).toBe('succeeded');
    expect(final.exitCode).toBe(0);
    expect(final.cache).toEqual({ envHit: true, buildSeconds: 0 });
    const arts = await call('GET', `/api/v1/executions/${exec.id}/artifacts`, { token: t.key });
    expect(arts.json.artifacts).toHaveLength(1);
    const a = arts.json.artifacts[0];
    expect(a).toMatchObject({ kind: 'output', path: 'out/result.txt', size: 7 });
    expect(await (await fetch(a.download.url)).text()).toBe('result!');
  });

  it('refuses to complete with outputs that were never uploaded, and records nothing', async () => {
    const t = await newTenant();
    const runner = await newRunner(t);
    const exec = await queuedExecution(t);
    await claim(runner.runnerToken);
    const ghost = await blob('never uploaded');
    const r = await complete(runner.runnerToken, exec.id, { attempt: 1, outputs: [{ path: 'ghost.txt', sha256: ghost.sha256, size: ghost.size }] });
    expect(r.status).toBe(409);
    expect((await getExecution(t, exec.id)).status).toBe('running');
    const arts = await call('GET', `/api/v1/executions/${exec.id}/artifacts`, { token: t.key });
    expect(arts.json.artifacts).toEqual([]);
  });

  it('requeues an expired lease; the vanished runner is fenced off, even after the new attempt finished', async () => {
    const t = await newTenant();
    const lost = await newRunner(t, 'lost');
    const healthy = await newRunner(t, 'healthy');
    const exec = await queuedExecution(t);
    const first = (await claim(lost.runnerToken)).jobs[0]!;
    expect(first.attempt).toBe(1);

    await expireLeases(t.pool);
    expect((await getExecution(t, exec.id)).status).toBe('queued');

    const second = (await claim(healthy.runnerToken)).jobs[0]!;
    expect(second.executionId).toBe(exec.id);
    expect(second.attempt).toBe(2);

    // The lost runner wakes up: its heartbeat and log pushes are stale.
    const hb = await jobHeartbeat(lost.runnerToken, exec.id, 1);
    expect(hb.stale).toEqual({ executionId: exec.id, currentAttempt: 2, status: 'running' });
    const logs = await call('POST', `/runner/v1/executions/${exec.id}/logs`, { token: lost.runnerToken, body: { attempt: 1, chunks: [{ seq: 0, stream: 'stdout', data: 'late' }] } });
    expect(logs.status).toBe(409);

    const good = await complete(healthy.runnerToken, exec.id, { attempt: 2, exitCode: 0 });
    expect(good.json.status).toBe('succeeded');

    // Its late completion arrives after the requeued attempt finished: refused, result unchanged.
    const late = await complete(lost.runnerToken, exec.id, { attempt: 1, outcome: 'failed', failureKind: 'script_error', exitCode: 3 });
    expect(late.status).toBe(409);
    expect(late.json.error.code).toBe('stale_attempt');
    const final = await getExecution(t, exec.id);
    expect(final).toMatchObject({ status: 'succeeded', exitCode: 0, attempt: 2 });
  });

  it('a completion for the current attempt number from another runner is refused', async () => {
    const t = await newTenant();
    const owner = await newRunner(t, 'owner');
    const other = await newRunner(t, 'other');
    const exec = await queuedExecution(t);
    await claim(owner.runnerToken);
    const r = await complete(other.runnerToken, exec.id, { attempt: 1 });
    expect(r.status).toBe(409);
    expect((await getExecution(t, exec.id)).status).toBe('running');
  });

  it('after the finish, only the runner that held the attempt gets the idempotent answer; another runner is stale', async () => {
    const t = await newTenant();
    const owner = await newRunner(t, 'owner');
    const other = await newRunner(t, 'other');
    const exec = await queuedExecution(t);
    await claim(owner.runnerToken);
    expect((await complete(owner.runnerToken, exec.id, { attempt: 1 })).json).toEqual({ status: 'succeeded', duplicate: false });
    expect((await complete(owner.runnerToken, exec.id, { attempt: 1 })).json).toEqual({ status: 'succeeded', duplicate: true });
    const forged = await complete(other.runnerToken, exec.id, { attempt: 1, outcome: 'failed', failureKind: 'script_error', exitCode: 66 });
    expect(forged.status, forged.text).toBe(409);
    expect(forged.json.error.code).toBe('stale_attempt');
    expect(await getExecution(t, exec.id)).toMatchObject({ status: 'succeeded', exitCode: 0 });
  });

  it('fails as runner_lost after the last attempt expires', async () => {
    const t = await newTenant();
    const runner = await newRunner(t);
    const exec = await queuedExecution(t); // MAX_ATTEMPTS is 2 in the test config
    await claim(runner.runnerToken);
    await expireLeases(t.pool);
    expect((await claim(runner.runnerToken)).jobs[0]!.attempt).toBe(2);
    await expireLeases(t.pool);
    const final = await getExecution(t, exec.id);
    expect(final).toMatchObject({ status: 'failed', failureKind: 'runner_lost', attempt: 2 });
    expect((await claim(runner.runnerToken)).jobs).toEqual([]);
  });

  it('a heartbeat extends the lease so the alarm does not requeue a live job', async () => {
    const t = await newTenant();
    const runner = await newRunner(t);
    const exec = await queuedExecution(t);
    await claim(runner.runnerToken);
    const before = await runInDurableObject(dispatcherOf(t.pool), (_i, s) => s.storage.sql.exec<{ d: number }>(`SELECT lease_deadline AS d FROM jobs`).one().d);
    await new Promise((r) => setTimeout(r, 20));
    await jobHeartbeat(runner.runnerToken, exec.id, 1);
    const after = await runInDurableObject(dispatcherOf(t.pool), (_i, s) => s.storage.sql.exec<{ d: number }>(`SELECT lease_deadline AS d FROM jobs`).one().d);
    expect(after).toBeGreaterThan(before);
    // The alarm fires early (lease not yet due): nothing changes.
    expect(await runDurableObjectAlarm(dispatcherOf(t.pool))).toBe(true);
    expect((await getExecution(t, exec.id)).status).toBe('running');
  });

  it('a released job is requeued at once for another runner', async () => {
    const t = await newTenant();
    const a = await newRunner(t, 'a');
    const b = await newRunner(t, 'b');
    const exec = await queuedExecution(t);
    await claim(a.runnerToken);
    const rel = await call('POST', `/runner/v1/executions/${exec.id}/release`, { token: a.runnerToken, body: { attempt: 1 } });
    expect(rel.status).toBe(200);
    const job = (await claim(b.runnerToken)).jobs[0]!;
    expect(job).toMatchObject({ executionId: exec.id, attempt: 2 });
  });

  it('many runners claiming at once never receive the same job', async () => {
    const t = await newTenant();
    const runners = await Promise.all(Array.from({ length: 8 }, (_, i) => newRunner(t, `r${i}`)));
    const execs = [];
    for (let i = 0; i < 12; i++) execs.push(await queuedExecution(t));
    const results = await Promise.all(runners.map((r) => claim(r.runnerToken, { maxJobs: 3 })));
    const claimed = results.flatMap((r) => r.jobs.map((j) => j.executionId));
    expect(new Set(claimed).size).toBe(claimed.length);
    expect(claimed.sort()).toEqual(execs.map((e) => e.id).sort());
  });

  it('a long-poll claim returns within milliseconds of a submit', async () => {
    const t = await newTenant();
    const runner = await newRunner(t);
    const started = Date.now();
    const waiting = call('POST', '/runner/v1/claim', { token: runner.runnerToken, body: { waitSeconds: 20 } });
    await new Promise((r) => setTimeout(r, 300)); // the claim is parked in the Durable Object
    const exec = await queuedExecution(t);
    const submittedAt = Date.now();
    const res = await waiting;
    const answeredAt = Date.now();
    expect(res.json.jobs.map((j: any) => j.executionId)).toEqual([exec.id]);
    expect(submittedAt - started).toBeGreaterThanOrEqual(300);
    // Upper bound far below the 20 s wait: woken, not polled.
    expect(answeredAt - submittedAt).toBeLessThan(1500);
  });

  it('an empty long-poll returns no jobs after its wait', async () => {
    const t = await newTenant();
    const runner = await newRunner(t);
    const started = Date.now();
    const res = await claim(runner.runnerToken, { waitSeconds: 0.3 });
    expect(res.jobs).toEqual([]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
  });

  it('a runner asked to drain gets no new work and is told to drain', async () => {
    const t = await newTenant();
    const runner = await newRunner(t);
    await queuedExecution(t);
    await env.DB.prepare(`UPDATE runners SET drain_requested = 1 WHERE id = ?`).bind(runner.runnerId).run();
    await requestDrain(env, runner.runnerId);
    expect((await claim(runner.runnerToken)).jobs).toEqual([]);
    const hb = await call('POST', '/runner/v1/heartbeat', { token: runner.runnerToken, body: { activeJobs: 0 } });
    expect(hb.json.drain).toBe(true);
    const other = await newRunner(t, 'other');
    expect((await claim(other.runnerToken)).jobs).toHaveLength(1);
  });

  it('prefers a job whose environment the runner already holds', async () => {
    const t = await newTenant();
    const runner = await newRunner(t);
    const plain = await queuedExecution(t);
    const withReqs = await queuedExecution(t, { requirements: 'numpy==1.26.4\n' });
    expect(plain.envKey).not.toBe(withReqs.envKey);
    const first = await claim(runner.runnerToken, { envKeys: [withReqs.envKey] });
    expect(first.jobs[0]!.executionId).toBe(withReqs.id);
    const second = await claim(runner.runnerToken, { envKeys: [withReqs.envKey] });
    expect(second.jobs[0]!.executionId).toBe(plain.id); // not starved
  });
});

describe('runner logs', () => {
  it('stores chunks in order, ignores repeated sequence numbers, and pages with a cursor', async () => {
    const t = await newTenant();
    const runner = await newRunner(t);
    const exec = await queuedExecution(t);
    await claim(runner.runnerToken);
    const push = (chunks: unknown[]) => call('POST', `/runner/v1/executions/${exec.id}/logs`, { token: runner.runnerToken, body: { attempt: 1, chunks } });
    const r1 = await push([{ seq: 1, stream: 'stderr', data: 'warn\n' }, { seq: 0, stream: 'stdout', data: 'hello\n' }]);
    expect(r1.json).toEqual({ accepted: 2, duplicates: 0, truncated: false });
    const r2 = await push([{ seq: 1, stream: 'stderr', data: 'warn\n' }, { seq: 2, stream: 'stdout', data: 'bye\n' }]);
    expect(r2.json).toEqual({ accepted: 1, duplicates: 1, truncated: false });

    const all = await call('GET', `/api/v1/executions/${exec.id}/logs`, { token: t.key });
    expect(all.json.chunks.map((c: any) => c.data)).toEqual(['hello\n', 'warn\n', 'bye\n']);
    expect(all.json.done).toBe(false);
    const onlyOut = await call('GET', `/api/v1/executions/${exec.id}/logs?stream=stdout`, { token: t.key });
    expect(onlyOut.json.chunks.map((c: any) => c.data)).toEqual(['hello\n', 'bye\n']);

    const cursor = all.json.cursor;
    await push([{ seq: 3, stream: 'stdout', data: 'more\n' }]);
    const next = await call('GET', `/api/v1/executions/${exec.id}/logs?cursor=${cursor}`, { token: t.key });
    expect(next.json.chunks.map((c: any) => c.data)).toEqual(['more\n']);
    await complete(runner.runnerToken, exec.id, { attempt: 1 });
    const end = await call('GET', `/api/v1/executions/${exec.id}/logs?cursor=${next.json.cursor}`, { token: t.key });
    expect(end.json).toMatchObject({ chunks: [], done: true, status: 'succeeded' });
  });
});

describe('artifacts record how their blob is stored', () => {
  it('an output whose bytes the account already stores gzip-compressed is recorded gzip, whatever the runner declares', async () => {
    const t = await newTenant();
    const runner = await newRunner(t);
    const text = 'line\n'.repeat(2000);
    const plain = await blob(text);
    const gz = new Uint8Array(await new Response(new Blob([plain.bytes]).stream().pipeThrough(new CompressionStream('gzip'))).arrayBuffer());
    const first = await queuedExecution(t);
    await claim(runner.runnerToken);
    const pre = await call('POST', `/runner/v1/executions/${first.id}/outputs/presign`, { token: runner.runnerToken, body: { attempt: 1, files: [{ path: 'a.txt', sha256: plain.sha256, size: plain.size, encoding: 'gzip' }] } });
    for (const u of pre.json.uploads) expect((await put(u.url, gz)).status).toBe(200);
    const out = { path: 'a.txt', sha256: plain.sha256, size: plain.size, contentType: 'text/plain' };
    expect((await complete(runner.runnerToken, first.id, { attempt: 1, outputs: [{ ...out, encoding: 'gzip' }] })).status).toBe(200);

    // The same bytes again: nothing to upload, and the runner declares them uncompressed.
    const second = await queuedExecution(t);
    await claim(runner.runnerToken);
    const again = await call('POST', `/runner/v1/executions/${second.id}/outputs/presign`, { token: runner.runnerToken, body: { attempt: 1, files: [{ ...out, encoding: 'identity' }] } });
    expect(again.json.uploads).toEqual([]);
    expect((await complete(runner.runnerToken, second.id, { attempt: 1, outputs: [{ ...out, encoding: 'identity' }] })).status).toBe(200);
    const arts = (await call('GET', `/api/v1/executions/${second.id}/artifacts`, { token: t.key })).json.artifacts;
    expect(arts).toHaveLength(1);
    expect(arts[0].encoding).toBe('gzip');
    const stored = new Uint8Array(await (await fetch(arts[0].download.url)).arrayBuffer());
    expect(stored).toEqual(gz);
  });
});

describe('runner fencing outside the Dispatcher', () => {
  const MB = 1024 * 1024;
  const runnerCall = (token: string, id: string, what: string, body: Record<string, unknown>) => call('POST', `/runner/v1/executions/${id}/${what}`, { token, body });

  it('a runner of another pool gets 404 for heartbeat and release, without the job’s state (F13)', async () => {
    const a = await newTenant();
    const b = await newTenant();
    const holder = await newRunner(a);
    const stranger = await newRunner(b);
    const exec = await queuedExecution(a);
    await claim(holder.runnerToken);
    // Its heartbeat naming the job learns only to stop, nothing of the job's state.
    expect((await jobHeartbeat(stranger.runnerToken, exec.id, 1)).stale).toEqual({ executionId: exec.id, currentAttempt: 0, status: 'failed' });
    const calls: [string, Record<string, unknown>][] = [
      ['release', { attempt: 1 }],
      ['logs', { attempt: 1, chunks: [{ seq: 0, stream: 'stdout', data: 'x' }] }],
      ['complete', { attempt: 1, outcome: 'succeeded', exitCode: 0 }],
      ['uploads/multipart/abort', { attempt: 1, sha256: 'c'.repeat(64), uploadId: 'x' }],
    ];
    for (const [what, body] of calls) {
      const r = await runnerCall(stranger.runnerToken, exec.id, what, body);
      expect(r.status, `${what}: ${r.text}`).toBe(404);
      expect(r.json.error.code).toBe('not_found');
      expect(r.json.error.details).toBeUndefined();
    }
    // Nothing happened to the holder's job.
    expect((await getExecution(a, exec.id)).status).toBe('running');
    expect(await jobHeartbeat(holder.runnerToken, exec.id, 1)).toMatchObject({ cancel: false, stale: undefined });
  });

  it('only the runner that ran the execution may abort its multipart uploads, including a lost attempt’s (F12)', async () => {
    const t = await newTenant();
    const holder = await newRunner(t, 'holder');
    const rival = await newRunner(t, 'rival');
    const exec = await queuedExecution(t);
    expect((await claim(holder.runnerToken)).jobs[0]).toMatchObject({ executionId: exec.id, attempt: 1 });
    const big = { sha256: (await blob(`big ${Math.random()}`)).sha256, size: 6 * MB, storedSize: 6 * MB, partSize: 5 * MB };
    const mp = await runnerCall(holder.runnerToken, exec.id, 'uploads/multipart', { attempt: 1, ...big });
    expect(mp.status, mp.text).toBe(201);
    const abort = (token: string, attempt: number) => runnerCall(token, exec.id, 'uploads/multipart/abort', { attempt, sha256: big.sha256, uploadId: mp.json.uploadId });

    for (const [who, r] of [['rival', await abort(rival.runnerToken, 1)], ['holder, an attempt not yet started', await abort(holder.runnerToken, 2)]] as const) {
      expect(r.status, `${who}: ${r.text}`).toBe(409);
      expect(r.json.error.code).toBe('stale_attempt');
    }
    // The upload survived: its part URL still takes bytes.
    expect((await fetch(mp.json.parts[0].url, { method: 'PUT', body: new Uint8Array(5 * MB) })).status).toBe(200);

    // The holder loses its lease and gets the job again: it may still clean up attempt 1's upload.
    await expireLeases(t.pool);
    expect((await claim(holder.runnerToken)).jobs[0]).toMatchObject({ executionId: exec.id, attempt: 2 });
    expect((await abort(rival.runnerToken, 1)).status).toBe(409);
    const own = await abort(holder.runnerToken, 1);
    expect(own.status, own.text).toBe(200);
    expect((await fetch(mp.json.parts[1].url, { method: 'PUT', body: new Uint8Array(MB) })).status).toBe(404);
  });
});
