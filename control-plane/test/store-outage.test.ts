/**
 * F10: when the object store fails the control plane's own requests (unreachable, or 403 from
 * wrong credentials or clock skew), callers get 503 `unavailable` naming the store, which clients
 * retry, instead of a generic 500. The same Worker app, with the store's settings broken.
 */
import { env } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { createApp } from '../src/app.js';
import { signature } from '../src/webhooks/signature.js';
import { BASE, blob, call, newTenant, put } from './helpers.js';

const app = createApp();

/** Calls the Worker app with some bindings replaced (the store settings). */
async function callWith(bindings: Partial<typeof env>, method: string, path: string, opts: { token?: string; raw?: string; headers?: Record<string, string> } = {}) {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.raw !== undefined) headers['content-type'] = 'application/json';
  const res = await app.fetch(new Request(BASE + path, { method, headers, body: opts.raw }), { ...env, ...bindings });
  return { status: res.status, json: (await res.json()) as any };
}

const UNREACHABLE = { S3_ENDPOINT: 'http://127.0.0.1:1' };
const WRONG_KEY = { S3_SECRET_ACCESS_KEY: 'not-the-store-secret-0123456789' };

async function createdExecution() {
  const t = await newTenant();
  const script = await blob(`print("outage ${Math.random()}")`);
  const created = await call('POST', '/api/v1/executions', { token: t.key, body: { script: { name: 'main.py', sha256: script.sha256, size: script.size }, pool: t.pool } });
  expect(created.status, created.text).toBe(201);
  for (const u of created.json.uploads) expect((await put(u.url, script.bytes)).status).toBe(200);
  return { t, id: created.json.execution.id as string };
}

describe('object store failures seen by the control plane (F10)', () => {
  for (const [what, bindings, detail] of [
    ['unreachable', UNREACHABLE, /^object store unreachable: HEAD blobs\/acct_[a-z2-7]+\/[0-9a-f]{64}: ./],
    ['refusing the signature (403)', WRONG_KEY, /^object store unreachable: HEAD blobs\/acct_[a-z2-7]+\/[0-9a-f]{64}: answered 403/],
  ] as const) {
    it(`submit while the store is ${what}: 503 unavailable with a hint, nothing queued; the retry later works`, async () => {
      const { t, id } = await createdExecution();
      const r = await callWith(bindings, 'POST', `/api/v1/executions/${id}/submit`, { token: t.key });
      expect(r.status, JSON.stringify(r.json)).toBe(503);
      expect(r.json.error.code).toBe('unavailable');
      expect(r.json.error.message).toMatch(detail);
      expect(r.json.error.hint).toMatch(/S3_ENDPOINT/);
      expect((await call('GET', `/api/v1/executions/${id}`, { token: t.key })).json.execution.status).toBe('created');
      const again = await call('POST', `/api/v1/executions/${id}/submit`, { token: t.key });
      expect(again.status, again.text).toBe(200);
      expect(again.json.execution.status).toBe('queued');
    });
  }

  it('a webhook delivery with inline content while the store is unreachable: 503, and the delivery id stays usable', async () => {
    const t = await newTenant();
    const script = await blob('print("hook")');
    const hook = await call('POST', '/api/v1/webhooks', { token: t.key, body: { name: 'outage', template: { script: { name: 'hook.py', sha256: script.sha256, size: script.size }, pool: t.pool } } });
    expect(hook.status, hook.text).toBe(201);
    for (const u of hook.json.uploads) await put(u.url, script.bytes);
    const raw = JSON.stringify({ inputs: [{ name: 'a.txt', content: `inline ${Math.random()}` }] });
    const ts = String(Math.floor(Date.now() / 1000));
    const headers = { 'x-rgrid-timestamp': ts, 'x-rgrid-delivery': 'during-outage', 'x-rgrid-signature': await signature(hook.json.secret, ts, 'during-outage', raw) };
    const r = await callWith(UNREACHABLE, 'POST', hook.json.webhook.path, { raw, headers });
    expect(r.status, JSON.stringify(r.json)).toBe(503);
    expect(r.json.error).toMatchObject({ code: 'unavailable' });
    expect(r.json.error.message).toMatch(/^object store unreachable: PUT blobs\//);
    const later = await callWith({}, 'POST', hook.json.webhook.path, { raw, headers });
    expect(later.status, JSON.stringify(later.json)).toBe(201);
  });
});
