// Storing files on their own (/api/v1/blobs): presign only what is missing, confirm against the
// real loopback S3 store, and the result is what a webhook delivery's sha256 input relies on.
import { describe, expect, it } from 'vitest';
import { blob, call, newTenant, put } from './helpers.js';

async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Response(bytes).body!.pipeThrough(new CompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

describe('/api/v1/blobs', () => {
  it('offers an upload only for missing blobs; after upload and confirm, none', async () => {
    const t = await newTenant();
    const a = await blob(`a ${Math.random()}`);
    const b = await blob(`b ${Math.random()}`);
    const asked = await call('POST', '/api/v1/blobs', { token: t.key, body: { blobs: [a, b, a].map(({ sha256, size }) => ({ sha256, size })) } });
    expect(asked.status, asked.text).toBe(200);
    expect(asked.json.uploads.map((u: any) => u.sha256).sort()).toEqual([a.sha256, b.sha256].sort());
    for (const u of asked.json.uploads) {
      expect(u.method).toBe('PUT');
      expect((await put(u.url, u.sha256 === a.sha256 ? a.bytes : b.bytes)).status).toBe(200);
    }
    const confirmed = await call('POST', '/api/v1/blobs/confirm', { token: t.key, body: { blobs: [{ sha256: a.sha256, size: a.size }, { sha256: b.sha256, size: b.size }] } });
    expect(confirmed.status, confirmed.text).toBe(200);
    expect(confirmed.json.blobs).toEqual([
      { sha256: a.sha256, size: a.size, status: 'uploaded' },
      { sha256: b.sha256, size: b.size, status: 'uploaded' },
    ]);

    const again = await call('POST', '/api/v1/blobs', { token: t.key, body: { blobs: [{ sha256: a.sha256, size: a.size }] } });
    expect(again.json.uploads).toEqual([]);
    const reconfirmed = await call('POST', '/api/v1/blobs/confirm', { token: t.key, body: { blobs: [{ sha256: a.sha256, size: a.size }] } });
    expect(reconfirmed.json.blobs).toEqual([{ sha256: a.sha256, size: a.size, status: 'known' }]);

    // A stored blob is an input like any other: an execution naming it needs no upload of it.
    const script = await blob(`print(${Math.random()})`);
    const created = await call('POST', '/api/v1/executions', { token: t.key, body: { script: { name: 'a.py', sha256: script.sha256, size: script.size }, pool: t.pool, inputs: [{ path: 'a.txt', sha256: a.sha256, size: a.size }] } });
    expect(created.json.uploads.map((u: any) => u.sha256)).toEqual([script.sha256]);
  });

  it('confirm before the upload: 409 naming the blob, and nothing is recorded', async () => {
    const t = await newTenant();
    const a = await blob(`never uploaded ${Math.random()}`);
    const r = await call('POST', '/api/v1/blobs/confirm', { token: t.key, body: { blobs: [{ sha256: a.sha256, size: a.size }] } });
    expect(r.status).toBe(409);
    expect(r.json.error.code).toBe('conflict');
    expect(r.json.error.message).toContain('was not uploaded');
    expect(r.json.error.message).toContain(a.sha256);
    expect(r.json.error.hint).toMatch(/POST \/api\/v1\/blobs/);
    expect(r.json.error.details).toEqual({ sha256: a.sha256, size: a.size });
    const asked = await call('POST', '/api/v1/blobs', { token: t.key, body: { blobs: [{ sha256: a.sha256, size: a.size }] } });
    expect(asked.json.uploads.map((u: any) => u.sha256)).toEqual([a.sha256]);
  });

  it('a wrong size is refused; a gzip-stored blob is accepted by its original size', async () => {
    const t = await newTenant();
    const a = await blob(`sized ${Math.random()}`);
    const [u] = (await call('POST', '/api/v1/blobs', { token: t.key, body: { blobs: [{ sha256: a.sha256, size: a.size }] } })).json.uploads;
    await put(u.url, a.bytes);
    const wrong = await call('POST', '/api/v1/blobs/confirm', { token: t.key, body: { blobs: [{ sha256: a.sha256, size: a.size + 1 }] } });
    expect(wrong.status).toBe(409);
    expect(wrong.json.error.message).toMatch(/uploaded with \d+ bytes/);

    const text = await blob('id,total\n'.repeat(3000) + Math.random());
    const gz = await gzip(text.bytes);
    const [g] = (await call('POST', '/api/v1/blobs', { token: t.key, body: { blobs: [{ sha256: text.sha256, size: text.size, encoding: 'gzip' }] } })).json.uploads;
    await put(g.url, gz);
    const ok = await call('POST', '/api/v1/blobs/confirm', { token: t.key, body: { blobs: [{ sha256: text.sha256, size: text.size, encoding: 'gzip' }] } });
    expect(ok.status, ok.text).toBe(200);
    expect(ok.json.blobs[0].status).toBe('uploaded');
  });

  it("another account's blob is not known to you: you get your own upload, and cannot confirm theirs", async () => {
    const owner = await newTenant();
    const other = await newTenant();
    const a = await blob(`owned ${Math.random()}`);
    const [u] = (await call('POST', '/api/v1/blobs', { token: owner.key, body: { blobs: [{ sha256: a.sha256, size: a.size }] } })).json.uploads;
    await put(u.url, a.bytes);
    expect((await call('POST', '/api/v1/blobs/confirm', { token: owner.key, body: { blobs: [{ sha256: a.sha256, size: a.size }] } })).status).toBe(200);

    const theirs = await call('POST', '/api/v1/blobs', { token: other.key, body: { blobs: [{ sha256: a.sha256, size: a.size }] } });
    expect(theirs.json.uploads.map((x: any) => x.sha256)).toEqual([a.sha256]);
    expect(theirs.json.uploads[0].url).not.toBe(u.url);
    const confirm = await call('POST', '/api/v1/blobs/confirm', { token: other.key, body: { blobs: [{ sha256: a.sha256, size: a.size }] } });
    expect(confirm.status).toBe(409);
  });

  it('validates the request: empty lists, too many blobs, bad hashes, sizes over the limit, no key', async () => {
    const t = await newTenant();
    const empty = await call('POST', '/api/v1/blobs', { token: t.key, body: { blobs: [] } });
    expect(empty.status).toBe(400);
    const many = await call('POST', '/api/v1/blobs', { token: t.key, body: { blobs: Array.from({ length: 1001 }, () => ({ sha256: 'a'.repeat(64), size: 1 })) } });
    expect(many.status).toBe(400);
    const bad = await call('POST', '/api/v1/blobs/confirm', { token: t.key, body: { blobs: [{ sha256: 'XYZ', size: 1 }] } });
    expect(bad.status).toBe(400);
    expect(bad.json.error.message).toContain('blobs.0.sha256');
    const huge = await call('POST', '/api/v1/blobs', { token: t.key, body: { blobs: [{ sha256: 'b'.repeat(64), size: 65 * 1024 * 1024 }] } });
    expect(huge.status).toBe(413);
    expect(huge.json.error.message).toContain('blobs[0]');
    const anon = await call('POST', '/api/v1/blobs', { body: { blobs: [{ sha256: 'c'.repeat(64), size: 1 }] } });
    expect(anon.status).toBe(401);
  });

  it('is in the OpenAPI document', async () => {
    const doc = await call('GET', '/openapi.json');
    expect(doc.status).toBe(200);
    expect(doc.json.paths['/api/v1/blobs'].post.requestBody.content['application/json'].schema.properties.blobs.maxItems).toBe(1000);
    expect(doc.json.paths['/api/v1/blobs/confirm'].post.security).toEqual([{ user: [] }]);
  });
});
