// The dev S3 store over real HTTP on loopback, signed the way RGrid signs: aws4fetch presigned
// URLs (control plane → CLI/runner, used with plain fetch) and aws4fetch header signing (control
// plane → store). Nothing is mocked. The botocore cross-check is in ./s3/botocore.test.ts.
import { AwsClient } from 'aws4fetch';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startS3Store, type S3Store } from './s3-store.js';

const ACCESS_KEY = 'rgrid-dev';
const SECRET = 'rgrid-dev-secret-key';
const BUCKET = 'rgrid-artifacts';

let dataDir: string;
let store: S3Store;
let clockOffsetMs = 0; // moves the store's clock, not the signer's
// retries: 0 because aws4fetch retries every 5xx with backoff, and 501 NotImplemented is a 5xx.
const client = new AwsClient({ accessKeyId: ACCESS_KEY, secretAccessKey: SECRET, service: 's3', region: 'us-east-1', retries: 0 });

const objectUrl = (key: string) => `${store.endpoint}/${BUCKET}/${key.split('/').map(encodeURIComponent).join('/')}`;

/** A presigned URL as the control plane makes it: path style, X-Amz-Expires set explicitly. */
async function presign(method: string, key: string, opts: { expires?: number; query?: string; signer?: AwsClient } = {}): Promise<string> {
  const url = `${objectUrl(key)}?${opts.query ? `${opts.query}&` : ''}X-Amz-Expires=${opts.expires ?? 900}`;
  return (await (opts.signer ?? client).sign(url, { method, aws: { signQuery: true } })).url;
}

async function errorCode(res: Response): Promise<string> {
  return /<Code>([^<]*)<\/Code>/.exec(await res.text())?.[1] ?? `(no code, status ${res.status})`;
}

async function putPresigned(key: string, body: string | Uint8Array<ArrayBuffer>, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(await presign('PUT', key), { method: 'PUT', body, headers });
}

/** Random bytes typed as fetch accepts them (ArrayBuffer-backed). */
const random = (n: number) => new Uint8Array(randomBytes(n));
const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');
const tmpFiles = () => readdir(join(dataDir, BUCKET, 'tmp'));

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'rgrid-s3-store-'));
  store = await startS3Store({
    dataDir,
    bucket: BUCKET,
    accessKeyId: ACCESS_KEY,
    secretAccessKey: SECRET,
    now: () => Date.now() + clockOffsetMs,
  });
});

afterAll(async () => {
  await store?.close();
  await rm(dataDir, { recursive: true, force: true });
});

describe('presigned URLs (aws4fetch signQuery + plain fetch)', () => {
  it('PUT, GET and HEAD round-trip content, Content-Type and Content-Encoding', async () => {
    const key = 'jobs/j1/in put/data+1.json'; // space and plus must survive encoding
    const body = JSON.stringify({ hello: 'world' });
    const put = await putPresigned(key, body, { 'content-type': 'application/json', 'content-encoding': 'identity' });
    expect(put.status).toBe(200);
    const md5 = createHash('md5').update(body).digest('hex');
    expect(put.headers.get('etag')).toBe(`"${md5}"`);

    const get = await fetch(await presign('GET', key));
    expect(get.status).toBe(200);
    expect(await get.text()).toBe(body);
    expect(get.headers.get('content-type')).toBe('application/json');
    expect(get.headers.get('content-encoding')).toBe('identity');
    expect(get.headers.get('etag')).toBe(`"${md5}"`);

    const head = await fetch(await presign('HEAD', key), { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(body.length));
    expect(head.headers.get('content-type')).toBe('application/json');
    expect(head.headers.get('content-encoding')).toBe('identity');
  });

  it('GET honours Range', async () => {
    const key = 'range/digits.txt';
    expect((await putPresigned(key, '0123456789')).status).toBe(200);
    const url = await presign('GET', key);
    const part = await fetch(url, { headers: { range: 'bytes=2-5' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe('bytes 2-5/10');
    expect(await part.text()).toBe('2345');
    const suffix = await fetch(url, { headers: { range: 'bytes=-3' } });
    expect([suffix.status, await suffix.text()]).toEqual([206, '789']);
    const open = await fetch(url, { headers: { range: 'bytes=7-' } });
    expect([open.status, await open.text()]).toEqual([206, '789']);
    const beyond = await fetch(url, { headers: { range: 'bytes=10-' } });
    expect(beyond.status).toBe(416);
    expect(await errorCode(beyond)).toBe('InvalidRange');
  });

  it('refuses a tampered signature, another key, another method and an expired URL', async () => {
    const key = 'guarded/file.txt';
    expect((await putPresigned(key, 'secret')).status).toBe(200);
    const url = new URL(await presign('GET', key, { expires: 60 }));

    const tampered = new URL(url);
    const sig = tampered.searchParams.get('X-Amz-Signature') ?? '';
    tampered.searchParams.set('X-Amz-Signature', (sig[0] === 'a' ? 'b' : 'a') + sig.slice(1));
    let res = await fetch(tampered);
    expect([res.status, await errorCode(res)]).toEqual([403, 'SignatureDoesNotMatch']);

    const otherKey = new URL(url);
    otherKey.pathname = `/${BUCKET}/guarded/other.txt`;
    res = await fetch(otherKey);
    expect([res.status, await errorCode(res)]).toEqual([403, 'SignatureDoesNotMatch']);

    res = await fetch(url, { method: 'PUT', body: 'overwrite' }); // a GET URL used to write
    expect([res.status, await errorCode(res)]).toEqual([403, 'SignatureDoesNotMatch']);

    const longer = new URL(url);
    longer.searchParams.set('X-Amz-Expires', '604800'); // extending the lifetime breaks the signature
    res = await fetch(longer);
    expect([res.status, await errorCode(res)]).toEqual([403, 'SignatureDoesNotMatch']);

    clockOffsetMs = 61_000;
    try {
      res = await fetch(url);
      expect(res.status).toBe(403);
      const xml = await res.text();
      expect(xml).toContain('<Code>AccessDenied</Code>');
      expect(xml).toContain('<Message>Request has expired</Message>');
    } finally {
      clockOffsetMs = 0;
    }
    res = await fetch(url); // and the untouched URL still works
    expect([res.status, await res.text()]).toEqual([200, 'secret']);
  });

  it('refuses an unknown access key and unsigned requests', async () => {
    const before = store.stats();
    const stranger = new AwsClient({ accessKeyId: 'someone-else', secretAccessKey: SECRET, service: 's3', region: 'us-east-1' });
    let res = await fetch(await presign('GET', 'guarded/file.txt', { signer: stranger }));
    expect([res.status, await errorCode(res)]).toEqual([403, 'InvalidAccessKeyId']);

    res = await fetch(objectUrl('guarded/file.txt'));
    expect([res.status, await errorCode(res)]).toEqual([403, 'AccessDenied']);
    res = await fetch(objectUrl('unsigned.txt'), { method: 'PUT', body: 'x' });
    expect([res.status, await errorCode(res)]).toEqual([403, 'AccessDenied']);
    res = await fetch(`${store.endpoint}/${BUCKET}?list-type=2`);
    expect([res.status, await errorCode(res)]).toEqual([403, 'AccessDenied']);

    const wrongRegion = new AwsClient({ accessKeyId: ACCESS_KEY, secretAccessKey: SECRET, service: 's3', region: 'eu-west-1' });
    res = await fetch(await presign('GET', 'guarded/file.txt', { signer: wrongRegion }));
    expect([res.status, await errorCode(res)]).toEqual([400, 'AuthorizationQueryParametersError']);

    const after = store.stats();
    expect(after.rejected - before.rejected).toBe(5);
    expect(after.requests - before.requests).toBe(5);
  });
});

describe('header-signed requests (aws4fetch AwsClient.fetch)', () => {
  it('HEAD and DELETE', async () => {
    const key = 'to-delete/x.bin';
    expect((await putPresigned(key, 'bytes')).status).toBe(200);
    let res = await client.fetch(objectUrl(key), { method: 'HEAD' });
    expect([res.status, res.headers.get('content-length')]).toEqual([200, '5']);
    res = await client.fetch(objectUrl(key), { method: 'DELETE' });
    expect(res.status).toBe(204);
    res = await client.fetch(objectUrl(key), { method: 'HEAD' });
    expect(res.status).toBe(404);
    res = await client.fetch(objectUrl(key), { method: 'DELETE' }); // deleting nothing is fine
    expect(res.status).toBe(204);
  });

  it('checks a signed payload hash against the body', async () => {
    const body = 'exact bytes';
    let res = await client.fetch(objectUrl('hashed.txt'), { method: 'PUT', body, headers: { 'x-amz-content-sha256': sha256(body) } });
    expect(res.status).toBe(200);
    res = await client.fetch(objectUrl('hashed.txt'), { method: 'PUT', body: 'other bytes', headers: { 'x-amz-content-sha256': sha256(body) } });
    expect([res.status, await errorCode(res)]).toEqual([400, 'XAmzContentSHA256Mismatch']);
    res = await client.fetch(objectUrl('hashed.txt'));
    expect(await res.text()).toBe(body);
  });

  it('stores and returns the bucket lifecycle configuration', async () => {
    const bucketUrl = `${store.endpoint}/${BUCKET}?lifecycle`;
    let res = await client.fetch(bucketUrl);
    expect([res.status, await errorCode(res)]).toEqual([404, 'NoSuchLifecycleConfiguration']);
    const xml =
      '<LifecycleConfiguration><Rule><ID>expire-artifacts</ID><Filter><Prefix>artifacts/</Prefix></Filter>' +
      '<Status>Enabled</Status><Expiration><Days>7</Days></Expiration></Rule></LifecycleConfiguration>';
    res = await client.fetch(bucketUrl, { method: 'PUT', body: xml, headers: { 'content-type': 'application/xml' } });
    expect(res.status).toBe(200);
    res = await client.fetch(bucketUrl);
    expect([res.status, await res.text()]).toEqual([200, xml]);
  });

  it('lists with prefix, delimiter, max-keys and continuation', async () => {
    for (const k of ['list/a.txt', 'list/b.txt', 'list/c/1.txt', 'list/c/2.txt', 'list/d.txt']) {
      expect((await putPresigned(k, k)).status).toBe(200);
    }
    const page = async (query: string) => {
      const res = await client.fetch(`${store.endpoint}/${BUCKET}?list-type=2&${query}`);
      expect(res.status).toBe(200);
      const xml = await res.text();
      return {
        keys: [...xml.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1]),
        prefixes: [...xml.matchAll(/<CommonPrefixes><Prefix>([^<]*)<\/Prefix>/g)].map((m) => m[1]),
        next: /<NextContinuationToken>([^<]*)</.exec(xml)?.[1],
      };
    };
    expect((await page('prefix=list/')).keys).toEqual(['list/a.txt', 'list/b.txt', 'list/c/1.txt', 'list/c/2.txt', 'list/d.txt']);
    const first = await page('prefix=list/&max-keys=2');
    expect(first.keys).toEqual(['list/a.txt', 'list/b.txt']);
    const second = await page(`prefix=list/&max-keys=2&continuation-token=${first.next}`);
    expect(second.keys).toEqual(['list/c/1.txt', 'list/c/2.txt']);
    const third = await page(`prefix=list/&max-keys=2&continuation-token=${second.next}`);
    expect([third.keys, third.next]).toEqual([['list/d.txt'], undefined]);
    const grouped = await page('prefix=list/&delimiter=/');
    expect([grouped.keys, grouped.prefixes]).toEqual([['list/a.txt', 'list/b.txt', 'list/d.txt'], ['list/c/']]);
  });

  it('answers 501 for sub-resources it does not implement instead of overwriting the object', async () => {
    const res = await client.fetch(`${objectUrl('list/a.txt')}?tagging`, { method: 'PUT', body: '<Tagging/>' });
    expect([res.status, await errorCode(res)]).toEqual([501, 'NotImplemented']);
    expect(await (await fetch(await presign('GET', 'list/a.txt'))).text()).toBe('list/a.txt');
  });
});

describe('multipart uploads', () => {
  const MiB = 1024 * 1024;

  async function createUpload(key: string): Promise<string> {
    const res = await client.fetch(`${objectUrl(key)}?uploads`, { method: 'POST', headers: { 'content-type': 'application/x-tar' } });
    expect(res.status).toBe(200);
    return /<UploadId>([^<]+)<\/UploadId>/.exec(await res.text())?.[1] ?? '';
  }

  async function putPart(key: string, uploadId: string, n: number, body: Uint8Array<ArrayBuffer>): Promise<Response> {
    const url = await presign('PUT', key, { query: `partNumber=${n}&uploadId=${uploadId}` });
    return fetch(url, { method: 'PUT', body });
  }

  const completeXml = (parts: Array<[number, string]>) =>
    `<CompleteMultipartUpload>${parts.map(([n, etag]) => `<Part><PartNumber>${n}</PartNumber><ETag>${etag}</ETag></Part>`).join('')}</CompleteMultipartUpload>`;

  it('create → presigned part PUTs → complete gives the concatenated object', async () => {
    const key = 'big/archive.tar';
    const parts = [random(5 * MiB), random(5 * MiB), random(123_457)];
    const uploadId = await createUpload(key);
    const etags: string[] = [];
    for (const [i, body] of parts.entries()) {
      const res = await putPart(key, uploadId, i + 1, body);
      expect(res.status).toBe(200);
      etags.push(res.headers.get('etag') ?? '');
    }
    expect(etags[0]).toBe(`"${createHash('md5').update(parts[0]!).digest('hex')}"`);

    // A wrong ETag and parts out of order are refused; the upload stays usable.
    let res = await client.fetch(`${objectUrl(key)}?uploadId=${uploadId}`, { method: 'POST', body: completeXml([[1, `"${'0'.repeat(32)}"`]]) });
    expect([res.status, await errorCode(res)]).toEqual([400, 'InvalidPart']);
    res = await client.fetch(`${objectUrl(key)}?uploadId=${uploadId}`, { method: 'POST', body: completeXml([[2, etags[1]!], [1, etags[0]!]]) });
    expect([res.status, await errorCode(res)]).toEqual([400, 'InvalidPartOrder']);

    res = await client.fetch(`${objectUrl(key)}?uploadId=${uploadId}`, {
      method: 'POST',
      body: completeXml(etags.map((e, i): [number, string] => [i + 1, e])),
    });
    expect(res.status).toBe(200);
    const etag = /<ETag>([^<]+)<\/ETag>/.exec(await res.text())?.[1];
    expect(etag).toMatch(/^&quot;[0-9a-f]{32}-3&quot;$/);

    const get = await fetch(await presign('GET', key));
    expect(get.headers.get('content-type')).toBe('application/x-tar');
    const got = new Uint8Array(await get.arrayBuffer());
    expect(got.length).toBe(10 * MiB + 123_457);
    expect(sha256(got)).toBe(sha256(Buffer.concat(parts)));
    expect(await readdir(join(dataDir, BUCKET, 'uploads'))).not.toContain(uploadId);
  });

  it('refuses parts under 5 MiB except the last', async () => {
    const key = 'big/small-parts';
    const uploadId = await createUpload(key);
    const e1 = (await putPart(key, uploadId, 1, random(1000))).headers.get('etag') ?? '';
    const e2 = (await putPart(key, uploadId, 2, random(1000))).headers.get('etag') ?? '';
    const res = await client.fetch(`${objectUrl(key)}?uploadId=${uploadId}`, { method: 'POST', body: completeXml([[1, e1], [2, e2]]) });
    expect([res.status, await errorCode(res)]).toEqual([400, 'EntityTooSmall']);
    expect((await client.fetch(`${objectUrl(key)}?uploadId=${uploadId}`, { method: 'DELETE' })).status).toBe(204);
  });

  it('abort removes the parts and the upload', async () => {
    const key = 'big/aborted.bin';
    const uploadId = await createUpload(key);
    expect((await putPart(key, uploadId, 1, random(64 * 1024))).status).toBe(200);
    const res = await client.fetch(`${objectUrl(key)}?uploadId=${uploadId}`, { method: 'DELETE' });
    expect(res.status).toBe(204);
    expect(await readdir(join(dataDir, BUCKET, 'uploads'))).not.toContain(uploadId);
    const late = await putPart(key, uploadId, 2, random(10));
    expect([late.status, await errorCode(late)]).toEqual([404, 'NoSuchUpload']);
    const head = await client.fetch(objectUrl(key), { method: 'HEAD' });
    expect(head.status).toBe(404);
  });
});

describe('durability', () => {
  it('an interrupted PUT leaves no object and no temp file', async () => {
    const key = 'interrupted/half.bin';
    const url = new URL(await presign('PUT', key));
    const socket = connect(store.port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    socket.write(`PUT ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Length: ${10 * 1024 * 1024}\r\n\r\n`);
    socket.write(random(1024 * 1024));
    // Wait until the store is really writing the body to disk, then vanish mid-body.
    for (let i = 0; i < 200 && (await tmpFiles()).length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect((await tmpFiles()).length).toBe(1);
    socket.destroy();
    for (let i = 0; i < 200 && (await tmpFiles()).length > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await tmpFiles()).toEqual([]);
    const head = await fetch(await presign('HEAD', key), { method: 'HEAD' });
    expect(head.status).toBe(404);
  });

  it('objects persist across close and restart on the same data directory', async () => {
    const key = 'persist/me.txt';
    expect((await putPresigned(key, 'still here', { 'content-type': 'text/plain' })).status).toBe(200);
    await store.close();
    store = await startS3Store({ dataDir, bucket: BUCKET, accessKeyId: ACCESS_KEY, secretAccessKey: SECRET });
    const get = await fetch(await presign('GET', key));
    expect([get.status, await get.text(), get.headers.get('content-type')]).toEqual([200, 'still here', 'text/plain']);
    const lifecycle = await client.fetch(`${store.endpoint}/${BUCKET}?lifecycle`);
    expect(lifecycle.status).toBe(200);
  });
});
