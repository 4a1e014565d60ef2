import { describe, expect, it } from 'vitest';
import { call, newRunner, newTenant } from './helpers.js';

function expectEnvelope(r: { status: number; json: any; text: string }, status = 400) {
  expect(r.status, r.text).toBe(status);
  expect(r.json.error.code).toBeTypeOf('string');
  expect(r.json.error.message).toBeTypeOf('string');
}

describe('bad input gets 400 with the error envelope, never a 500', () => {
  it('malformed JSON, wrong types, unknown fields and bad ids', async () => {
    const t = await newTenant();
    const runner = await newRunner(t);
    const cases: [string, string, { raw?: string; body?: unknown }, string][] = [
      ['POST', '/api/v1/executions', { raw: '{"script": ' }, t.key],
      ['POST', '/api/v1/executions', { raw: '[1,2,3]' }, t.key],
      ['POST', '/api/v1/executions', { body: { script: 'main.py' } }, t.key],
      ['POST', '/api/v1/executions', { body: { script: { name: 'a.py', sha256: 'xyz', size: 1 } } }, t.key],
      ['POST', '/api/v1/executions', { body: { script: { name: 'a.py', sha256: 'a'.repeat(64), size: -1 } } }, t.key],
      ['POST', '/api/v1/executions', { body: { script: { name: '../a.py', sha256: 'a'.repeat(64), size: 1 } } }, t.key],
      ['POST', '/api/v1/executions', { body: { script: { name: 'a.py', sha256: 'a'.repeat(64), size: 1 }, inputs: [{ path: '../etc/passwd', sha256: 'a'.repeat(64), size: 1 }] } }, t.key],
      ['POST', '/api/v1/executions', { body: { script: { name: 'a.py', sha256: 'a'.repeat(64), size: 1 }, inputs: [{ path: '/abs', sha256: 'a'.repeat(64), size: 1 }] } }, t.key],
      ['POST', '/api/v1/executions', { body: { script: { name: 'a.py', sha256: 'a'.repeat(64), size: 1 }, inputs: [{ path: 'a\u0000b', sha256: 'a'.repeat(64), size: 1 }] } }, t.key],
      ['POST', '/api/v1/executions', { body: { script: { name: 'a.py', sha256: 'a'.repeat(64), size: 1 }, limits: { timeoutSeconds: 'soon' } } }, t.key],
      ['POST', '/api/v1/executions', { body: { script: { name: 'a.py', sha256: 'a'.repeat(64), size: 1 }, runtime: 'cobol' } }, t.key],
      ['POST', '/api/v1/executions', { body: { script: { name: 'a.py', sha256: 'a'.repeat(64), size: 1 }, surprise: true } }, t.key],
      ['POST', '/api/v1/executions', { body: { script: { name: 'a.py', sha256: 'a'.repeat(64), size: 1 }, env: { 'BAD KEY': 'x' } } }, t.key],
      ['GET', '/api/v1/executions/not-an-id', {}, t.key],
      ['GET', '/api/v1/executions?status=sleeping', {}, t.key],
      ['GET', '/api/v1/executions?limit=100000', {}, t.key],
      ['POST', '/runner/v1/claim', { body: { maxJobs: 'many' } }, runner.runnerToken],
      ['POST', '/runner/v1/claim', { body: { waitSeconds: 9999 } }, runner.runnerToken],
      ['POST', '/runner/v1/register', { body: { name: 'x' } }, ''],
      ['POST', '/runner/v1/executions/exec_aaaaaaaaaaaaaaaaaaaaaaaa/complete', { body: { attempt: 1, outcome: 'failed' } }, runner.runnerToken],
      ['POST', '/runner/v1/executions/exec_aaaaaaaaaaaaaaaaaaaaaaaa/logs', { body: { attempt: 1, chunks: [{ seq: -1, stream: 'stdout', data: 'x' }] } }, runner.runnerToken],
    ];
    for (const [method, path, opts, token] of cases) {
      const r = await call(method, path, { ...opts, token: token || undefined });
      expectEnvelope(r);
      expect(r.json.error.code, `${method} ${path} ${JSON.stringify(opts)}`).toBe('bad_request');
    }
  });

  it('names the offending field', async () => {
    const t = await newTenant();
    const r = await call('POST', '/api/v1/executions', { token: t.key, body: { script: { name: 'a.py', sha256: 'a'.repeat(64), size: 1 }, limits: { memoryMb: 1 } } });
    expectEnvelope(r);
    expect(r.json.error.message).toContain('limits.memoryMb');
    expect(r.json.error.details[0].path).toBe('limits.memoryMb');
  });

  it('oversized bodies get 413', async () => {
    const t = await newTenant();
    const r = await call('POST', '/api/v1/executions', { token: t.key, raw: JSON.stringify({ pad: 'x'.repeat(2 * 1024 * 1024) }) });
    expectEnvelope(r, 413);
    expect(r.json.error.code).toBe('payload_too_large');
  });

  it('unknown routes get a 404 envelope', async () => {
    const r = await call('GET', '/api/v2/nothing');
    expectEnvelope(r, 404);
  });
});

describe('names and paths that cannot be placed safely are refused at create time', () => {
  const script = { name: 'a.py', sha256: 'a'.repeat(64), size: 1 };
  const file = (path: string) => ({ path, sha256: 'b'.repeat(64), size: 1 });

  it('script names "." and ".." (F5)', async () => {
    const t = await newTenant();
    for (const name of ['.', '..']) {
      const exec = await call('POST', '/api/v1/executions', { token: t.key, body: { script: { ...script, name }, pool: t.pool } });
      expectEnvelope(exec);
      expect(exec.json.error.message).toMatch(/^invalid request body: script\.name: /);
      const batch = await call('POST', '/api/v1/batches', { token: t.key, body: { template: { script: { ...script, name }, pool: t.pool }, items: [] } });
      expectEnvelope(batch);
      expect(batch.json.error.message).toMatch(/template\.script\.name/);
    }
  });

  it('batch input names that would leave ./outputs on download (F4); folders are kept', async () => {
    const t = await newTenant();
    for (const inputName of ['../etc/passwd', 'a/../../b', '/etc/passwd', 'a\u0000b', '..\\..\\x', 'a//b', './a', '..']) {
      const r = await call('POST', '/api/v1/batches', { token: t.key, body: { template: { script, pool: t.pool }, items: [{ inputName }] } });
      expectEnvelope(r);
      expect(r.json.error.message, JSON.stringify(inputName)).toMatch(/items\.0\.inputName/);
    }
    const ok = await call('POST', '/api/v1/batches', { token: t.key, body: { template: { script, pool: t.pool }, items: [{ inputName: 'data/2024/a.csv' }] } });
    expect(ok.status, ok.text).toBe(201);
    expect(ok.json.items[0].inputName).toBe('data/2024/a.csv');
    const appended = await call('POST', `/api/v1/batches/${ok.json.batch.id}/items`, { token: t.key, body: { items: [{ inputName: '../b.csv' }] } });
    expectEnvelope(appended);
    expect(appended.json.error.message).toMatch(/items\.0\.inputName/);
  });

  it('inputs "a" and "a/b" together, naming both (F14)', async () => {
    const t = await newTenant();
    const exec = await call('POST', '/api/v1/executions', { token: t.key, body: { script, pool: t.pool, inputs: [file('a/b'), file('c'), file('a')] } });
    expectEnvelope(exec);
    expect(exec.json.error.message).toMatch(/^invalid request body: inputs: input "a" is a file, so input "a\/b" cannot be placed under it/);
    const batch = await call('POST', '/api/v1/batches', { token: t.key, body: { template: { script, pool: t.pool }, items: [{ inputName: 'x', inputs: [file('d'), file('d/e/f')] }] } });
    expectEnvelope(batch);
    expect(batch.json.error.message).toMatch(/items\.0\.inputs: input "d" is a file, so input "d\/e\/f"/);
    // Sharing a directory is fine.
    const ok = await call('POST', '/api/v1/executions', { token: t.key, body: { script, pool: t.pool, inputs: [file('a/b'), file('a/c')] } });
    expect(ok.status, ok.text).toBe(201);
  });
});

describe('health and OpenAPI', () => {
  it('serves /health and an OpenAPI document generated from the zod schemas', async () => {
    expect((await call('GET', '/health')).json.ok).toBe(true);
    const doc = (await call('GET', '/openapi.json')).json;
    expect(doc.openapi).toBe('3.1.0');
    const create = doc.paths['/api/v1/executions'].post;
    expect(create.requestBody.content['application/json'].schema.properties.script.required).toContain('sha256');
    expect(doc.paths['/runner/v1/claim'].post.responses['200']).toBeTruthy();
    // Every response the CLI validates has its schema in the document.
    const items = doc.paths['/api/v1/batches/{id}/items'].get.responses['200'].content['application/json'].schema;
    expect(items.properties.items.items.required).toEqual(['executionId', 'inputName', 'status']);
    const deleted = doc.paths['/api/v1/webhooks/{id}'].delete.responses['200'].content['application/json'].schema;
    expect(deleted.properties.webhook.required).toContain('path');
  });

  it('documents only routes that exist', async () => {
    const doc = (await call('GET', '/openapi.json')).json;
    for (const [path, methods] of Object.entries<Record<string, unknown>>(doc.paths)) {
      for (const method of Object.keys(methods)) {
        const concrete = path.replace('{id}', 'exec_aaaaaaaaaaaaaaaaaaaaaaaa').replace('{name}', 'default');
        const r = await call(method.toUpperCase(), concrete, { body: method === 'post' ? {} : undefined });
        expect(r.json?.error?.message ?? '', `${method} ${path}`).not.toMatch(/^no route/);
      }
    }
  });
});

describe('request bodies are capped while they are read', () => {
  /** A body sent in chunks with no Content-Length: the size is only known by reading it. */
  function chunked(bytes: number): ReadableStream<Uint8Array> {
    let sent = 0;
    return new ReadableStream({
      pull(ctrl) {
        if (sent >= bytes) return ctrl.close();
        const n = Math.min(64 * 1024, bytes - sent);
        sent += n;
        ctrl.enqueue(new Uint8Array(n).fill(0x20));
      },
    });
  }

  it('unauthenticated routes (runner registration, webhook deliveries) answer 413 to an oversized chunked body', async () => {
    const { exports } = await import('cloudflare:workers');
    for (const path of ['/runner/v1/register', '/hooks/wh_aaaaaaaaaaaaaaaaaaaaaaaa']) {
      const res = await exports.default.fetch(new Request(`http://rgrid.test${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chunked(3 * 1024 * 1024), duplex: 'half' } as RequestInit));
      expect(res.status, path).toBe(413);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('payload_too_large');
    }
  });
});
