// The batch watcher against the real local stack (no runner process: the test plays the runner
// through the runner protocol, so each transition happens exactly when the test says).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BatchSnapshot } from '../../shared/api/batches.js';
import { RGridClient } from '../api/client.js';
import { sha256File } from '../transfer/hash.js';
import { uploadBlobs, type LocalBlob } from '../transfer/upload.js';
import { startTestStack, type TestStack } from '../../test/harness/stack.js';
import { isBatchDone, watchBatch } from './watch.js';

let stack: TestStack;
let client: RGridClient;
let dir: string;
let runnerToken: string;

async function runnerCall(path: string, body: unknown): Promise<any> {
  const res = await fetch(stack.apiUrl + path, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${runnerToken}` }, body: JSON.stringify(body) });
  const json = await res.json();
  expect(res.status, JSON.stringify(json)).toBeLessThan(300);
  return json;
}

async function blob(name: string, text: string): Promise<LocalBlob> {
  const path = join(dir, name);
  await writeFile(path, text);
  return { ...(await sha256File(path)), path, label: name };
}

/** A submitted batch of `n` items, with its script and inputs uploaded. */
async function submittedBatch(n: number): Promise<{ id: string; executions: string[] }> {
  const script = await blob(`s${Math.random()}.py`, `print(${Math.random()})\n`);
  const files = await Promise.all(Array.from({ length: n }, (_, i) => blob(`in${i}-${Math.random()}.txt`, `${i} ${Math.random()}`)));
  const created = await client.createBatch({
    template: { script: { name: 'job.py', sha256: script.sha256, size: script.size } },
    items: files.map((f, i) => ({ inputName: `data/in${i}.txt`, args: [`in${i}.txt`], inputs: [{ path: `in${i}.txt`, sha256: f.sha256, size: f.size, arg: 0 }] })),
  });
  await uploadBlobs(created.uploads, new Map([script, ...files].map((b) => [b.sha256, b])));
  await client.submitBatch(created.batch.id);
  return { id: created.batch.id, executions: created.items.map((i) => i.executionId) };
}

async function claimOne(): Promise<{ executionId: string; attempt: number }> {
  const { jobs } = await runnerCall('/runner/v1/claim', { maxJobs: 1, waitSeconds: 5 });
  expect(jobs).toHaveLength(1);
  return jobs[0];
}

async function until(pred: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !pred(); i++) await new Promise((r) => setTimeout(r, 25));
  expect(pred(), what).toBe(true);
}

beforeAll(async () => {
  stack = await startTestStack({ runners: 0 });
  client = new RGridClient({ baseUrl: stack.apiUrl, token: stack.apiKey }, { onRetry: () => {} });
  dir = await mkdtemp(join(tmpdir(), 'rgrid-watch-'));
  const reg = await fetch(stack.apiUrl + '/runner/v1/register', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ registrationToken: stack.registrationToken, name: 'hand', slots: 4 }),
  });
  runnerToken = ((await reg.json()) as { runnerToken: string }).runnerToken;
});

afterAll(async () => {
  await stack?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('watchBatch', () => {
  it('sees every change over the WebSocket (throttled deltas merged), never backwards, and ends with the final snapshot', async () => {
    const { id } = await submittedBatch(2);
    const seen: BatchSnapshot[] = [];
    // Polling slower than the test: what arrives in time arrives over the socket.
    const done = watchBatch(client, id, { onSnapshot: (s) => seen.push(s), pollMs: 60_000, openPollMs: 60_000 });
    await until(() => seen.length > 0, 'first snapshot');
    expect(seen[0]!.counts).toMatchObject({ total: 2, queued: 2 });

    const a = await claimOne();
    await until(() => seen.some((s) => s.counts.running === 1), 'running');
    await runnerCall(`/runner/v1/executions/${a.executionId}/complete`, { attempt: a.attempt, outcome: 'succeeded', exitCode: 0 });
    await until(() => seen.some((s) => s.counts.succeeded === 1 && s.counts.queued === 1), 'one succeeded');
    const b = await claimOne();
    await runnerCall(`/runner/v1/executions/${b.executionId}/complete`, { attempt: b.attempt, outcome: 'failed', failureKind: 'script_error', exitCode: 4, message: 'script exited with code 4' });
    const final = await done;

    expect(isBatchDone(final)).toBe(true);
    expect(final.counts).toMatchObject({ total: 2, succeeded: 1, failed: 1, queued: 0, running: 0 });
    expect(final.failures).toEqual([expect.objectContaining({ executionId: b.executionId, failureKind: 'script_error', exitCode: 4 })]);
    // Messages are throttled (a change may be folded into the next one), but versions never go back.
    const versions = seen.map((s) => s.version);
    expect([...versions].sort((x, y) => x - y), `versions ${versions.join(',')}`).toEqual(versions);
    const states = seen.map((s) => `${s.counts.queued}q${s.counts.running}r${s.counts.succeeded}s${s.counts.failed}f`);
    expect(states).toEqual(expect.arrayContaining(['2q0r0s0f', '1q1r0s0f', '1q0r1s0f', '0q0r1s1f']));
    expect(states.at(-1)).toBe('0q0r1s1f');
  });

  it('falls back to polling when the WebSocket cannot be opened', async () => {
    const { id } = await submittedBatch(3);
    const seen: BatchSnapshot[] = [];
    const done = watchBatch(client, id, { onSnapshot: (s) => seen.push(s), pollMs: 200, wsUrl: 'ws://127.0.0.1:9/nothing-listens-here' });
    await until(() => seen.length > 0, 'first snapshot');
    const a = await claimOne();
    await runnerCall(`/runner/v1/executions/${a.executionId}/complete`, { attempt: a.attempt, outcome: 'succeeded', exitCode: 0 });
    await until(() => seen.some((s) => s.counts.succeeded === 1), 'a polled update');
    await client.cancelBatch(id);
    const final = await done;
    expect(final.status).toBe('canceled');
    expect(final.counts).toMatchObject({ succeeded: 1, canceled: 2 });
  });

  it('stops when told to (Ctrl+C detaches) with the latest snapshot', async () => {
    const { id } = await submittedBatch(1);
    const ac = new AbortController();
    const done = watchBatch(client, id, { onSnapshot: () => ac.abort(), signal: ac.signal });
    const last = await done;
    expect(last.id).toBe(id);
    expect(isBatchDone(last)).toBe(false);
    await client.cancelBatch(id);
  });
});
