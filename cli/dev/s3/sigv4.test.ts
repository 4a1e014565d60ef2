// The verifier against the worked examples in AWS's S3 SigV4 documentation
// ("Examples: Signature Calculations in AWS Signature Version 4", virtual-hosted bucket
// `examplebucket`, 2013-05-24). Passing these means our canonicalization is AWS's, not just
// aws4fetch's; the end-to-end tests in ../s3-store.test.ts cover aws4fetch and botocore.
import { describe, expect, it } from 'vitest';
import { S3Error } from './errors.js';
import { authenticate, parseAmzDate, uriEncode, type SigningInput } from './sigv4.js';

const creds = {
  accessKeyId: 'AKIAIOSFODNN7EXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
  region: 'us-east-1',
};
const NOW = Date.UTC(2013, 4, 24, 0, 0, 0);
const EMPTY_SHA = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const host = 'examplebucket.s3.amazonaws.com';

function input(method: string, path: string, query: Array<[string, string]>, headers: Record<string, string>): SigningInput {
  return {
    method,
    path,
    query,
    headers: new Map(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), [v]])),
  };
}

function authHeader(signedHeaders: string, signature: string): string {
  return `AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=${signedHeaders},Signature=${signature}`;
}

function errorCode(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof S3Error) return e.code;
    throw e;
  }
  return 'no error';
}

describe('SigV4 verification against AWS documentation examples', () => {
  it('GET object with Range (header-signed)', () => {
    const req = input('GET', '/test.txt', [], {
      host,
      range: 'bytes=0-9',
      'x-amz-content-sha256': EMPTY_SHA,
      'x-amz-date': '20130524T000000Z',
      authorization: authHeader(
        'host;range;x-amz-content-sha256;x-amz-date',
        'f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41',
      ),
    });
    expect(authenticate(req, creds, NOW)).toEqual({ kind: 'header', accessKeyId: creds.accessKeyId, payloadHash: EMPTY_SHA });
  });

  it('PUT object with a $ in the key and a signed payload hash', () => {
    const req = input('PUT', '/test$file.text', [], {
      host,
      date: 'Fri, 24 May 2013 00:00:00 GMT',
      'x-amz-date': '20130524T000000Z',
      'x-amz-storage-class': 'REDUCED_REDUNDANCY',
      'x-amz-content-sha256': '44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072',
      authorization: authHeader(
        'date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class',
        '98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd',
      ),
    });
    expect(authenticate(req, creds, NOW).payloadHash).toBe('44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072');
  });

  it('GET bucket lifecycle (valueless query parameter)', () => {
    const req = input('GET', '/', [['lifecycle', '']], {
      host,
      'x-amz-date': '20130524T000000Z',
      'x-amz-content-sha256': EMPTY_SHA,
      authorization: authHeader('host;x-amz-content-sha256;x-amz-date', 'fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543'),
    });
    expect(authenticate(req, creds, NOW).kind).toBe('header');
  });

  it('list objects (query parameters sorted)', () => {
    const req = input('GET', '/', [['max-keys', '2'], ['prefix', 'J']], {
      host,
      'x-amz-date': '20130524T000000Z',
      'x-amz-content-sha256': EMPTY_SHA,
      authorization: authHeader('host;x-amz-content-sha256;x-amz-date', '34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7'),
    });
    expect(authenticate(req, creds, NOW).kind).toBe('header');
  });

  const presigned: Array<[string, string]> = [
    ['X-Amz-Algorithm', 'AWS4-HMAC-SHA256'],
    ['X-Amz-Credential', 'AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request'],
    ['X-Amz-Date', '20130524T000000Z'],
    ['X-Amz-Expires', '86400'],
    ['X-Amz-SignedHeaders', 'host'],
    ['X-Amz-Signature', 'aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404'],
  ];

  it('presigned GET', () => {
    expect(authenticate(input('GET', '/test.txt', presigned, { host }), creds, NOW)).toEqual({
      kind: 'query',
      accessKeyId: creds.accessKeyId,
      payloadHash: 'UNSIGNED-PAYLOAD',
    });
  });

  it('presigned GET: expiry is inclusive of the last second, then AccessDenied', () => {
    expect(authenticate(input('GET', '/test.txt', presigned, { host }), creds, NOW + 86_400_000).kind).toBe('query');
    expect(errorCode(() => authenticate(input('GET', '/test.txt', presigned, { host }), creds, NOW + 86_401_000))).toBe('AccessDenied');
  });

  it('presigned GET: other method, key, host or an extra parameter break the signature', () => {
    const bad = (req: SigningInput) => errorCode(() => authenticate(req, creds, NOW));
    expect(bad(input('PUT', '/test.txt', presigned, { host }))).toBe('SignatureDoesNotMatch');
    expect(bad(input('GET', '/test2.txt', presigned, { host }))).toBe('SignatureDoesNotMatch');
    expect(bad(input('GET', '/test.txt', presigned, { host: 'other.example' }))).toBe('SignatureDoesNotMatch');
    expect(bad(input('GET', '/test.txt', [...presigned, ['partNumber', '1']], { host }))).toBe('SignatureDoesNotMatch');
  });

  it('presigned GET: unsigned x-amz-* header, wrong region, bad expiry are refused', () => {
    const bad = (req: SigningInput) => errorCode(() => authenticate(req, creds, NOW));
    expect(bad(input('GET', '/test.txt', presigned, { host, 'x-amz-acl': 'public-read' }))).toBe('AccessDenied');
    expect(errorCode(() => authenticate(input('GET', '/test.txt', presigned, { host }), { ...creds, region: 'eu-west-1' }, NOW))).toBe(
      'AuthorizationQueryParametersError',
    );
    const week = presigned.map(([k, v]): [string, string] => [k, k === 'X-Amz-Expires' ? '604801' : v]);
    expect(bad(input('GET', '/test.txt', week, { host }))).toBe('AuthorizationQueryParametersError');
  });

  it('header-signed requests outside the 15 minute window are RequestTimeTooSkewed', () => {
    const req = input('GET', '/', [['lifecycle', '']], {
      host,
      'x-amz-date': '20130524T000000Z',
      'x-amz-content-sha256': EMPTY_SHA,
      authorization: authHeader('host;x-amz-content-sha256;x-amz-date', 'fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543'),
    });
    expect(errorCode(() => authenticate(req, creds, NOW + 16 * 60_000))).toBe('RequestTimeTooSkewed');
  });
});

describe('helpers', () => {
  it('uriEncode keeps only unreserved characters', () => {
    expect(uriEncode("a b+c/d~e_f.g-h!*'()ü", false)).toBe('a%20b%2Bc/d~e_f.g-h%21%2A%27%28%29%C3%BC');
    expect(uriEncode('a/b', true)).toBe('a%2Fb');
  });

  it('parseAmzDate accepts only real ISO8601 basic timestamps', () => {
    expect(parseAmzDate('20130524T000000Z')).toBe(NOW);
    expect(parseAmzDate('20131324T000000Z')).toBeUndefined();
    expect(parseAmzDate('2013-05-24T00:00:00Z')).toBeUndefined();
  });
});
