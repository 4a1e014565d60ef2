/**
 * Webhook deliveries end to end: an https URL input on the webhook's allowlist is fetched by the
 * runner, the item runs, and the completion callback arrives signed. Everything on 127.0.0.1
 * (a self-signed certificate the runner is told to trust).
 */
import { execFileSync } from 'node:child_process';
import { createHash, createHmac } from 'node:crypto';
import { mkdtemp, readFile } from 'node:fs/promises';
import { createServer as createHttps, type Server as HttpsServer } from 'node:https';
import { createServer as createHttp, type Server as HttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Docker from 'dockerode';
import { RunnerAgent } from '../src/agent.js';
import { requireDocker } from '../src/docker/test-support.js';
import { artifactText, artifacts, startTestStack, waitFinal, type TestStack } from './harness.js';

let stack: TestStack;
let agent: RunnerAgent;
let https: HttpsServer;
let http: HttpServer;
let httpsHost: string;
let callbackUrl: string;
const callbacks: { headers: Record<string, string | string[] | undefined>; body: string }[] = [];

beforeAll(async () => {
  await requireDocker(new Docker());
  const dir = await mkdtemp(join(tmpdir(), 'rgrid-tls-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  https = createHttps({ key: await readFile(join(dir, 'key.pem')), cert: await readFile(join(dir, 'cert.pem')) }, (req, res) => {
    if (req.url === '/data.csv') res.writeHead(200).end('x\n1\n2\n3\n');
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => https.listen(0, '127.0.0.1', r));
  httpsHost = `127.0.0.1:${(https.address() as { port: number }).port}`;
  http = createHttp((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      callbacks.push({ headers: req.headers, body });
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  callbackUrl = `http://127.0.0.1:${(http.address() as { port: number }).port}/done`;
  stack = await startTestStack();
  agent = new RunnerAgent(stack.runnerConfig('hooks', { 'remote-ca-file': join(dir, 'cert.pem') }), { log: () => undefined });
  await agent.start();
}, 120_000);

afterAll(async () => {
  await agent?.kill();
  await stack?.stop();
  https?.close();
  http?.close();
});

async function api(method: string, path: string, body?: unknown) {
  const r = await fetch(stack.url + path, { method, headers: { authorization: `Bearer ${stack.apiKey}`, 'content-type': 'application/json' }, body: body ? JSON.stringify(body) : undefined });
  return { status: r.status, json: (await r.json()) as any };
}

function sign(secret: string, body: string, delivery: string) {
  const ts = String(Math.floor(Date.now() / 1000));
  const sig = 'sha256=' + createHmac('sha256', secret).update(`${ts}.${delivery}.${body}`).digest('hex');
  return { 'x-rgrid-timestamp': ts, 'x-rgrid-delivery': delivery, 'x-rgrid-signature': sig, 'content-type': 'application/json' };
}

describe('webhook deliveries with URL inputs', () => {
  it('the runner fetches an allowed https input, the item runs, and the signed callback arrives', async () => {
    const script = Buffer.from('import sys\nrows = open(sys.argv[1]).read().split()\nopen("count.txt", "w").write(str(len(rows) - 1))\n');
    const sha = createHash('sha256').update(script).digest('hex');
    const hook = await api('POST', '/api/v1/webhooks', { name: 'urls', template: { script: { name: 'count.py', sha256: sha, size: script.length }, args: ['{}'] }, allowedHosts: [httpsHost] });
    expect(hook.status).toBe(201);
    for (const u of hook.json.uploads) await fetch(u.url, { method: 'PUT', body: new Uint8Array(script) });
    const secret: string = hook.json.secret;

    const bad = JSON.stringify({ inputs: [{ name: 'x.csv', url: 'https://127.0.0.2:1/x.csv' }] });
    const refused = await fetch(`${stack.url}${hook.json.webhook.path}`, { method: 'POST', headers: sign(secret, bad, 'd-bad'), body: bad });
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as any).error.message).toMatch(/not an allowed source/);
    const plain = JSON.stringify({ inputs: [{ name: 'x.csv', url: `http://${httpsHost}/data.csv` }] });
    expect((await fetch(`${stack.url}${hook.json.webhook.path}`, { method: 'POST', headers: sign(secret, plain, 'd-http'), body: plain })).status).toBe(400);

    const body = JSON.stringify({ inputs: [{ name: 'data.csv', url: `https://${httpsHost}/data.csv` }, { name: 'inline.csv', content: 'x\n9\n' }], callback_url: callbackUrl });
    const res = await fetch(`${stack.url}${hook.json.webhook.path}`, { method: 'POST', headers: sign(secret, body, 'd-good'), body });
    expect(res.status).toBe(201);
    const { batchId } = (await res.json()) as { batchId: string };
    const items = (await api('GET', `/api/v1/batches/${batchId}/items`)).json.items as { executionId: string; inputName: string }[];
    const counts: Record<string, string> = {};
    for (const item of items) {
      const final = await waitFinal(stack, item.executionId);
      expect(final.status).toBe('succeeded');
      const out = (await artifacts(stack, item.executionId)).find((a) => a.path === 'count.txt')!;
      counts[item.inputName] = (await artifactText(out)).toString();
    }
    expect(counts).toEqual({ 'data.csv': '3', 'inline.csv': '1' });

    const deadline = Date.now() + 20_000;
    while (!callbacks.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(callbacks).toHaveLength(1);
    const cb = callbacks[0]!;
    const expected = 'sha256=' + createHmac('sha256', secret).update(`${cb.headers['x-rgrid-timestamp']}.${cb.headers['x-rgrid-delivery']}.${cb.body}`).digest('hex');
    expect(cb.headers['x-rgrid-signature']).toBe(expected);
    const summary = JSON.parse(cb.body);
    expect(summary).toMatchObject({ type: 'batch.finished', batch: { id: batchId, status: 'finished', counts: { total: 2, succeeded: 2 } } });
  }, 120_000);
});
