// Cross-check against an independent SigV4 implementation: Python's botocore (what boto3 and the
// AWS CLI sign with). For a fixed key and a frozen clock, botocore's presigned URL and its
// header-signed PUT must be accepted by the store, a tampered copy refused, and aws4fetch must
// produce the very same presigned signature from the same inputs.
import { AwsClient } from 'aws4fetch';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startS3Store, type S3Store } from '../s3-store.js';

const ACCESS_KEY = 'AKIDRGRIDEXAMPLE';
const SECRET = 'botocore/cross+check/secret';
const REGION = 'us-east-1';
const BUCKET = 'rgrid-botocore';
const KEY = "runs/r 1/out~put(1)!é.txt"; // space, ~, (), !, non-ASCII; '+' is avoided (see README)
const FROZEN = Date.UTC(2026, 0, 2, 3, 4, 5);
const AMZ_DATE = '20260102T030405Z';

const SIGNER = String.raw`
import datetime, json, sys
from urllib.parse import quote
import botocore.auth
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

a = json.load(sys.stdin)
frozen = datetime.datetime.fromtimestamp(a["epoch"], datetime.timezone.utc)
botocore.auth.get_current_datetime = lambda *args, **kw: frozen  # freeze botocore's clock
creds = Credentials(a["accessKey"], a["secret"])
url = a["endpoint"] + "/" + a["bucket"] + "/" + quote(a["key"], safe="/~")

get = AWSRequest(method="GET", url=url)
S3SigV4QueryAuth(creds, "s3", a["region"], expires=a["expires"]).add_auth(get)

put = AWSRequest(method="PUT", url=url, data=a["body"].encode())
S3SigV4Auth(creds, "s3", a["region"]).add_auth(put)

print(json.dumps({"presignedGet": get.url, "put": {"url": put.url, "headers": dict(put.headers.items())}}))
`;

/** A python3 that can import botocore: the system one, or one with botocore pip-installed aside. */
function botocorePythonPath(): string | undefined {
  try {
    execFileSync('python3', ['-c', 'import botocore'], { stdio: 'ignore' });
    return undefined; // importable as is
  } catch {
    // Install from the machine's configured package index into a cache dir reused across runs;
    // --retries 0 keeps an unreachable default index from costing a minute of back-off.
    const target = join(tmpdir(), 'rgrid-botocore');
    if (!existsSync(join(target, 'botocore'))) {
      execFileSync('python3', ['-m', 'pip', 'install', '--quiet', '--retries', '0', '--timeout', '5', '--target', target, 'botocore'], {
        stdio: 'inherit',
        timeout: 60_000,
      });
    }
    return target;
  }
}

let dataDir: string;
let store: S3Store;
let signed: { presignedGet: string; put: { url: string; headers: Record<string, string> } };

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'rgrid-s3-botocore-'));
  // The store's clock sits 10 s after the frozen signing time: inside both the presigned
  // expiry and the 15-minute window for header-signed requests.
  store = await startS3Store({ dataDir, bucket: BUCKET, accessKeyId: ACCESS_KEY, secretAccessKey: SECRET, now: () => FROZEN + 10_000 });
  const pythonPath = botocorePythonPath();
  const out = execFileSync('python3', ['-c', SIGNER], {
    input: JSON.stringify({ endpoint: store.endpoint, bucket: BUCKET, key: KEY, accessKey: ACCESS_KEY, secret: SECRET, region: REGION, expires: 300, epoch: FROZEN / 1000, body: 'signed by botocore' }),
    env: pythonPath ? { ...process.env, PYTHONPATH: pythonPath } : process.env,
    timeout: 60_000,
  });
  signed = JSON.parse(out.toString('utf8'));
}, 90_000);

afterAll(async () => {
  await store?.close();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe('botocore cross-check', () => {
  it('botocore signed with the frozen clock', () => {
    expect(new URL(signed.presignedGet).searchParams.get('X-Amz-Date')).toBe(AMZ_DATE);
    expect(signed.put.headers['X-Amz-Date']).toBe(AMZ_DATE);
  });

  it('accepts botocore header-signed PUT (signed payload hash) and presigned GET; refuses a tampered copy', async () => {
    const { 'Content-Length': _length, ...headers } = signed.put.headers;
    const put = await fetch(signed.put.url, { method: 'PUT', headers, body: 'signed by botocore' });
    expect(put.status).toBe(200);

    const get = await fetch(signed.presignedGet);
    expect([get.status, await get.text()]).toEqual([200, 'signed by botocore']);

    const tampered = new URL(signed.presignedGet);
    const sig = tampered.searchParams.get('X-Amz-Signature') ?? '';
    tampered.searchParams.set('X-Amz-Signature', sig.slice(0, -1) + (sig.endsWith('0') ? '1' : '0'));
    const bad = await fetch(tampered);
    expect(bad.status).toBe(403);
    expect(await bad.text()).toContain('<Code>SignatureDoesNotMatch</Code>');
  });

  it('aws4fetch computes the same presigned signature as botocore for the same inputs', async () => {
    const client = new AwsClient({ accessKeyId: ACCESS_KEY, secretAccessKey: SECRET, service: 's3', region: REGION });
    const path = KEY.split('/').map(encodeURIComponent).join('/');
    const req = await client.sign(`${store.endpoint}/${BUCKET}/${path}?X-Amz-Expires=300`, {
      method: 'GET',
      aws: { signQuery: true, datetime: AMZ_DATE },
    });
    const ours = new URL(req.url).searchParams.get('X-Amz-Signature');
    expect(ours).toBe(new URL(signed.presignedGet).searchParams.get('X-Amz-Signature'));
  });
});
