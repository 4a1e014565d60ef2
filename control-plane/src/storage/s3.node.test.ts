/**
 * The control plane's presigned URLs must be exactly what the reference signer produces:
 * botocore (from the machine's package index), same credentials, key, method, expiry and time.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ObjectStore } from './s3.js';

const cfg = {
  endpoint: 'http://127.0.0.1:9000',
  bucket: 'rgrid',
  region: 'us-east-1',
  accessKeyId: 'AKIDEXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
};

const BOTO = `
import sys, json, datetime
from unittest import mock
import botocore.session
from botocore.config import Config
args = json.loads(sys.argv[1])
session = botocore.session.get_session()
client = session.create_client('s3', region_name=args['region'], endpoint_url=args['endpoint'],
    aws_access_key_id=args['accessKeyId'], aws_secret_access_key=args['secretAccessKey'],
    config=Config(signature_version='s3v4', s3={'addressing_style': 'path'}))
fixed = datetime.datetime(2026, 11, 28, 12, 0, 0)
with mock.patch('botocore.auth.get_current_datetime', return_value=fixed):
    out = []
    for method, key in args['cases']:
        op = 'get_object' if method == 'GET' else 'put_object'
        out.append(client.generate_presigned_url(op, Params={'Bucket': args['bucket'], 'Key': key}, ExpiresIn=args['expires'], HttpMethod=method))
print(json.dumps(out))
`;

function params(url: string) {
  const u = new URL(url);
  return { path: u.pathname, query: Object.fromEntries([...u.searchParams.entries()].sort()) };
}

describe('presigned URLs', () => {
  const cases: [string, string][] = [
    ['GET', 'blobs/acct_x/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'],
    ['PUT', 'blobs/acct_x/5d41402abc4b2a76b9719d911017c592ae41e4649b934ca495991b7852b85500'],
    ['GET', 'odd keys/with spaces/and+plus=equals~tilde(parens)!'],
  ];

  it('match botocore’s signature for the same inputs and time', async () => {
    const botoUrls: string[] = JSON.parse(
      execFileSync('python3', ['-c', BOTO, JSON.stringify({ ...cfg, cases, expires: 900 })], { encoding: 'utf8' }),
    );
    const store = new ObjectStore(cfg);
    const at = new Date(Date.UTC(2026, 10, 28, 12, 0, 0));
    for (const [i, [method, key]] of cases.entries()) {
      const ours = await store.presign(method as 'GET' | 'PUT', key, { expiresSeconds: 900, at });
      const theirs = params(botoUrls[i]!);
      expect(params(ours.url).path).toBe(theirs.path);
      expect(params(ours.url).query).toEqual(theirs.query);
      expect(new URL(ours.url).searchParams.get('X-Amz-Signature')).toMatch(/^[0-9a-f]{64}$/);
      expect(ours.expiresAt).toBe('2026-11-28T12:15:00.000Z');
    }
  });
});
