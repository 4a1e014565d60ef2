// AWS Signature Version 4 verification for S3, both flavours:
//   - query-signed (presigned URLs: X-Amz-Algorithm, -Credential, -Date, -Expires, -SignedHeaders,
//     -Signature in the query), used by the CLI and the runner with plain fetch;
//   - header-signed (`Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`),
//     used by the control plane through aws4fetch's AwsClient.fetch.
// We recompute the canonical request from what actually arrived and compare signatures in
// constant time. Method, key, query and signed headers are all inside the signature, so a URL
// used with another method or pointed at another key fails as SignatureDoesNotMatch.
// Reference: https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-authenticating-requests.html
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { S3Error, accessDenied } from './errors.js';

export const ALGORITHM = 'AWS4-HMAC-SHA256';
export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';
/** S3's limit for X-Amz-Expires: 7 days. */
export const MAX_PRESIGN_EXPIRES_S = 7 * 24 * 60 * 60;
/** S3 refuses header-signed requests whose X-Amz-Date is further than this from its clock. */
export const MAX_CLOCK_SKEW_MS = 15 * 60 * 1000;

export interface SigningInput {
  method: string;
  /** Percent-decoded request path, e.g. `/bucket/a b.txt`. */
  path: string;
  /** Percent-decoded query pairs, in request order. */
  query: ReadonlyArray<readonly [string, string]>;
  /** Lower-case header name → every value received for it. */
  headers: ReadonlyMap<string, readonly string[]>;
}

export interface ExpectedCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
}

export interface Authenticated {
  kind: 'query' | 'header';
  accessKeyId: string;
  /** The payload hash that was signed: UNSIGNED-PAYLOAD or the hex sha256 the body must have. */
  payloadHash: string;
}

/**
 * Checks the request's signature; returns who signed it or throws the S3Error S3 would answer
 * with. Order of checks follows S3: well-formedness, access key, scope, time, then signature.
 */
export function authenticate(req: SigningInput, creds: ExpectedCredentials, nowMs: number): Authenticated {
  const authorization = header(req, 'authorization');
  const presigned = req.query.some(([k]) => k === 'X-Amz-Algorithm');
  if (authorization !== undefined && presigned) {
    throw new S3Error(
      'InvalidArgument',
      'Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified',
      400,
    );
  }
  if (presigned) return verifyQuery(req, creds, nowMs);
  if (authorization !== undefined) return verifyHeader(req, authorization, creds, nowMs);
  if (req.query.some(([k]) => k === 'X-Amz-Signature' || k === 'X-Amz-Credential')) {
    throw queryError('Query-string authentication version 4 requires the X-Amz-Algorithm parameter.');
  }
  // Anonymous access: the bucket is private, as in production.
  throw accessDenied();
}

// ---------------------------------------------------------------------------------------------
// Query-signed (presigned URL)

const queryError = (message: string) => new S3Error('AuthorizationQueryParametersError', message, 400);

function verifyQuery(req: SigningInput, creds: ExpectedCredentials, nowMs: number): Authenticated {
  const param = (name: string): string | undefined => {
    const values = req.query.filter(([k]) => k === name);
    if (values.length > 1) throw queryError(`The ${name} parameter must be given once.`);
    return values[0]?.[1];
  };
  const algorithm = param('X-Amz-Algorithm');
  const credential = param('X-Amz-Credential');
  const amzDate = param('X-Amz-Date');
  const expires = param('X-Amz-Expires');
  const signedHeaders = param('X-Amz-SignedHeaders');
  const signature = param('X-Amz-Signature');
  if (algorithm !== ALGORITHM) throw queryError('X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"');
  if (!credential || !amzDate || !expires || !signedHeaders || !signature) {
    throw queryError(
      'Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.',
    );
  }
  const scope = parseCredential(credential, queryError);
  checkScope(scope, amzDate, creds, queryError);
  const signedAt = parseAmzDate(amzDate);
  if (signedAt === undefined) {
    throw queryError('X-Amz-Date must be in the ISO8601 Long Format "yyyyMMdd\'T\'HHmmss\'Z\'"');
  }
  if (!/^\d{1,7}$/.test(expires)) throw queryError('X-Amz-Expires should be a number');
  const expiresS = Number(expires);
  if (expiresS > MAX_PRESIGN_EXPIRES_S) {
    throw queryError(`X-Amz-Expires must be less than a week (in seconds) that is; ${MAX_PRESIGN_EXPIRES_S}`);
  }
  if (nowMs + MAX_CLOCK_SKEW_MS < signedAt) throw accessDenied('Request is not valid yet');
  const expiresAt = signedAt + expiresS * 1000;
  if (nowMs > expiresAt) {
    throw accessDenied('Request has expired', {
      'X-Amz-Expires': expires,
      Expires: new Date(expiresAt).toISOString(),
      ServerTime: new Date(nowMs).toISOString(),
    });
  }
  const names = parseSignedHeaders(signedHeaders, queryError);
  checkAmzHeadersSigned(req, names);
  // A presigned URL signs UNSIGNED-PAYLOAD unless the signer chose to pin the body's hash.
  const payloadHash =
    param('X-Amz-Content-Sha256') ??
    (names.includes('x-amz-content-sha256') ? header(req, 'x-amz-content-sha256') : undefined) ??
    UNSIGNED_PAYLOAD;
  const query = req.query.filter(([k]) => k !== 'X-Amz-Signature');
  const canonical = canonicalRequest(req.method, req.path, query, req, names, payloadHash);
  checkSignature(canonical, amzDate, scope, creds, signature);
  return { kind: 'query', accessKeyId: scope.accessKeyId, payloadHash };
}

// ---------------------------------------------------------------------------------------------
// Header-signed (Authorization header)

const headerError = (message: string) => new S3Error('AuthorizationHeaderMalformed', message, 400);

function verifyHeader(
  req: SigningInput,
  authorization: string,
  creds: ExpectedCredentials,
  nowMs: number,
): Authenticated {
  if (!authorization.startsWith(`${ALGORITHM} `)) {
    throw new S3Error(
      'InvalidRequest',
      'The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.',
      400,
    );
  }
  const fields = new Map<string, string>();
  for (const part of authorization.slice(ALGORITHM.length + 1).split(',')) {
    const eq = part.indexOf('=');
    if (eq > 0) fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const credential = fields.get('Credential');
  const signedHeaders = fields.get('SignedHeaders');
  const signature = fields.get('Signature');
  if (!credential || !signedHeaders || !signature) {
    throw headerError('The authorization header is malformed; it must contain Credential, SignedHeaders and Signature.');
  }
  const scope = parseCredential(credential, headerError);
  const amzDate = header(req, 'x-amz-date');
  const signedAt = amzDate === undefined ? undefined : parseAmzDate(amzDate);
  if (amzDate === undefined || signedAt === undefined) {
    throw accessDenied('AWS authentication requires a valid Date or x-amz-date header');
  }
  checkScope(scope, amzDate, creds, headerError);
  if (Math.abs(nowMs - signedAt) > MAX_CLOCK_SKEW_MS) {
    throw new S3Error(
      'RequestTimeTooSkewed',
      'The difference between the request time and the current time is too large.',
      403,
      { RequestTime: amzDate, ServerTime: new Date(nowMs).toISOString(), MaxAllowedSkewMilliseconds: '900000' },
    );
  }
  const payloadHash = header(req, 'x-amz-content-sha256');
  if (payloadHash === undefined) {
    throw new S3Error('InvalidRequest', 'Missing required header for this request: x-amz-content-sha256', 400);
  }
  if (payloadHash.startsWith('STREAMING-')) {
    throw new S3Error('NotImplemented', 'aws-chunked (STREAMING-*) payloads are not supported by the RGrid dev store.', 501);
  }
  if (payloadHash !== UNSIGNED_PAYLOAD && !/^[0-9a-f]{64}$/.test(payloadHash)) {
    throw new S3Error(
      'InvalidArgument',
      'x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, or a valid sha256 value.',
      400,
    );
  }
  const names = parseSignedHeaders(signedHeaders, headerError);
  checkAmzHeadersSigned(req, names);
  const canonical = canonicalRequest(req.method, req.path, req.query, req, names, payloadHash);
  checkSignature(canonical, amzDate, scope, creds, signature);
  return { kind: 'header', accessKeyId: scope.accessKeyId, payloadHash };
}

// ---------------------------------------------------------------------------------------------
// Shared pieces

interface CredentialScope {
  accessKeyId: string;
  date: string;
  region: string;
  service: string;
  /** `date/region/service/aws4_request`, as it appears in the string to sign. */
  scope: string;
}

function parseCredential(credential: string, malformed: (m: string) => S3Error): CredentialScope {
  // The access key itself may not contain '/', so the last four parts are the scope.
  const parts = credential.split('/');
  if (parts.length !== 5 || parts[4] !== 'aws4_request') {
    throw malformed(`Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".`);
  }
  const [accessKeyId, date, region, service] = parts as [string, string, string, string, string];
  return { accessKeyId, date, region, service, scope: parts.slice(1).join('/') };
}

function checkScope(
  scope: CredentialScope,
  amzDate: string,
  creds: ExpectedCredentials,
  malformed: (m: string) => S3Error,
): void {
  // The access key is checked first: an unknown key tells the caller more than a wrong region.
  if (scope.accessKeyId !== creds.accessKeyId) {
    throw new S3Error(
      'InvalidAccessKeyId',
      'The AWS Access Key Id you provided does not exist in our records.',
      403,
      { AWSAccessKeyId: scope.accessKeyId },
    );
  }
  if (scope.region !== creds.region) {
    throw malformed(`The authorization is malformed; the region '${scope.region}' is wrong; expecting '${creds.region}'`);
  }
  if (scope.service !== 's3') {
    throw malformed(`The authorization is malformed; incorrect service "${scope.service}". This endpoint belongs to "s3".`);
  }
  if (scope.date !== amzDate.slice(0, 8)) {
    throw malformed('Invalid credential date. Date is not the same as X-Amz-Date.');
  }
}

function parseSignedHeaders(value: string, malformed: (m: string) => S3Error): string[] {
  const names = value.split(';');
  if (names.some((n) => n === '' || n !== n.toLowerCase())) {
    throw malformed('SignedHeaders must be a ;-separated list of lower-case header names.');
  }
  if (!names.includes('host')) throw malformed('SignedHeaders must include host.');
  return names;
}

/** S3 refuses x-amz-* headers that ride along unsigned: they could change what the request does. */
function checkAmzHeadersSigned(req: SigningInput, signed: readonly string[]): void {
  const unsigned = [...req.headers.keys()].filter((n) => n.startsWith('x-amz-') && !signed.includes(n));
  if (unsigned.length > 0) {
    throw accessDenied('There were headers present in the request which were not signed', {
      HeadersNotSigned: unsigned.join(', '),
    });
  }
}

/** Milliseconds since epoch for `yyyyMMddTHHmmssZ`, or undefined when malformed. */
export function parseAmzDate(value: string): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s] = m.map(Number) as [number, number, number, number, number, number, number];
  const ms = Date.UTC(y, mo - 1, d, h, mi, s);
  // Date.UTC rolls over out-of-range fields (month 13); a real timestamp round-trips.
  return new Date(ms).toISOString().replace(/[:-]|\.\d{3}/g, '') === value ? ms : undefined;
}

/** SigV4 URI encoding: unreserved characters as-is, everything else %XX of its UTF-8 bytes. */
export function uriEncode(s: string, encodeSlash: boolean): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    const unreserved =
      (b >= 0x41 && b <= 0x5a) || // A-Z
      (b >= 0x61 && b <= 0x7a) || // a-z
      (b >= 0x30 && b <= 0x39) || // 0-9
      b === 0x2d || b === 0x2e || b === 0x5f || b === 0x7e || // - . _ ~
      (b === 0x2f && !encodeSlash);
    out += unreserved ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function header(req: SigningInput, name: string): string | undefined {
  const values = req.headers.get(name);
  return values === undefined || values.length === 0 ? undefined : values.join(',');
}

/** The canonical request of SigV4 for S3. Exported for the unit tests against AWS's examples. */
export function canonicalRequest(
  method: string,
  path: string,
  query: ReadonlyArray<readonly [string, string]>,
  req: Pick<SigningInput, 'headers'>,
  signedHeaders: readonly string[],
  payloadHash: string,
): string {
  // S3 encodes the (decoded) path once, keeping '/', unlike other services which double-encode.
  const canonicalUri = uriEncode(path, false);
  const canonicalQuery = query
    .map(([k, v]) => [uriEncode(k, true), uriEncode(v, true)] as const)
    .sort(([k1, v1], [k2, v2]) => (k1 < k2 ? -1 : k1 > k2 ? 1 : v1 < v2 ? -1 : v1 > v2 ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const canonicalHeaders = signedHeaders
    .map((name) => {
      const values = (req.headers.get(name) ?? []).map((v) => v.trim().replace(/\s+/g, ' '));
      return `${name}:${values.join(',')}\n`;
    })
    .join('');
  return [method, canonicalUri, canonicalQuery, canonicalHeaders, signedHeaders.join(';'), payloadHash].join('\n');
}

const signingKeys = new Map<string, Buffer>();

function signingKey(secret: string, scope: CredentialScope): Buffer {
  const cacheKey = `${secret}\n${scope.scope}`;
  let key = signingKeys.get(cacheKey);
  if (!key) {
    const kDate = createHmac('sha256', `AWS4${secret}`).update(scope.date).digest();
    const kRegion = createHmac('sha256', kDate).update(scope.region).digest();
    const kService = createHmac('sha256', kRegion).update(scope.service).digest();
    key = createHmac('sha256', kService).update('aws4_request').digest();
    if (signingKeys.size > 64) signingKeys.clear(); // one entry per day and key; keep it bounded
    signingKeys.set(cacheKey, key);
  }
  return key;
}

function checkSignature(
  canonical: string,
  amzDate: string,
  scope: CredentialScope,
  creds: ExpectedCredentials,
  provided: string,
): void {
  const stringToSign = [
    ALGORITHM,
    amzDate,
    scope.scope,
    createHash('sha256').update(canonical, 'utf8').digest('hex'),
  ].join('\n');
  const expected = createHmac('sha256', signingKey(creds.secretAccessKey, scope)).update(stringToSign).digest('hex');
  const a = Buffer.from(expected, 'utf8');
  const b = Buffer.from(provided, 'utf8');
  if (a.length !== b.length || !timingSafeEqual(a, b)) {
    // Like S3, show what we signed so a client author can diff it against their own.
    throw new S3Error(
      'SignatureDoesNotMatch',
      'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
      403,
      { AWSAccessKeyId: scope.accessKeyId, StringToSign: stringToSign, SignatureProvided: provided, CanonicalRequest: canonical },
    );
  }
}
