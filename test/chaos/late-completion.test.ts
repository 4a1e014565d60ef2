/**
 * The dispatch chaos test's finding, pinned deterministically: a runner whose lease expired
 * completes afterwards. When the expiry ended the execution (it was canceled while leased, or it
 * was its last attempt: runner_lost), the Dispatcher's finished row still names that runner and
 * attempt, and the late completion must still be refused as stale: it was never accepted, so it
 * is no "duplicate" (the runner would take a discarded result for a recorded one).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Client, Stack, putBlob, sha256, sleep } from '../reliability/harness.js';

let stack: Stack;
beforeAll(async () => {
  stack = await Stack.start({ leaseSeconds: 3, maxAttempts: 1 });
}, 120_000);
afterAll(() => stack?.stop());

async function oneJob(): Promise<string> {
  const c = stack.alice.client;
  const script = Buffer.from('print(1)\n');
  const created = await c.ok('POST', '/api/v1/batches', { template: { script: { name: 'a.py', sha256: sha256(script), size: script.length } }, items: [{ inputName: 'x.txt' }] });
  for (const u of created.uploads) await putBlob(u.url, script);
  await c.ok('POST', `/api/v1/batches/${created.batch.id}/submit`);
  return created.items[0].executionId;
}

for (const ending of ['canceled while leased', 'runner_lost on its last attempt'] as const) {
  it(`a completion after the lease expired is refused as stale (${ending})`, async () => {
    const reg = await new Client(stack.url, undefined).ok('POST', '/runner/v1/register', { registrationToken: stack.registrationToken, name: 'late', slots: 1 });
    const runner = new Client(stack.url, reg.runnerToken);
    const id = await oneJob();
    const { jobs } = await runner.ok('POST', '/runner/v1/claim', { maxJobs: 1, waitSeconds: 2 });
    expect(jobs.map((j: { executionId: string }) => j.executionId)).toEqual([id]);
    const ref = { executionId: id, attempt: jobs[0].attempt, shard: jobs[0].shard };
    await runner.ok('POST', '/runner/v1/heartbeat', { activeJobs: 1, jobs: [ref] });
    if (ending === 'canceled while leased') await stack.alice.client.ok('POST', `/api/v1/executions/${id}/cancel`);
    await sleep(3000 + 1500); // no more heartbeats: the lease expires and the Dispatcher ends the execution
    const ex = (await stack.alice.client.ok('GET', `/api/v1/executions/${id}`)).execution;
    expect(ex.status).toBe(ending === 'canceled while leased' ? 'canceled' : 'failed');
    const late = await runner.ok('POST', '/runner/v1/complete', { completions: [{ ...ref, outcome: 'succeeded', exitCode: 0 }] });
    expect(late.results[0]).toMatchObject({ executionId: id, ok: false, status: 409, error: { code: 'stale_attempt' } });
  }, 30_000);
}
