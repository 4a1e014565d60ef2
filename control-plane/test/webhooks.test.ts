import { describe, expect, it } from 'vitest';
import { DeleteWebhookResponse } from '../../shared/api/webhooks.js';
import { signature } from '../src/webhooks/signature.js';
import { blob, call, claim, newRunner, newTenant, put, type Tenant } from './helpers.js';
import { exports } from 'cloudflare:workers';

async function createHook(t: Tenant, args: string[] = ['--input', '{}']) {
  const script = await blob('print("hook")');
  const r = await call('POST', '/api/v1/webhooks', { token: t.key, body: { name: 'ingest', template: { script: { name: 'hook.py', sha256: script.sha256, size: script.size }, pool: t.pool, args } } });
  expect(r.status, r.text).toBe(201);
  for (const u of r.json.uploads) await put(u.url, script.bytes);
  return r.json as { webhook: { id: string; path: string }; secret: string };
}

async function deliver(path: string, body: unknown, opts: { secret: string; delivery?: string; ts?: number; tamper?: boolean }) {
  const raw = JSON.stringify(body);
  const ts = String(opts.ts ?? Math.floor(Date.now() / 1000));
  const delivery = opts.delivery ?? `d-${Math.random().toString(36).slice(2)}`;
  let sig = await signature(opts.secret, ts, delivery, raw);
  if (opts.tamper) sig = sig.slice(0, -2) + (sig.endsWith('00') ? '11' : '00');
  const res = await exports.default.fetch(
    new Request(`http://rgrid.test${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-rgrid-timestamp': ts, 'x-rgrid-delivery': delivery, 'x-rgrid-signature': sig }, body: raw }),
  );
  return { status: res.status, json: (await res.json()) as any, delivery };
}

describe('webhooks', () => {
  it('a signed delivery starts a batch with one item per input; bad, stale and replayed signatures are refused', async () => {
    const t = await newTenant();
    const runner = await newRunner(t);
    const { webhook, secret } = await createHook(t);
    expect(secret).toMatch(/^whsec_/);
    const uploaded = await blob('uploaded,before\n');
    const pre = await call('POST', '/api/v1/executions', { token: t.key, body: { script: { name: 'x.py', sha256: uploaded.sha256, size: uploaded.size }, pool: t.pool } });
    await put(pre.json.uploads[0].url, uploaded.bytes);
    await call('POST', `/api/v1/executions/${pre.json.execution.id}/submit`, { token: t.key });

    const body = { inputs: [{ name: 'a.csv', content: 'x,y\n1,2\n' }, { name: 'b.bin', content: btoa('\u0000\u0001binary'), encoding: 'base64' }, { name: 'c.csv', sha256: uploaded.sha256, size: uploaded.size }], metadata: { source: 'test' } };
    const ok = await deliver(webhook.path, body, { secret });
    expect(ok.status, JSON.stringify(ok.json)).toBe(201);
    expect(ok.json.items).toBe(3);
    const snap = await call('GET', `/api/v1/batches/${ok.json.batchId}`, { token: t.key });
    expect(snap.json.batch.counts).toMatchObject({ total: 3, queued: 3 });
    expect(snap.json.batch.metadata).toMatchObject({ source: 'test', 'rgrid.webhook': webhook.id });
    const jobs = (await claim(runner.runnerToken, { maxJobs: 5 })).jobs.filter((j) => j.script.name === 'hook.py');
    expect(jobs.map((j) => j.args).sort()).toEqual([['--input', 'a.csv'], ['--input', 'b.bin'], ['--input', 'c.csv']]);
    const a = jobs.find((j) => j.args[1] === 'a.csv')!;
    expect(a.inputs[0]).toMatchObject({ path: 'a.csv', arg: 1 });
    expect(await (await fetch(a.inputs[0]!.download.url)).text()).toBe('x,y\n1,2\n');

    const replay = await deliver(webhook.path, body, { secret, delivery: ok.delivery });
    expect(replay.status).toBe(409);
    const bad = await deliver(webhook.path, body, { secret, tamper: true });
    expect(bad.status).toBe(401);
    expect(bad.json.error.message).toMatch(/signature does not match/);
    const wrongSecret = await deliver(webhook.path, body, { secret: 'whsec_wrong' });
    expect(wrongSecret.status).toBe(401);
    const stale = await deliver(webhook.path, body, { secret, ts: Math.floor(Date.now() / 1000) - 600 });
    expect(stale.status).toBe(401);
    expect(stale.json.error.message).toMatch(/5 minutes/);
    const future = await deliver(webhook.path, body, { secret, ts: Math.floor(Date.now() / 1000) + 600 });
    expect(future.status).toBe(401);
  });

  it('refuses unknown blobs, duplicate names and malformed deliveries without consuming the delivery id', async () => {
    const t = await newTenant();
    const { webhook, secret } = await createHook(t);
    const missing = await deliver(webhook.path, { inputs: [{ name: 'x', sha256: 'a'.repeat(64), size: 3 }] }, { secret, delivery: 'retry-me' });
    expect(missing.status).toBe(409);
    expect(missing.json.error.hint).toMatch(/rgrid upload FILE/);
    const dup = await deliver(webhook.path, { inputs: [{ name: 'x', content: '1' }, { name: 'x', content: '2' }] }, { secret });
    expect(dup.status).toBe(400);
    const both = await deliver(webhook.path, { inputs: [{ name: 'x', content: '1', sha256: 'a'.repeat(64), size: 1 }] }, { secret });
    expect(both.status).toBe(400);
    const again = await deliver(webhook.path, { inputs: [{ name: 'x', content: 'now fine' }] }, { secret, delivery: 'retry-me' });
    expect(again.status).toBe(201);
  });

  it('refuses input names "." and ".." (F5) and base64 content that is not base64 (F6) with 400, keeping the delivery id', async () => {
    const t = await newTenant();
    const { webhook, secret } = await createHook(t);
    for (const name of ['..', '.']) {
      const r = await deliver(webhook.path, { inputs: [{ name, content: 'x' }] }, { secret });
      expect(r.status, JSON.stringify(r.json)).toBe(400);
      expect(r.json.error.message).toMatch(/inputs\.0\.name/);
    }
    // atob's forgiving base64 takes missing padding ("abc") and whitespace; these it cannot decode.
    for (const content of ['!!!', 'a', 'YQ==YQ==', 'aGk=\u0000']) {
      const r = await deliver(webhook.path, { inputs: [{ name: 'ok.txt', content: 'aGk=', encoding: 'base64' }, { name: 'bad.bin', content, encoding: 'base64' }] }, { secret, delivery: 'b64' });
      expect(r.status, JSON.stringify(r.json)).toBe(400);
      expect(r.json.error).toMatchObject({ code: 'bad_request', message: 'input bad.bin: content is not valid base64' });
      expect(r.json.error.hint).toMatch(/base64/);
    }
    const fixed = await deliver(webhook.path, { inputs: [{ name: 'bad.bin', content: btoa('now fine'), encoding: 'base64' }] }, { secret, delivery: 'b64' });
    expect(fixed.status, JSON.stringify(fixed.json)).toBe(201);
  });

  it('lists and deletes webhooks per account', async () => {
    const t = await newTenant();
    const other = await newTenant(t.pool);
    const { webhook, secret } = await createHook(t);
    expect((await call('GET', '/api/v1/webhooks', { token: t.key })).json.webhooks.map((w: any) => w.id)).toEqual([webhook.id]);
    expect((await call('GET', '/api/v1/webhooks', { token: other.key })).json.webhooks).toEqual([]);
    expect((await call('DELETE', `/api/v1/webhooks/${webhook.id}`, { token: other.key })).status).toBe(404);
    const deleted = await call('DELETE', `/api/v1/webhooks/${webhook.id}`, { token: t.key });
    expect(deleted.status).toBe(200);
    expect(DeleteWebhookResponse.parse(deleted.json).webhook).toMatchObject({ id: webhook.id, path: webhook.path });
    expect((await deliver(webhook.path, { inputs: [{ name: 'x', content: '1' }] }, { secret })).status).toBe(404);
  });
});
