// Files at scale, end to end: `rgrid run` as a process against the local stack with a real runner
// on Docker and the signature-verifying S3 store. Multipart above 100 MB with sha256 checked on
// both sides, Ctrl+C during an upload, gzip round trips, the file-size limit, and retention with a
// clock the test moves (POST /admin/v1/retention/sweep {now}). The stack keeps artifacts 2 days,
// so every download here is within the 3-day warning window.
// Needs Docker, the base images and the runner agent; fails (never skips) without them.
import { createHash, randomBytes } from 'node:crypto';
import { open, readFile, readdir, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { blobKey, ObjectStore } from '../../control-plane/src/storage/s3.js';
import { RGridClient } from '../../cli/api/client.js';
import { ApiError, Http } from '../../cli/api/http.js';
import { loadState } from '../../cli/dev/state.js';
import { runCli, show, spawnCli, workspace, type Workspace } from '../harness/cli.js';
import { startTestStack, type TestStack } from '../harness/stack.js';
import { randomFile } from '../harness/files.js';

const MiB = 1024 * 1024;
const MAX_FILE_BYTES = 600 * MiB;
const ID = /(exec_[a-z2-7]{24})/;

let stack: TestStack;
let ws: Workspace;
let client: RGridClient;
let store: ObjectStore;

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A file of zeros that takes no disk (sparse). */
async function zeros(path: string, bytes: number): Promise<void> {
  await writeFile(path, '');
  await truncate(path, bytes);
}

async function objectSize(sha256: string): Promise<number | null> {
  return (await store.head(blobKey(stack.accountId, sha256)))?.size ?? null;
}

async function objectBytes(sha256: string): Promise<Buffer> {
  const get = await store.presign('GET', blobKey(stack.accountId, sha256), { expiresSeconds: 60 });
  return Buffer.from(await (await fetch(get.url)).arrayBuffer());
}

beforeAll(async () => {
  stack = await startTestStack({ runners: 1, slots: 2, workerVars: { ARTIFACT_RETENTION_DAYS: '2', MAX_FILE_BYTES: String(MAX_FILE_BYTES) } });
  ws = await workspace(stack);
  client = new RGridClient({ baseUrl: stack.apiUrl, token: stack.apiKey });
  const { s3 } = await loadState(stack.dataDir);
  store = new ObjectStore({ endpoint: stack.s3.endpoint, bucket: stack.s3.bucket, region: 'us-east-1', ...s3 });
  await writeFile(
    join(ws.cwd, 'sha.py'),
    `import hashlib, sys
h = hashlib.sha256()
with open(sys.argv[1], 'rb') as f:
    for chunk in iter(lambda: f.read(1 << 20), b''):
        h.update(chunk)
print('sha256', h.hexdigest())
open('sha.txt', 'w').write(h.hexdigest())
`,
  );
}, 180_000);

afterAll(async () => {
  await ws?.cleanup();
  await stack?.cleanup();
});

describe('files at scale', () => {
  it('a 301 MiB input goes up in parts and arrives intact: sha256 checked by the CLI, the runner and the script', async () => {
    const expected = await randomFile(join(ws.cwd, 'big.bin'), 301);
    const args = ['run', 'sha.py', 'big.bin', '--verbose'];
    const r = await runCli(args, ws);
    expect(r.code, show(args, r)).toBe(0);
    expect(r.stderr).toContain('Uploading big.bin in 19 parts of 16 MB');
    expect(r.stderr).toMatch(/Uploaded 301 MB in [\d.]+s/);
    expect(r.stdout).toContain(`sha256 ${expected}`);
    expect(await readFile(join(ws.cwd, 'sha.txt'), 'utf8')).toBe(expected);
    // Recorded after completion, as one object of the full size: the next run uploads nothing.
    expect(await objectSize(expected)).toBe(301 * MiB);
    const again = await runCli(['run', 'sha.py', 'big.bin', '--remote-only'], ws);
    expect(again.stderr).toContain('✓ Using cached inputs (1 file, 301 MB)');
    expect(again.stderr).not.toMatch(/Uploading/);
  }, 120_000);

  it('Ctrl+C during a multipart upload aborts it: nothing recorded, no object, no pending upload', async () => {
    await zeros(join(ws.cwd, 'zeros.bin'), 400 * MiB);
    const zerosSha = sha(Buffer.alloc(400 * MiB));
    const cli = spawnCli(['run', 'sha.py', 'zeros.bin'], ws);
    await cli.waitFor(/Uploading 1 file: \d+%/, 'stderr', 60_000);
    cli.child.kill('SIGINT');
    const r = await cli.done;
    expect(r.code, r.stderr).toBe(130);
    const id = r.stderr.match(/Interrupted before submit: canceling (exec_[a-z2-7]{24})/)?.[1];
    expect(id, r.stderr).toBeDefined();
    expect((await client.get(id!)).execution.status).toBe('canceled');
    expect(await objectSize(zerosSha)).toBeNull();
    expect(await readdir(join(stack.dataDir, 's3', stack.s3.bucket, 'uploads'))).toEqual([]);
    // Nothing recorded: the control plane would still ask for the whole file.
    const probe = await client.createMultipart({ sha256: zerosSha, size: 400 * MiB, storedSize: 400 * MiB });
    expect(probe.uploadId).not.toBeNull();
    await client.abortMultipart({ sha256: zerosSha, uploadId: probe.uploadId! });
  }, 90_000);

  let roundTripId = '';
  it('gzip round trip: text is stored compressed, binary untouched, and both reach the script and come back as they were', async () => {
    const csv = Buffer.from('id,city,value\n' + Array.from({ length: 40_000 }, (_, i) => `${i},city-${i % 50},${(i * 37) % 1000}\n`).join(''));
    const png = randomBytes(300_000);
    await writeFile(join(ws.cwd, 'table.csv'), csv);
    await writeFile(join(ws.cwd, 'photo.png'), png);
    await writeFile(
      join(ws.cwd, 'echo.py'),
      `import hashlib, shutil, sys
for p in sys.argv[1:]:
    print(p.split('/')[-1], hashlib.sha256(open(p, 'rb').read()).hexdigest())
shutil.copyfile(sys.argv[1], 'out.csv')
shutil.copyfile(sys.argv[2], 'out.png')
`,
    );
    const args = ['run', 'echo.py', 'table.csv', 'photo.png', '--output-dir', 'rt'];
    const r = await runCli(args, ws);
    expect(r.code, show(args, r)).toBe(0);
    expect(r.stdout).toContain(`table.csv ${sha(csv)}`);
    expect(r.stdout).toContain(`photo.png ${sha(png)}`);
    roundTripId = r.stderr.match(ID)![1]!;
    // Stored: the CSV as gzip (magic bytes, far smaller), the PNG byte for byte.
    const storedCsv = await objectBytes(sha(csv));
    expect(storedCsv.subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
    expect(storedCsv.length).toBeLessThan(csv.length / 3);
    expect(await objectSize(sha(png))).toBe(png.length);
    // Outputs: recorded with their encodings, downloaded decoded and verified.
    const { artifacts } = await client.artifacts(roundTripId);
    const outputs = Object.fromEntries(artifacts.filter((a) => a.kind === 'output').map((a) => [a.path, a.encoding]));
    expect(outputs).toEqual({ 'out.csv': 'gzip', 'out.png': 'identity' });
    expect(await readFile(join(ws.cwd, 'rt', 'out.csv'))).toEqual(csv);
    expect(await readFile(join(ws.cwd, 'rt', 'out.png'))).toEqual(png);
    // This stack keeps artifacts 2 days: the download warns.
    expect(r.stderr).toMatch(/Warning: out\.csv, out\.png: Expires in 2 days \(\d{4}-\d{2}-\d{2}\); the stored copies are deleted then\./);
  }, 90_000);

  it('a file over MAX_FILE_BYTES is refused with the limit named, before any upload', async () => {
    await zeros(join(ws.cwd, 'huge.bin'), MAX_FILE_BYTES + MiB);
    const before = (await client.list({ limit: 200 })).executions.length;
    const args = ['run', 'sha.py', 'huge.bin'];
    const r = await runCli(args, ws);
    expect(r.code, show(args, r)).toBe(2);
    expect(r.stderr).toContain(`input huge.bin has ${MAX_FILE_BYTES + MiB} bytes; the limit is ${MAX_FILE_BYTES}`);
    expect(r.stderr).toContain('MAX_FILE_BYTES');
    expect(r.stderr).not.toMatch(/Uploading/);
    expect((await client.list({ limit: 200 })).executions.length).toBe(before);
  }, 60_000);

  // Last: the sweep moves the clock past every artifact of this stack.
  it('warns before expiry; after the sweep each expired output gets one line and the API answers 404 "expired on"', async () => {
    const dl = await runCli(['download', roundTripId, '--output-dir', 'before'], ws);
    expect(dl.code, dl.stderr).toBe(0);
    expect(dl.stderr).toMatch(/Expires in 2 days/);
    const { artifacts } = await client.artifacts(roundTripId);
    const csvArt = artifacts.find((a) => a.path === 'out.csv')!;

    const admin = new Http({ baseUrl: stack.apiUrl, token: stack.adminSecret });
    const swept = await admin.request('POST', '/admin/v1/retention/sweep', { body: { now: Date.now() + 3 * 86400_000 }, schema: z.object({ artifactsExpired: z.number() }) });
    expect(swept.artifactsExpired).toBeGreaterThanOrEqual(2);

    const day = csvArt.expiresAt.slice(0, 10);
    const after = await runCli(['download', roundTripId, '--output-dir', 'after'], ws);
    expect(after.code, after.stderr).toBe(1);
    expect(after.stderr).toContain(`Warning: out.csv expired on ${day} and was not downloaded`);
    expect(after.stderr).toContain(`Warning: out.png expired on ${day} and was not downloaded`);
    expect(after.stderr).toContain(`Error: Every output of ${roundTripId} has expired`);
    const gone = await client.artifact(roundTripId, csvArt.id).catch((e: unknown) => e);
    expect(gone).toBeInstanceOf(ApiError);
    expect((gone as ApiError).status).toBe(404);
    expect((gone as ApiError).message).toBe(`out.csv expired on ${day}`);
  }, 60_000);
});
