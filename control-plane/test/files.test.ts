import { describe, expect, it } from 'vitest';
import { admin, blob, call, claim, newRunner, newTenant, put, queuedExecution } from './helpers.js';

async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Response(bytes).body!.pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

describe('multipart uploads', () => {
  it('uploads a blob in presigned parts, completes, and then needs no upload', async () => {
    const t = await newTenant();
    const MB = 1024 * 1024;
    const data = new Uint8Array(11 * MB);
    for (let i = 0; i < data.length; i += 4096) data[i] = (i / 4096) % 251;
    const b = await blob(data);
    const start = await call('POST', '/api/v1/uploads/multipart', { token: t.key, body: { sha256: b.sha256, size: b.size, storedSize: b.size, partSize: 5 * MB } });
    expect(start.status, start.text).toBe(201);
    expect(start.json.parts.map((p: any) => p.partNumber)).toEqual([1, 2, 3]);
    const etags = [];
    for (const p of start.json.parts) {
      const slice = data.subarray((p.partNumber - 1) * 5 * MB, p.partNumber * 5 * MB);
      const r = await fetch(p.url, { method: 'PUT', body: slice });
      expect(r.status).toBe(200);
      etags.push({ partNumber: p.partNumber, etag: r.headers.get('etag')! });
    }
    const done = await call('POST', '/api/v1/uploads/multipart/complete', { token: t.key, body: { sha256: b.sha256, size: b.size, uploadId: start.json.uploadId, parts: etags } });
    expect(done.status, done.text).toBe(200);
    const again = await call('POST', '/api/v1/uploads/multipart', { token: t.key, body: { sha256: b.sha256, size: b.size, storedSize: b.size } });
    expect(again.json.uploadId).toBeNull();
    const script = await blob('print(1)');
    const created = await call('POST', '/api/v1/executions', { token: t.key, body: { script: { name: 'a.py', sha256: script.sha256, size: script.size }, pool: t.pool, inputs: [{ path: 'big.bin', sha256: b.sha256, size: b.size }] } });
    expect(created.json.uploads.map((u: any) => u.sha256)).toEqual([script.sha256]);
  });

  it('an incomplete part list is refused and the upload aborted: no half-object remains', async () => {
    const t = await newTenant();
    const MB = 1024 * 1024;
    const data = new Uint8Array(6 * MB).fill(7);
    const b = await blob(data);
    const start = await call('POST', '/api/v1/uploads/multipart', { token: t.key, body: { sha256: b.sha256, size: b.size, storedSize: b.size, partSize: 5 * MB } });
    const first = start.json.parts[0];
    const r = await fetch(first.url, { method: 'PUT', body: data.subarray(0, 5 * MB) });
    const bad = await call('POST', '/api/v1/uploads/multipart/complete', { token: t.key, body: { sha256: b.sha256, size: b.size, uploadId: start.json.uploadId, parts: [{ partNumber: 1, etag: r.headers.get('etag') }, { partNumber: 2, etag: '"nope"' }] } });
    expect(bad.status).toBe(409);
    expect(bad.json.error.hint).toMatch(/aborted/);
    // Nothing recorded: a create still asks for the blob.
    const script = await blob('print(2)');
    const created = await call('POST', '/api/v1/executions', { token: t.key, body: { script: { name: 'a.py', sha256: script.sha256, size: script.size }, pool: t.pool, inputs: [{ path: 'x.bin', sha256: b.sha256, size: b.size }] } });
    expect(created.json.uploads.map((u: any) => u.sha256)).toContain(b.sha256);
    // The part URL no longer works: the upload is gone.
    const late = await fetch(start.json.parts[1].url, { method: 'PUT', body: data.subarray(5 * MB) });
    expect(late.status).toBe(404);
  });

  it('refuses files over the configured maximum', async () => {
    const t = await newTenant();
    const r = await call('POST', '/api/v1/uploads/multipart', { token: t.key, body: { sha256: 'a'.repeat(64), size: 65 * 1024 * 1024, storedSize: 65 * 1024 * 1024 } });
    expect(r.status).toBe(413);
    const script = await blob('print(3)');
    const e = await call('POST', '/api/v1/executions', { token: t.key, body: { script: { name: 'a.py', sha256: script.sha256, size: script.size }, pool: t.pool, inputs: [{ path: 'huge.bin', sha256: 'b'.repeat(64), size: 65 * 1024 * 1024 }] } });
    expect(e.status).toBe(413);
    expect(e.json.error.message).toContain('huge.bin');
  });
});

describe('compression', () => {
  it('a gzip-stored input is accepted by its original size and handed to the runner as gzip', async () => {
    const t = await newTenant();
    const runner = await newRunner(t);
    const text = new TextEncoder().encode('a,b,c\n'.repeat(5000));
    const b = await blob(text);
    const gz = await gzip(text);
    expect(gz.length).toBeLessThan(text.length / 10);
    const script = await blob('print("gz")');
    const created = await call('POST', '/api/v1/executions', { token: t.key, body: { script: { name: 'a.py', sha256: script.sha256, size: script.size }, pool: t.pool, inputs: [{ path: 'data.csv', sha256: b.sha256, size: b.size, encoding: 'gzip' }] } });
    for (const u of created.json.uploads) await put(u.url, u.sha256 === b.sha256 ? gz : script.bytes);
    const sub = await call('POST', `/api/v1/executions/${created.json.execution.id}/submit`, { token: t.key });
    expect(sub.status, sub.text).toBe(200);
    const [job] = (await claim(runner.runnerToken)).jobs;
    expect(job!.inputs[0]).toMatchObject({ path: 'data.csv', encoding: 'gzip', size: text.length });
  });
});

describe('retention', () => {
  it('expires artifacts, deletes unreferenced blobs, keeps shared ones, and answers 404 "expired on"', async () => {
    const t = await newTenant();
    const runner = await newRunner(t);
    const exec = await queuedExecution(t);
    await claim(runner.runnerToken);
    const out = await blob(`output ${Math.random()}`);
    const pre = await call('POST', `/runner/v1/executions/${exec.id}/outputs/presign`, { token: runner.runnerToken, body: { attempt: 1, files: [{ path: 'o.txt', sha256: out.sha256, size: out.size }] } });
    await put(pre.json.uploads[0].url, out.bytes);
    await call('POST', `/runner/v1/executions/${exec.id}/complete`, { token: runner.runnerToken, body: { attempt: 1, outcome: 'succeeded', exitCode: 0, outputs: [{ path: 'o.txt', sha256: out.sha256, size: out.size }] } });
    const arts = (await call('GET', `/api/v1/executions/${exec.id}/artifacts`, { token: t.key })).json.artifacts;
    expect(arts).toHaveLength(1);
    const art = arts[0];
    expect(Date.parse(art.expiresAt) - Date.now()).toBeGreaterThan(29 * 86400_000);
    const one = await call('GET', `/api/v1/executions/${exec.id}/artifacts/${art.id}`, { token: t.key });
    expect(one.status).toBe(200);

    // 10 days on: nothing expires.
    const early = await admin('POST', '/retention/sweep', { now: Date.now() + 10 * 86400_000 });
    expect(early.json.artifactsExpired).toBe(0);
    // 31 days on: the artifact expires and its blob (unused since) is deleted.
    const later = await admin('POST', '/retention/sweep', { now: Date.now() + 31 * 86400_000 });
    expect(later.json.artifactsExpired).toBeGreaterThanOrEqual(1);
    expect(later.json.blobsDeleted).toBeGreaterThanOrEqual(1);
    expect((await fetch(art.download.url)).status).toBe(404);
    const gone = await call('GET', `/api/v1/executions/${exec.id}/artifacts/${art.id}`, { token: t.key });
    expect(gone.status).toBe(404);
    expect(gone.json.error.message).toMatch(/^o\.txt expired on \d{4}-\d{2}-\d{2}$/);
    const listed = (await call('GET', `/api/v1/executions/${exec.id}/artifacts`, { token: t.key })).json.artifacts[0];
    expect(listed).toMatchObject({ expired: true, download: null });
  });

  it('never deletes a blob still referenced by an unexpired artifact', async () => {
    const t = await newTenant();
    const runner = await newRunner(t);
    const shared = await blob(`shared output ${Math.random()}`);
    const ids = [];
    for (let i = 0; i < 2; i++) {
      const exec = await queuedExecution(t);
      await claim(runner.runnerToken);
      const pre = await call('POST', `/runner/v1/executions/${exec.id}/outputs/presign`, { token: runner.runnerToken, body: { attempt: 1, files: [{ path: 's.txt', sha256: shared.sha256, size: shared.size }] } });
      for (const u of pre.json.uploads) await put(u.url, shared.bytes);
      await call('POST', `/runner/v1/executions/${exec.id}/complete`, { token: runner.runnerToken, body: { attempt: 1, outcome: 'succeeded', exitCode: 0, outputs: [{ path: 's.txt', sha256: shared.sha256, size: shared.size }] } });
      ids.push(exec.id);
      // Record the two artifacts more than a second apart, so their expiries differ.
      if (i === 0) await new Promise((r) => setTimeout(r, 1200));
    }
    // Expire only the first execution's artifact (push its expiry into the past), then sweep far ahead
    // of the blob's last use but not past the second artifact's expiry.
    const first = (await call('GET', `/api/v1/executions/${ids[0]}/artifacts`, { token: t.key })).json.artifacts[0];
    const second = (await call('GET', `/api/v1/executions/${ids[1]}/artifacts`, { token: t.key })).json.artifacts[0];
    const sweepAt = Date.parse(second.expiresAt) - 200;
    expect(Date.parse(first.expiresAt)).toBeLessThan(sweepAt);
    await admin('POST', '/retention/sweep', { now: sweepAt });
    const s1 = await call('GET', `/api/v1/executions/${ids[0]}/artifacts/${first.id}`, { token: t.key });
    expect(s1.status).toBe(404);
    const s2 = await call('GET', `/api/v1/executions/${ids[1]}/artifacts/${second.id}`, { token: t.key });
    expect(s2.status).toBe(200);
    expect(await (await fetch(s2.json.artifact.download.url)).text()).toBe(new TextDecoder().decode(shared.bytes));
  });
});

describe('output limits', () => {
  it('refuses more outputs than the configured maximum, recording nothing', async () => {
    const t = await newTenant();
    const runner = await newRunner(t);
    const exec = await queuedExecution(t);
    await claim(runner.runnerToken);
    const outs = await Promise.all(Array.from({ length: 6 }, (_, i) => blob(`out ${i} ${Math.random()}`)));
    const files = outs.map((o, i) => ({ path: `o${i}.txt`, sha256: o.sha256, size: o.size }));
    const r = await call('POST', `/runner/v1/executions/${exec.id}/complete`, { token: runner.runnerToken, body: { attempt: 1, outcome: 'succeeded', exitCode: 0, outputs: files } });
    expect(r.status).toBe(400);
    expect(r.json.error.message).toMatch(/6 output files; the limit is 5/);
    expect((await call('GET', `/api/v1/executions/${exec.id}/artifacts`, { token: t.key })).json.artifacts).toEqual([]);
  });
});
