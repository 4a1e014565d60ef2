// Uploads and downloads through presigned URLs made by the control plane's own signer, against
// the signature-verifying S3 store on loopback. Nothing is mocked.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ObjectStore } from '../../control-plane/src/storage/s3.js';
import type { Artifact } from '../../shared/api/executions.js';
import { startS3Store, type S3Store } from '../dev/s3-store.js';
import { downloadAll, downloadArtifact } from './download.js';
import { encodingFor } from './encoding.js';
import { uploadBlobs, type LocalBlob } from './upload.js';
import { CliError } from '../errors.js';

const creds = { bucket: 'rgrid-test', region: 'us-east-1', accessKeyId: 'test-key', secretAccessKey: 'test-secret-0123456789' };
let dir: string;
let s3: S3Store;
let store: ObjectStore;

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const noRetryNotes = { onRetry: () => {} };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rgrid-transfer-'));
  s3 = await startS3Store({ dataDir: join(dir, 's3'), ...creds });
  store = new ObjectStore({ endpoint: s3.endpoint, ...creds });
});

afterAll(async () => {
  await s3.close();
  await rm(dir, { recursive: true, force: true });
});

async function localBlob(name: string, bytes: Buffer): Promise<LocalBlob> {
  const path = join(dir, name);
  await writeFile(path, bytes);
  return { sha256: sha(bytes), size: bytes.length, path, label: name, encoding: encodingFor(name, bytes.length) };
}

async function storedBytes(sha256: string): Promise<Buffer> {
  const get = await store.presign('GET', `blobs/acct/${sha256}`, { expiresSeconds: 60 });
  const res = await fetch(get.url);
  expect(res.status).toBe(200);
  return Buffer.from(await res.arrayBuffer());
}

async function putUrl(sha256: string) {
  return { sha256, ...(await store.presign('PUT', `blobs/acct/${sha256}`, { expiresSeconds: 300 })) };
}

async function artifact(path: string, bytes: Buffer, opts: { encoding?: 'identity' | 'gzip'; recordedSha?: string; key?: string } = {}): Promise<Artifact> {
  const key = opts.key ?? `outputs/${randomBytes(6).toString('hex')}`;
  const stored = opts.encoding === 'gzip' ? gzipSync(bytes) : bytes;
  const put = await store.presign('PUT', key, { expiresSeconds: 300 });
  const res = await fetch(put.url, { method: 'PUT', body: new Uint8Array(stored) });
  expect(res.status).toBe(200);
  const get = await store.presign('GET', key, { expiresSeconds: 300 });
  return {
    id: 'art_1',
    kind: 'output',
    path,
    size: bytes.length,
    sha256: opts.recordedSha ?? sha(bytes),
    contentType: 'application/octet-stream',
    encoding: opts.encoding ?? 'identity',
    expiresAt: new Date(Date.now() + 3600_000).toISOString(),
    expired: false,
    download: { url: get.url, headers: {}, expiresAt: get.expiresAt },
  };
}

describe('upload', () => {
  it('streams only the requested blobs, with their exact bytes', async () => {
    const a = await localBlob('a.bin', randomBytes(3 * 1024 * 1024 + 5));
    const b = await localBlob('b.txt', Buffer.from('hello\n'));
    const empty = await localBlob('empty', Buffer.alloc(0));
    const blobs = new Map([a, b, empty].map((x) => [x.sha256, x]));
    // The server already has b: it asks for a and the empty file only.
    const result = await uploadBlobs([await putUrl(a.sha256), await putUrl(empty.sha256)], blobs, noRetryNotes);
    expect(result).toEqual({ files: 2, bytes: a.size });
    expect(await store.head(`blobs/acct/${a.sha256}`)).toEqual({ size: a.size });
    expect(await store.head(`blobs/acct/${empty.sha256}`)).toEqual({ size: 0 });
    expect(await store.head(`blobs/acct/${b.sha256}`)).toBeNull();
    const get = await store.presign('GET', `blobs/acct/${a.sha256}`, { expiresSeconds: 60 });
    expect(sha(Buffer.from(await (await fetch(get.url)).arrayBuffer()))).toBe(a.sha256);
  });

  it('abandons a file that changed after hashing: nothing is stored under the old hash', async () => {
    const blob = await localBlob('changing.txt', Buffer.from('version one, 25 bytes...'));
    await writeFile(blob.path, 'version two, 25 bytes!!!'); // same size, other content
    const err = await uploadBlobs([await putUrl(blob.sha256)], new Map([[blob.sha256, blob]]), noRetryNotes).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CliError);
    expect((err as CliError).message).toMatch(/changed while it was being uploaded/);
    expect(await store.head(`blobs/acct/${blob.sha256}`)).toBeNull();
  });

  it('stores text gzip-compressed and binary untouched; sha256 and size stay those of the original', async () => {
    const csv = await localBlob('table.csv', Buffer.from('id,name,value\n' + Array.from({ length: 5000 }, (_, i) => `${i},row ${i},${i * 3}\n`).join('')));
    const png = await localBlob('image.png', randomBytes(200_000));
    const tiny = await localBlob('tiny.csv', Buffer.from('a,b\n1,2\n'));
    expect([csv.encoding, png.encoding, tiny.encoding]).toEqual(['gzip', 'identity', 'identity']);
    const blobs = new Map([csv, png, tiny].map((x) => [x.sha256, x]));
    await uploadBlobs([await putUrl(csv.sha256), await putUrl(png.sha256), await putUrl(tiny.sha256)], blobs, noRetryNotes);
    const storedCsv = await storedBytes(csv.sha256);
    expect(storedCsv.subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b])); // gzip magic
    expect(storedCsv.length).toBeLessThan(csv.size / 2);
    expect(sha(gunzipSync(storedCsv))).toBe(csv.sha256);
    expect(sha(await storedBytes(png.sha256))).toBe(png.sha256);
    expect(sha(await storedBytes(tiny.sha256))).toBe(tiny.sha256);
  });

  it('a text file that changed after hashing is caught while it is compressed', async () => {
    const blob = await localBlob('moving.csv', Buffer.from('x,y\n'.repeat(1000)));
    await writeFile(blob.path, 'x,z\n'.repeat(1000));
    const err = await uploadBlobs([await putUrl(blob.sha256)], new Map([[blob.sha256, blob]]), noRetryNotes).catch((e: unknown) => e);
    expect((err as CliError).message).toMatch(/changed while it was being uploaded/);
    expect(await store.head(`blobs/acct/${blob.sha256}`)).toBeNull();
  });

  it('sends a stored size over 100 MB through multipart when the caller gives the multipart calls', async () => {
    // Sparse: 101 MiB of zeros costs no disk.
    const path = join(dir, 'zeros.bin');
    await writeFile(path, '');
    await (await import('node:fs/promises')).truncate(path, 101 * 1024 * 1024);
    const blob: LocalBlob = { sha256: sha(Buffer.alloc(101 * 1024 * 1024)), size: 101 * 1024 * 1024, path, label: 'zeros.bin', encoding: 'identity' };
    const calls: string[] = [];
    const notes: string[] = [];
    const key = `blobs/acct/${blob.sha256}`;
    const multipart = {
      async createMultipart(body: { partSize?: number; storedSize: number }) {
        calls.push('create');
        const uploadId = await store.createMultipart(key);
        const parts = await Promise.all(Array.from({ length: Math.ceil(body.storedSize / body.partSize!) }, async (_, i) => ({ partNumber: i + 1, ...(await store.presignPart(key, uploadId, i + 1, 300)) })));
        return { uploadId, partSize: body.partSize!, parts };
      },
      async completeMultipart(body: { uploadId: string; parts: { partNumber: number; etag: string }[] }) {
        calls.push('complete');
        expect(await store.completeMultipart(key, body.uploadId, body.parts)).toEqual({ ok: true });
        return { ok: true };
      },
      async abortMultipart() {
        calls.push('abort');
        return { ok: true };
      },
    };
    await uploadBlobs([await putUrl(blob.sha256)], new Map([[blob.sha256, blob]]), { ...noRetryNotes, multipart, onNote: (m) => notes.push(m) });
    expect(calls).toEqual(['create', 'complete']);
    expect(notes).toEqual(['Uploading zeros.bin in 7 parts of 16 MB']);
    expect(await store.head(key)).toEqual({ size: blob.size });
  });

  it('reports a refused presigned URL (tampered signature) without retrying', async () => {
    const blob = await localBlob('c.txt', Buffer.from('c'));
    const up = await putUrl(blob.sha256);
    up.url = up.url.replace(/X-Amz-Signature=[0-9a-f]{4}/, 'X-Amz-Signature=0000');
    const notes: string[] = [];
    await expect(uploadBlobs([up], new Map([[blob.sha256, blob]]), { onRetry: (m) => notes.push(m) })).rejects.toThrow(/answered 403 SignatureDoesNotMatch/);
    expect(notes).toEqual([]);
  });
});

describe('download', () => {
  it('verifies sha256, preserves subdirectories and never overwrites', async () => {
    const out = join(dir, 'out1');
    const csv = Buffer.from('a,b\n1,2\n');
    const arts = [await artifact('output.csv', csv), await artifact('report/deep/summary.txt', Buffer.from('sum'))];
    const first = await downloadAll(arts, out, noRetryNotes);
    expect(first.map((d) => [d.localPath, d.renamed])).toEqual([
      [join(out, 'output.csv'), false],
      [join(out, 'report', 'deep', 'summary.txt'), false],
    ]);
    await writeFile(join(out, 'report', 'deep', 'summary.txt'), 'local edits');
    const second = await downloadAll(arts, out, noRetryNotes);
    expect(second.map((d) => [d.localPath, d.renamed])).toEqual([
      [join(out, 'output (1).csv'), true],
      [join(out, 'report', 'deep', 'summary (1).txt'), true],
    ]);
    expect(await readFile(join(out, 'report', 'deep', 'summary.txt'), 'utf8')).toBe('local edits');
    expect(await readFile(join(out, 'output (1).csv'))).toEqual(csv);
    // No temp files left behind.
    expect((await readdir(out)).sort()).toEqual(['output (1).csv', 'output.csv', 'report']);
  });

  it('refuses content that does not match its record and leaves no file', async () => {
    const out = join(dir, 'out2');
    const a = await artifact('bad.csv', Buffer.from('real content'), { recordedSha: sha(Buffer.from('other content')) });
    const notes: string[] = [];
    await expect(downloadArtifact(a, out, { onRetry: (m) => notes.push(m), random: () => 0 })).rejects.toThrow(/does not match its record/);
    expect(notes.length).toBeGreaterThan(0); // a corrupt transfer is retried before giving up
    expect(await readdir(out)).toEqual([]);
  });

  it('decompresses gzip-encoded outputs and checks the hash of the content', async () => {
    const out = join(dir, 'out3');
    const text = Buffer.from('line\n'.repeat(1000));
    const d = await downloadArtifact(await artifact('log.txt', text, { encoding: 'gzip' }), out, noRetryNotes);
    expect(await readFile(d.localPath)).toEqual(text);
  });

  it('stops decompressing at the declared size (gzip bomb) and leaves no file', async () => {
    const out = join(dir, 'out5');
    const bomb = Buffer.alloc(20 * 1024 * 1024); // 20 MB of zeros: ~20 KB gzipped
    const a = await artifact('small.txt', bomb, { encoding: 'gzip' });
    const lying = { ...a, size: 1000, sha256: sha(bomb.subarray(0, 1000)) };
    const notes: string[] = [];
    await expect(downloadArtifact(lying, out, { onRetry: (m) => notes.push(m) })).rejects.toThrow(/more than the recorded 1000 bytes; stopped/);
    expect(notes).toEqual([]); // not retried: the stored object itself is wrong
    expect(await readdir(out)).toEqual([]);
  });

  it('an artifact gone from the store is reported as expired and skipped; the others download', async () => {
    const out = join(dir, 'out6');
    const kept = await artifact('kept.csv', Buffer.from('k\n'));
    const gone = await artifact('gone.csv', Buffer.from('g\n'));
    await store.delete(new URL(gone.download!.url).pathname.replace(/^\/rgrid-test\//, ''));
    const expired: string[] = [];
    const done = await downloadAll([kept, gone], out, {
      ...noRetryNotes,
      explainGone: async (a) => `${a.path} expired on 2025-01-02`,
      onExpired: (a, message) => expired.push(message),
    });
    expect(done.map((d) => d.remotePath)).toEqual(['kept.csv']);
    expect(expired).toEqual(['gone.csv expired on 2025-01-02']);
    expect(await readdir(out)).toEqual(['kept.csv']);
    // Without an explanation (it should be there), the 404 is an error.
    await expect(downloadAll([gone], join(dir, 'out7'), { ...noRetryNotes, explainGone: async () => undefined, onExpired: () => {} })).rejects.toThrow(/no longer has it \(404\)/);
  });

  it('puts a file in a renamed directory when a file holds the directory name', async () => {
    const out = join(dir, 'out4');
    await mkdir(out);
    await writeFile(join(out, 'report'), 'I am a file');
    const d = await downloadArtifact(await artifact('report/x.txt', Buffer.from('x')), out, noRetryNotes);
    expect(d.localPath).toBe(join(out, 'report (1)', 'x.txt'));
  });
});
