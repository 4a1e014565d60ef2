// The multipart uploader against the real S3 store (signature-verifying, on loopback), with a small
// proxy in front of it that can fail chosen part PUTs. The control-plane side is played by the
// control plane's own ObjectStore calls, the same ones control-plane/src/uploads/multipart.ts
// makes (that route is exercised end to end in test/e2e/files.test.ts).
import { createHash } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, open, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ObjectStore } from '../../control-plane/src/storage/s3.js';
import type { CreateMultipartResponse } from '../../shared/api/common.js';
import { startS3Store, type S3Store } from '../dev/s3-store.js';
import { abortActiveMultipart, uploadMultipart, type MultipartApi, type StoredFile } from './multipart.js';

const MiB = 1024 * 1024;
const creds = { bucket: 'rgrid-mp', region: 'us-east-1', accessKeyId: 'mp-key', secretAccessKey: 'mp-secret-0123456789' };

let dir: string;
let s3: S3Store;
let proxy: Server;
let store: ObjectStore;

/** What the proxy does to part PUTs: by part number, a list of actions for successive tries. */
type Action = 'ok' | 'fail500' | 'fail403' | 'reset' | 'slow';
let plan = new Map<number, Action[]>();
let partPuts: number[] = [];

function forward(req: IncomingMessage, res: ServerResponse): void {
  const up = httpRequest({ host: '127.0.0.1', port: s3.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
    res.writeHead(r.statusCode ?? 502, r.headers);
    r.pipe(res);
  });
  up.on('error', () => res.destroy());
  req.pipe(up);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rgrid-multipart-'));
  s3 = await startS3Store({ dataDir: join(dir, 's3'), ...creds });
  proxy = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const part = Number(url.searchParams.get('partNumber'));
    if (req.method !== 'PUT' || !part) return forward(req, res);
    partPuts.push(part);
    const action = plan.get(part)?.shift() ?? 'ok';
    switch (action) {
      case 'fail500':
        req.resume();
        res.writeHead(500, { 'content-type': 'application/xml' }).end('<Error><Code>InternalError</Code><Message>injected</Message></Error>');
        return;
      case 'fail403':
        req.resume();
        res.writeHead(403, { 'content-type': 'application/xml' }).end('<Error><Code>AccessDenied</Code><Message>injected</Message></Error>');
        return;
      case 'reset':
        // Take some of the body, then cut the connection: a transfer that dies half way.
        req.once('data', () => req.socket.destroy());
        return;
      case 'slow':
        setTimeout(() => forward(req, res), 1500);
        return;
      default:
        forward(req, res);
    }
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  // URLs are signed for the proxy's host; the proxy passes the Host header through unchanged.
  store = new ObjectStore({ endpoint: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`, ...creds });
});

afterAll(async () => {
  await new Promise<void>((r) => proxy.close(() => r()));
  await s3.close();
  await rm(dir, { recursive: true, force: true });
});

beforeEach(() => {
  plan = new Map();
  partPuts = [];
});

/** The control plane's part of the protocol, with the same ObjectStore calls; `recorded` is its blobs table. */
function controlPlane() {
  const recorded = new Set<string>();
  const calls: string[] = [];
  const key = (sha: string) => `blobs/acct/${sha}`;
  const api: MultipartApi = {
    async createMultipart(body): Promise<CreateMultipartResponse> {
      calls.push('create');
      if (recorded.has(body.sha256)) return { uploadId: null, partSize: body.partSize!, parts: [] };
      const uploadId = await store.createMultipart(key(body.sha256));
      const count = Math.ceil(body.storedSize / body.partSize!);
      const parts = await Promise.all(Array.from({ length: count }, async (_, i) => ({ partNumber: i + 1, ...(await store.presignPart(key(body.sha256), uploadId, i + 1, 300)) })));
      return { uploadId, partSize: body.partSize!, parts: parts.map((p) => ({ partNumber: p.partNumber, url: p.url, expiresAt: p.expiresAt })) };
    },
    async completeMultipart(body) {
      calls.push('complete');
      const done = await store.completeMultipart(key(body.sha256), body.uploadId, body.parts);
      if (!done.ok) {
        await store.abortMultipart(key(body.sha256), body.uploadId);
        throw new Error(`refused: ${done.reason}`);
      }
      recorded.add(body.sha256);
      return { ok: true };
    },
    async abortMultipart(body) {
      calls.push('abort');
      await store.abortMultipart(key(body.sha256), body.uploadId);
      return { ok: true };
    },
  };
  return { api, recorded, calls, key };
}

/** A file of `mib` MiB with varied content, written a MiB at a time. */
async function bigFile(name: string, mib: number): Promise<StoredFile> {
  const path = join(dir, name);
  const hash = createHash('sha256');
  const f = await open(path, 'w');
  const seed = [...name].reduce((n, c) => n * 31 + c.charCodeAt(0), 0);
  for (let i = 0; i < mib; i++) {
    const block = Buffer.alloc(MiB, (i * 7 + seed) % 251);
    block.writeUInt32LE(seed >>> 0, 4);
    block.writeUInt32LE(i, 0);
    hash.update(block);
    await f.write(block);
  }
  await f.close();
  const size = mib * MiB;
  return { sha256: hash.digest('hex'), size, encoding: 'identity', path, storedSize: size, label: name };
}

async function storedSha(key: string): Promise<string> {
  const get = await store.presign('GET', key, { expiresSeconds: 60 });
  const res = await fetch(get.url);
  expect(res.status).toBe(200);
  const hash = createHash('sha256');
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) hash.update(chunk);
  return hash.digest('hex');
}

const pendingUploads = async () => readdir(join(dir, 's3', creds.bucket, 'uploads')).catch(() => []);
const quick = { random: () => 0 };

describe('multipart upload', () => {
  it('uploads parts in parallel and completes; a second upload of the same blob sends nothing', async () => {
    const file = await bigFile('plain.bin', 33);
    const cp = controlPlane();
    let counted = 0;
    const started: number[] = [];
    expect(await uploadMultipart(cp.api, file, { ...quick, count: (n) => (counted += n), onStart: (parts) => started.push(parts) })).toBe('uploaded');
    expect(started).toEqual([3]); // 16 + 16 + 1 MiB
    expect(counted).toBe(file.size);
    expect(await storedSha(cp.key(file.sha256))).toBe(file.sha256);
    expect(cp.recorded.has(file.sha256)).toBe(true);
    expect(await uploadMultipart(cp.api, file, quick)).toBe('stored');
    expect(cp.calls).toEqual(['create', 'complete', 'create']);
  });

  it('retries a part whose first PUT fails (500) and one whose connection is cut, then completes', async () => {
    const file = await bigFile('retry.bin', 33);
    const cp = controlPlane();
    plan.set(2, ['fail500']);
    plan.set(3, ['reset']);
    const notes: string[] = [];
    let counted = 0;
    await uploadMultipart(cp.api, file, { onRetry: (m) => notes.push(m), random: () => 0, count: (n) => (counted += n) });
    expect(partPuts.filter((p) => p === 2)).toHaveLength(2);
    expect(partPuts.filter((p) => p === 3)).toHaveLength(2);
    expect(partPuts.filter((p) => p === 1)).toHaveLength(1);
    expect(notes).toHaveLength(2);
    expect(notes.join('\n')).toMatch(/answered 500 InternalError/);
    // Bytes of the failed tries were taken back: progress ends at exactly the file size.
    expect(counted).toBe(file.size);
    expect(await storedSha(cp.key(file.sha256))).toBe(file.sha256);
    expect(cp.calls).toEqual(['create', 'complete']);
  });

  it('a part that keeps failing aborts the upload: nothing recorded, no object, no pending upload', async () => {
    const file = await bigFile('fails.bin', 33);
    const cp = controlPlane();
    plan.set(2, ['fail403']); // not retryable: the URL is refused
    await expect(uploadMultipart(cp.api, file, quick)).rejects.toThrow(/part 2 of fails\.bin failed: the object store answered 403 AccessDenied/);
    expect(cp.calls).toEqual(['create', 'abort']);
    expect(cp.recorded.size).toBe(0);
    expect(await store.head(cp.key(file.sha256))).toBeNull();
    expect(await pendingUploads()).toEqual([]);
  });

  it('a file that changed while its parts were sent is not completed (verify fails → abort)', async () => {
    const file = await bigFile('verify.bin', 24);
    const cp = controlPlane();
    await expect(uploadMultipart(cp.api, file, { ...quick, verify: async () => Promise.reject(new Error('changed while it was being uploaded')) })).rejects.toThrow(/changed/);
    expect(cp.calls).toEqual(['create', 'abort']);
    expect(await store.head(cp.key(file.sha256))).toBeNull();
    expect(await pendingUploads()).toEqual([]);
  });

  it('Ctrl+C: abortActiveMultipart aborts an upload in flight, and its late parts are refused', async () => {
    const file = await bigFile('interrupted.bin', 33);
    const cp = controlPlane();
    for (const n of [1, 2, 3]) plan.set(n, ['slow']);
    const upload = uploadMultipart(cp.api, file, quick).then(
      () => 'done',
      (e: Error) => e.message,
    );
    await new Promise((r) => setTimeout(r, 500));
    await abortActiveMultipart();
    expect(await upload).toMatch(/answered 404 NoSuchUpload/);
    expect(cp.calls.filter((c) => c === 'complete')).toEqual([]);
    expect(cp.recorded.size).toBe(0);
    expect(await store.head(cp.key(file.sha256))).toBeNull();
    expect(await pendingUploads()).toEqual([]);
  });
});
