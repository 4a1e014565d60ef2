import { describe, expect, it } from 'vitest';
import { blob, call, claim, newRunner, newTenant, put, type Tenant } from './helpers.js';

async function create(t: Tenant, body: Record<string, unknown>, script: { sha256: string; size: number; bytes: Uint8Array }, files: { sha256: string; bytes: Uint8Array }[] = []) {
  const r = await call('POST', '/api/v1/executions', { token: t.key, body: { script: { name: 'analyze.py', sha256: script.sha256, size: script.size }, pool: t.pool, ...body } });
  expect(r.status, r.text).toBe(201);
  const bytes = new Map([[script.sha256, script.bytes], ...files.map((f) => [f.sha256, f.bytes] as [string, Uint8Array])]);
  for (const u of r.json.uploads) await put(u.url, bytes.get(u.sha256)!);
  return r.json;
}

async function runToSuccess(t: Tenant, runnerToken: string, id: string, envHit: boolean, output?: string) {
  expect((await call('POST', `/api/v1/executions/${id}/submit`, { token: t.key })).status).toBe(200);
  const job = (await claim(runnerToken, { maxJobs: 1 })).jobs.find((j) => j.executionId === id)!;
  const outputs = [];
  if (output) {
    const o = await blob(output);
    const pre = await call('POST', `/runner/v1/executions/${id}/outputs/presign`, { token: runnerToken, body: { attempt: job.attempt, files: [{ path: 'out.txt', sha256: o.sha256, size: o.size }] } });
    for (const u of pre.json.uploads) await put(u.url, o.bytes);
    outputs.push({ path: 'out.txt', sha256: o.sha256, size: o.size });
  }
  const done = await call('POST', `/runner/v1/executions/${id}/complete`, { token: runnerToken, body: { attempt: job.attempt, outcome: 'succeeded', exitCode: 0, outputs, cache: { envHit, buildSeconds: envHit ? 0 : 4.2 } } });
  expect(done.status, done.text).toBe(200);
  // As `rgrid run` does: it waits for the final state, whose records (artifacts, cache) D1 has
  // once the execution reads as final.
  expect((await call('GET', `/api/v1/executions/${id}`, { token: t.key })).json.execution.status).toBe('succeeded');
}

describe('cache reporting', () => {
  it('reports script and input hits, and explains environment misses in words', async () => {
    const t = await newTenant();
    const runner = await newRunner(t);
    const script = await blob(`print("cache ${Math.random()}")`);
    const input = await blob('a,b\n');
    const first = await create(t, { requirements: 'numpy==1.26.4\n', inputs: [{ path: 'in.csv', sha256: input.sha256, size: input.size }] }, script, [input]);
    expect(first.cache.script).toMatchObject({ hit: false });
    expect(first.cache.inputs).toMatchObject({ hit: 0, total: 1 });
    expect(first.cache.env).toMatchObject({ hit: false, packages: 1, reason: 'first build of these 1 requirement' });
    await runToSuccess(t, runner.runnerToken, first.execution.id, false);

    // Same script, same inputs, requirements reordered and reformatted: everything hits.
    const second = await create(t, { requirements: '# pinned\nNumPy == 1.26.4\n', inputs: [{ path: 'in.csv', sha256: input.sha256, size: input.size }] }, script);
    expect(second.uploads).toEqual([]);
    expect(second.cache.script.hit).toBe(true);
    expect(second.cache.inputs).toMatchObject({ hit: 1, total: 1, bytesHit: input.size });
    expect(second.cache.env).toMatchObject({ hit: true, packages: 1, reason: null });
    expect(second.cache.env.builtAt).not.toBeNull();
    expect(second.execution.envKey).toBe(first.execution.envKey);

    // A package added: a miss, and it says why.
    const third = await create(t, { requirements: 'numpy==1.26.4\npandas==2.2.2\n' }, script);
    expect(third.cache.env).toMatchObject({ hit: false, reason: 'requirements changed since last build (+pandas==2.2.2)', added: ['pandas==2.2.2'] });
    // A runtime change: a miss with that reason.
    const fourth = await create(t, { runtime: 'python3.12', requirements: 'numpy==1.26.4\n' }, script);
    expect(fourth.cache.env.reason).toBe('runtime changed since last build (python3.11 → python3.12)');

    // explain answers the same without creating anything.
    const before = (await call('GET', '/api/v1/executions', { token: t.key })).json.executions.length;
    const explained = await call('POST', '/api/v1/cache/explain', { token: t.key, body: { script: { name: 'analyze.py', sha256: script.sha256, size: script.size }, requirements: 'numpy==1.26.4', pool: t.pool } });
    expect(explained.json.cache.env).toMatchObject({ hit: true, key: first.execution.envKey });
    expect((await call('GET', '/api/v1/executions', { token: t.key })).json.executions.length).toBe(before);

    // A runner that reused the image reports a hit; stats add it all up.
    await runToSuccess(t, runner.runnerToken, second.execution.id, true);
    const stats = (await call('GET', '/api/v1/cache/stats', { token: t.key })).json;
    // The python3.12 run has its own script key (the key covers the runtime): a miss.
    expect(stats.script).toMatchObject({ hits: 2, misses: 2 });
    expect(stats.input).toMatchObject({ hits: 1, misses: 1 });
    expect(stats.env).toMatchObject({ hits: 1, misses: 1, hitRate: 0.5 });
  });
});

describe('result reuse', () => {
  it('an identical execution reuses the outputs of an earlier success instead of running', async () => {
    const t = await newTenant();
    const runner = await newRunner(t);
    const script = await blob(`print("reuse ${Math.random()}")`);
    const input = await blob('1,2,3\n');
    const body = { inputs: [{ path: 'in.csv', sha256: input.sha256, size: input.size, arg: 0 }], args: ['in.csv'] };
    const first = await create(t, body, script, [input]);
    await runToSuccess(t, runner.runnerToken, first.execution.id, false, 'the result');

    const again = await create(t, { ...body, reuseResults: true }, script);
    expect(again.execution).toMatchObject({ status: 'succeeded', reusedFrom: first.execution.id, exitCode: 0 });
    expect(again.uploads).toEqual([]);
    const arts = (await call('GET', `/api/v1/executions/${again.execution.id}/artifacts`, { token: t.key })).json.artifacts;
    expect(arts.map((a: any) => a.path)).toEqual(['out.txt']);
    expect(await (await fetch(arts[0].download.url)).text()).toBe('the result');

    // Different arguments: not the same computation, so it runs.
    const other = await create(t, { ...body, args: ['in.csv', '--fast'], reuseResults: true }, script);
    expect(other.execution.status).toBe('created');
    // Without the flag nothing is reused.
    const plain = await create(t, body, script);
    expect(plain.execution.status).toBe('created');
  });

  it('in a batch, only changed inputs run; the rest show as reused', async () => {
    const t = await newTenant();
    const runner = await newRunner(t);
    const script = await blob(`print("batch reuse ${Math.random()}")`);
    const files = await Promise.all([0, 1, 2].map((i) => blob(`row ${i}\n`)));
    const item = (f: { sha256: string; size: number }, i: number) => ({ inputName: `f${i}.csv`, args: [`f${i}.csv`], inputs: [{ path: `f${i}.csv`, sha256: f.sha256, size: f.size, arg: 0 }] });
    const mk = async (fs: typeof files) => {
      const r = await call('POST', '/api/v1/batches', { token: t.key, body: { template: { script: { name: 'b.py', sha256: script.sha256, size: script.size }, pool: t.pool }, items: fs.map(item), reuseResults: true } });
      expect(r.status, r.text).toBe(201);
      const bytes = new Map([[script.sha256, script.bytes], ...fs.map((f) => [f.sha256, f.bytes] as [string, Uint8Array])]);
      for (const u of r.json.uploads) await put(u.url, bytes.get(u.sha256)!);
      await call('POST', `/api/v1/batches/${r.json.batch.id}/submit`, { token: t.key });
      return r.json;
    };
    const b1 = await mk(files);
    const { jobs } = await claim(runner.runnerToken, { maxJobs: 3 });
    for (const j of jobs) {
      await call('POST', `/runner/v1/executions/${j.executionId}/complete`, { token: runner.runnerToken, body: { attempt: 1, outcome: 'succeeded', exitCode: 0 } });
    }
    expect((await call('GET', `/api/v1/batches/${b1.batch.id}`, { token: t.key })).json.batch.counts).toMatchObject({ succeeded: 3, reused: 0 });

    const changed = await blob('row 1 changed\n');
    const b2 = await mk([files[0]!, changed, files[2]!]);
    expect(b2.items.filter((i: any) => i.reusedFrom).map((i: any) => i.inputName)).toEqual(['f0.csv', 'f2.csv']);
    const snap = (await call('GET', `/api/v1/batches/${b2.batch.id}`, { token: t.key })).json.batch;
    expect(snap.counts).toMatchObject({ total: 3, succeeded: 2, reused: 2, queued: 1 });
    const run = await claim(runner.runnerToken, { maxJobs: 3 });
    expect(run.jobs).toHaveLength(1);
    expect(run.jobs[0]!.args).toEqual(['f1.csv']);
  });
});
