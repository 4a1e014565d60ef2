import { createServer, type Server } from 'node:http';
import { mkdtemp, mkdir, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LIMITS } from '../../shared/limits.js';
import { contentTypeFor, downloadVerified, isTransientTransferError, scanTree, TransferError } from './files.js';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

let dir: string;
let server: Server;
let base: string;
const bodies = new Map<string, Buffer>();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rgrid-files-'));
  server = createServer((req, res) => {
    if (req.url === '/busy') return res.writeHead(503).end('slow down');
    if (req.url === '/expired') return res.writeHead(403, { 'content-type': 'application/xml' }).end('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Request has expired</Message><Expires>x</Expires></Error>');
    const body = bodies.get(req.url ?? '');
    if (!body) return res.writeHead(404).end('missing');
    res.writeHead(200, { 'content-length': body.length }).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(async () => {
  server.close();
  await rm(dir, { recursive: true, force: true });
});

const req = (path: string) => ({ method: 'GET' as const, url: base + path, headers: {}, expiresAt: new Date().toISOString() });

describe('downloadVerified', () => {
  it('writes the file only when its sha256 matches', async () => {
    bodies.set('/ok', Buffer.from('hello'));
    const dest = join(dir, 'sub', 'ok.txt');
    await downloadVerified({ download: req('/ok'), sha256: sha('hello'), size: 5, encoding: 'identity', dest, label: 'ok' });
    expect(await readFile(dest, 'utf8')).toBe('hello');

    const bad = join(dir, 'bad.txt');
    await expect(downloadVerified({ download: req('/ok'), sha256: sha('other'), size: 5, encoding: 'identity', dest: bad, label: 'bad' })).rejects.toThrow(/checksum/);
    expect((await readdir(dir)).filter((f) => f.startsWith('bad'))).toEqual([]);
  });

  it('decompresses gzip transparently and stops at the declared size (no gzip bombs)', async () => {
    const text = 'a,b\n'.repeat(1000);
    bodies.set('/gz', gzipSync(text));
    const dest = join(dir, 'data.csv');
    await downloadVerified({ download: req('/gz'), sha256: sha(text), size: text.length, encoding: 'gzip', dest, label: 'gz' });
    expect(await readFile(dest, 'utf8')).toBe(text);

    bodies.set('/bomb', gzipSync(Buffer.alloc(50 * 1024 * 1024)));
    await expect(downloadVerified({ download: req('/bomb'), sha256: sha('x'), size: 1024, encoding: 'gzip', dest: join(dir, 'bomb'), label: 'bomb' })).rejects.toBeInstanceOf(TransferError);
  });

  it('reports an HTTP error with its status', async () => {
    await expect(downloadVerified({ download: req('/nope'), sha256: sha(''), size: 0, encoding: 'identity', dest: join(dir, 'nope'), label: 'input nope' })).rejects.toThrow(/input nope answered 404/);
  });

  it('tells failures worth retrying (store unreachable, 5xx) from final ones (4xx, checksum, local files)', async () => {
    const fail = (path: string, dest = join(dir, 'x'), digest = sha('')) =>
      downloadVerified({ download: req(path), sha256: digest, size: 5, encoding: 'identity', dest, label: 'input x' }).catch((e: unknown) => e);
    const busy = await fail('/busy');
    expect(busy).toMatchObject({ status: 503 });
    expect(isTransientTransferError(busy)).toBe(true);
    // An S3 error document is summarized, not pasted.
    const expired = await fail('/expired');
    expect((expired as Error).message).toBe('download of input x answered 403: AccessDenied: Request has expired');
    expect(isTransientTransferError(expired)).toBe(false);
    bodies.set('/ok5', Buffer.from('hello'));
    expect(isTransientTransferError(await fail('/ok5'))).toBe(false); // checksum mismatch
    await writeFile(join(dir, 'plain'), 'a file');
    const local = await fail('/ok5', join(dir, 'plain', 'under-a-file'), sha('hello'));
    expect((local as NodeJS.ErrnoException).code).toMatch(/ENOTDIR|EEXIST/);
    expect(isTransientTransferError(local)).toBe(false);
    // Nothing listens on a port we just closed: connection refused.
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as { port: number }).port;
    await new Promise((r) => closed.close(r));
    const refused = await downloadVerified({ download: { ...req('/'), url: `http://127.0.0.1:${port}/x` }, sha256: sha(''), size: 0, encoding: 'identity', dest: join(dir, 'y'), label: 'y' }).catch((e: unknown) => e);
    expect(isTransientTransferError(refused)).toBe(true);
  });
});

describe('scanTree', () => {
  it('lists regular files with hashes, keeps subdirectories, and never follows symlinks', async () => {
    const root = join(dir, 'work');
    await mkdir(join(root, 'a', 'b'), { recursive: true });
    await writeFile(join(root, 'top.txt'), 'top');
    await writeFile(join(root, 'a', 'b', 'deep.bin'), Buffer.from([0, 1, 2, 255]));
    await writeFile(join(root, 'empty'), '');
    await symlink('/etc/passwd', join(root, 'leak'));
    await symlink('/etc', join(root, 'leakdir'));
    const { files, skipped } = await scanTree(root);
    expect(files.map((f) => f.path)).toEqual(expect.arrayContaining(['a/b/deep.bin', 'empty', 'top.txt']));
    expect(files.find((f) => f.path === 'top.txt')).toMatchObject({ size: 3, sha256: sha('top') });
    expect(files.some((f) => f.path.startsWith('leak'))).toBe(false);
    expect(skipped.map((s) => s.path)).toEqual(expect.arrayContaining(['leak', 'leakdir']));
  });

  it('reports a file name that is not valid UTF-8 instead of mangling it', async () => {
    const root = join(dir, 'raw');
    await mkdir(root);
    const { writeFileSync } = await import('node:fs');
    writeFileSync(Buffer.concat([Buffer.from(root + '/'), Buffer.from([0x62, 0xff, 0x2e, 0x74])]), 'x');
    const { files, skipped } = await scanTree(root);
    expect(files).toEqual([]);
    expect(skipped[0]!.reason).toMatch(/UTF-8/);
  });
});

describe('scanTree: paths the API cannot take', () => {
  it('reports a file whose path is longer than the API accepts and keeps the others', async () => {
    const root = join(dir, 'long');
    const deep = Array.from({ length: 6 }, () => 'd'.repeat(200)).join('/');
    await mkdir(join(root, deep), { recursive: true });
    await writeFile(join(root, deep, 'deep.txt'), 'x');
    // Exactly at the limit: kept.
    const atLimit = `${Array.from({ length: 4 }, () => 'e'.repeat(200)).join('/')}/${'f'.repeat(LIMITS.maxPathBytes - 804)}`;
    expect(atLimit.length).toBe(LIMITS.maxPathBytes);
    await mkdir(join(root, atLimit, '..'), { recursive: true });
    await writeFile(join(root, atLimit), 'at the limit');
    await writeFile(join(root, 'ok.txt'), 'ok');
    const { files, skipped } = await scanTree(root);
    expect(files.map((f) => f.path)).toEqual([atLimit, 'ok.txt']);
    expect(skipped).toEqual([{ path: `${deep}/deep.txt`, reason: `path longer than ${LIMITS.maxPathBytes} characters` }]);
  });
});

describe('contentTypeFor', () => {
  it('maps common extensions', () => {
    expect(contentTypeFor('out/report.CSV')).toBe('text/csv');
    expect(contentTypeFor('image.png')).toBe('image/png');
    expect(contentTypeFor('noext')).toBe('application/octet-stream');
  });
});
