// `rgrid upload` end to end: the CLI as a process stores a file by content against the local
// stack (signature-verifying S3 store), then a signed webhook delivery names that file by sha256
// and size only, and a real runner (Docker) runs the webhook's script over it.
// Needs Docker, the base images and the runner agent; fails (never skips) without them.
import { createHash, createHmac } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RGridClient } from '../../cli/api/client.js';
import { runCli, show, workspace, type Workspace } from '../harness/cli.js';
import { startTestStack, type TestStack } from '../harness/stack.js';

let stack: TestStack;
let ws: Workspace;
let client: RGridClient;

const BATCH = /(batch_[a-z2-7]{24})/;

beforeAll(async () => {
  stack = await startTestStack({ runners: 1, slots: 2 });
  ws = await workspace(stack);
  client = new RGridClient({ baseUrl: stack.apiUrl, token: stack.apiKey }, { onRetry: () => {} });
}, 180_000);

afterAll(async () => {
  await ws?.cleanup();
  await stack?.cleanup();
});

/** A delivery signed as docs/batches.md says: HMAC-SHA256 over `timestamp.delivery.body`. */
async function deliver(url: string, secret: string, payload: unknown): Promise<{ status: number; json: any }> {
  const body = JSON.stringify(payload);
  const ts = String(Math.floor(Date.now() / 1000));
  const delivery = `upload-e2e-${Math.random().toString(36).slice(2)}`;
  const sig = createHmac('sha256', secret).update(`${ts}.${delivery}.${body}`).digest('hex');
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', 'x-rgrid-timestamp': ts, 'x-rgrid-delivery': delivery, 'x-rgrid-signature': `sha256=${sig}` }, body });
  return { status: res.status, json: await res.json() };
}

describe('rgrid upload', () => {
  it('stores a file once; a webhook delivery names it by sha256 and the batch runs over it', async () => {
    // Text over 1 KB: stored gzip-compressed, so the runner must learn the encoding from the blob row.
    const content = Array.from({ length: 400 }, (_, i) => `row,${i},${i * 7}`).join('\n') + '\n';
    await writeFile(join(ws.cwd, 'orders.csv'), content);
    const sha256 = createHash('sha256').update(content).digest('hex');
    const size = Buffer.byteLength(content);

    const first = await runCli(['upload', 'orders.csv'], ws);
    expect(first.code, show(['upload', 'orders.csv'], first)).toBe(0);
    expect(first.stdout.trim()).toBe(`${sha256}  ${size}  orders.csv`);
    expect(first.stderr).toMatch(/Uploading 1 file/);
    expect(first.stderr).toContain(`{"name":"orders.csv","sha256":"${sha256}","size":${size}}`);

    const again = await runCli(['upload', 'orders.csv', '--json'], ws);
    expect(again.code, show(['upload', 'orders.csv', '--json'], again)).toBe(0);
    expect(JSON.parse(again.stdout)).toEqual({ files: [{ path: 'orders.csv', name: 'orders.csv', sha256, size, encoding: 'gzip', status: 'stored' }] });
    expect(again.stderr).not.toMatch(/Uploading/);

    // Several files: an empty one is stored too; a copy of a stored file is not sent again.
    await writeFile(join(ws.cwd, 'empty.bin'), '');
    await writeFile(join(ws.cwd, 'copy.csv'), content);
    const emptySha = createHash('sha256').update('').digest('hex');
    const many = await runCli(['upload', 'empty.bin', 'copy.csv', '--json'], ws);
    expect(many.code, show(['upload', 'empty.bin', 'copy.csv'], many)).toBe(0);
    expect(JSON.parse(many.stdout).files).toEqual([
      { path: 'empty.bin', name: 'empty.bin', sha256: emptySha, size: 0, encoding: 'identity', status: 'uploaded' },
      { path: 'copy.csv', name: 'copy.csv', sha256, size, encoding: 'gzip', status: 'stored' },
    ]);
    const missing = await runCli(['upload', 'nope.csv'], ws);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('No such file: nope.csv');

    await writeFile(join(ws.cwd, 'hook.py'), 'import sys\nrows = open(sys.argv[1]).read().splitlines()\nopen("count.txt", "w").write(f"{len(rows)} {rows[-1]}")\n');
    const created = await runCli(['webhook', 'create', 'hook.py', '--name', 'upload-e2e'], ws);
    expect(created.code, show(['webhook', 'create'], created)).toBe(0);
    const url = created.stdout.match(/^ {2}URL: +(http:\/\/127\.0\.0\.1:\d+\/hooks\/wh_[a-z2-7]{24})$/m)?.[1];
    const secret = created.stdout.match(/^ {2}Secret: +(whsec_\w+)$/m)?.[1];
    expect(url && secret, created.stdout).toBeTruthy();

    // A sha256 this account never stored is refused, naming the input.
    const unknown = await deliver(url!, secret!, { inputs: [{ name: 'missing.csv', sha256: 'f'.repeat(64), size: 10 }] });
    expect(unknown.status, JSON.stringify(unknown.json)).toBe(409);
    expect(unknown.json.error.message).toContain('missing.csv');

    const ok = await deliver(url!, secret!, { inputs: [{ name: 'orders.csv', sha256, size }] });
    expect(ok.status, JSON.stringify(ok.json)).toBe(201);
    expect(ok.json).toMatchObject({ batchId: expect.stringMatching(BATCH), items: 1 });

    let batch = (await client.getBatch(ok.json.batchId)).batch;
    for (let i = 0; i < 240 && batch.status !== 'finished'; i++) {
      await new Promise((r) => setTimeout(r, 250));
      batch = (await client.getBatch(ok.json.batchId)).batch;
    }
    expect(batch, JSON.stringify(batch)).toMatchObject({ status: 'finished', counts: { total: 1, succeeded: 1 } });

    const dl = await runCli(['download', ok.json.batchId, '--output-dir', 'out'], ws);
    expect(dl.code, show(['download'], dl)).toBe(0);
    expect(await readFile(join(ws.cwd, 'out', 'orders', 'count.txt'), 'utf8')).toBe('400 row,399,2793');
  }, 120_000);
});
