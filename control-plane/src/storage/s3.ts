/**
 * Object store access for the control plane: presigned URLs for clients and runners (SigV4 query
 * signing via aws4fetch, one object per URL, short expiry), plus header-signed HEAD/DELETE for the
 * control plane's own checks. The control plane never proxies file bytes.
 */
import { AwsClient } from 'aws4fetch';
import type { PresignedRequest } from '../../../shared/api/common.js';
import { ApiError } from '../errors.js';

const STORE_HINT = 'Retry shortly. If it persists, the operator should check that S3_ENDPOINT is reachable from the control plane and that the S3 credentials and the clock are right.';

/**
 * The store could not serve a request of the control plane's own (network error, 403 from wrong
 * credentials or clock skew, 5xx): 503 `unavailable`, which clients retry, instead of a bare 500.
 */
function unavailable(what: string, detail: string): ApiError {
  return new ApiError('unavailable', `object store unreachable: ${what}: ${detail}`, STORE_HINT);
}

async function statusDetail(res: Response): Promise<string> {
  const text = await res.text().catch(() => '');
  const code = /<Code>([^<]{1,100})<\/Code>/.exec(text)?.[1];
  return `answered ${res.status}${code ? ` ${code}` : ''}`;
}

export interface S3Config {
  endpoint: string;
  bucket: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
}

export interface PresignOptions {
  expiresSeconds: number;
  /** Fixed signing time (tests, reproducibility); defaults to now. */
  at?: Date;
}

/** Encode a key for a path-style URL: each segment once, slashes kept (the SigV4 rule for S3). */
export function encodeKey(key: string): string {
  return key
    .split('/')
    .map((s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase()))
    .join('/');
}

function amzDate(at: Date): string {
  return at.toISOString().replace(/[:-]|\.\d{3}/g, '');
}

export class ObjectStore {
  private readonly client: AwsClient;

  constructor(private readonly cfg: S3Config) {
    this.client = new AwsClient({
      accessKeyId: cfg.accessKeyId,
      secretAccessKey: cfg.secretAccessKey,
      service: 's3',
      region: cfg.region,
      // aws4fetch retries every 5xx (even 501 Not Implemented) for seconds by default.
      retries: 2,
    });
  }

  /**
   * A signed request; network errors become `unavailable` (aws4fetch already retried 5xx).
   * Idempotent requests (all but POST) are sent once more after a network error: a pooled
   * connection the store closed just as it was reused fails with "Network connection lost"
   * although the store is fine (F19).
   */
  private async send(what: string, url: string, init: RequestInit): Promise<Response> {
    const attempts = (init.method ?? 'GET').toUpperCase() === 'POST' ? 1 : 2;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.client.fetch(url, init);
      } catch (err) {
        if (attempt >= attempts) throw unavailable(what, (err as Error).message || String(err));
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  objectUrl(key: string): string {
    return `${this.cfg.endpoint.replace(/\/+$/, '')}/${encodeURIComponent(this.cfg.bucket)}/${encodeKey(key)}`;
  }

  async presign(method: 'GET' | 'PUT', key: string, opts: PresignOptions & { query?: Record<string, string> }): Promise<PresignedRequest> {
    const at = opts.at ?? new Date();
    const url = new URL(this.objectUrl(key));
    for (const [k, v] of Object.entries(opts.query ?? {})) url.searchParams.set(k, v);
    url.searchParams.set('X-Amz-Expires', String(opts.expiresSeconds));
    const signed = await this.client.sign(url.toString(), { method, aws: { signQuery: true, datetime: amzDate(at) } });
    return {
      method,
      url: signed.url,
      headers: {},
      expiresAt: new Date(at.getTime() + opts.expiresSeconds * 1000).toISOString(),
    };
  }

  /**
   * A download URL shared by every claim within a minute: a batch's jobs all download the same
   * script. A URL is reused for at most a tenth of its lifetime (and a minute), so it is handed
   * out with at least 90% of `expiresSeconds` left.
   */
  async presignGet(key: string, expiresSeconds: number): Promise<PresignedRequest> {
    const now = Date.now();
    const cached = this.downloads.get(key);
    if (cached && cached.expiresSeconds === expiresSeconds && now - cached.at < Math.min(60_000, expiresSeconds * 100)) return cached.req;
    if (this.downloads.size >= 10_000) this.downloads.clear();
    const req = await this.presign('GET', key, { expiresSeconds, at: new Date(now) });
    this.downloads.set(key, { req, at: now, expiresSeconds });
    return req;
  }
  private readonly downloads = new Map<string, { req: PresignedRequest; at: number; expiresSeconds: number }>();

  /** Size of a stored object, or null when it does not exist. */
  async head(key: string): Promise<{ size: number } | null> {
    const res = await this.send(`HEAD ${key}`, this.objectUrl(key), { method: 'HEAD' });
    if (res.status === 404) return null;
    if (!res.ok) throw unavailable(`HEAD ${key}`, await statusDetail(res));
    return { size: Number(res.headers.get('content-length') ?? '0') };
  }

  /** Starts a multipart upload; parts are then PUT by the client through presignPart URLs. */
  async createMultipart(key: string): Promise<string> {
    const what = `CreateMultipartUpload ${key}`;
    const res = await this.send(what, this.objectUrl(key) + '?uploads', { method: 'POST' });
    if (!res.ok) throw unavailable(what, await statusDetail(res));
    const text = await res.text();
    const id = /<UploadId>([^<]+)<\/UploadId>/.exec(text)?.[1];
    if (!id) throw new Error('object store CreateMultipartUpload answered without an UploadId');
    return id;
  }

  presignPart(key: string, uploadId: string, partNumber: number, expiresSeconds: number): Promise<PresignedRequest> {
    return this.presign('PUT', key, { expiresSeconds, query: { partNumber: String(partNumber), uploadId } });
  }

  /** Returns false when the store refused the part list (missing or wrong parts): the caller aborts. */
  async completeMultipart(key: string, uploadId: string, parts: { partNumber: number; etag: string }[]): Promise<{ ok: true } | { ok: false; reason: string }> {
    const xml =
      '<CompleteMultipartUpload>' +
      parts
        .slice()
        .sort((a, b) => a.partNumber - b.partNumber)
        .map((p) => `<Part><PartNumber>${p.partNumber}</PartNumber><ETag>${p.etag.replace(/[<>&]/g, '')}</ETag></Part>`)
        .join('') +
      '</CompleteMultipartUpload>';
    const what = `CompleteMultipartUpload ${key}`;
    const res = await this.send(what, `${this.objectUrl(key)}?uploadId=${encodeURIComponent(uploadId)}`, { method: 'POST', body: xml });
    // The store itself failing is not a refusal of the parts: the upload stays, a retry may succeed.
    if (res.status === 403 || res.status >= 500) throw unavailable(what, await statusDetail(res));
    const text = await res.text();
    // S3 may answer 200 with an <Error> body.
    if (!res.ok || text.includes('<Error>')) return { ok: false, reason: /<Message>([^<]*)<\/Message>/.exec(text)?.[1] ?? `status ${res.status}` };
    return { ok: true };
  }

  async abortMultipart(key: string, uploadId: string): Promise<void> {
    const what = `AbortMultipartUpload ${key}`;
    const res = await this.send(what, `${this.objectUrl(key)}?uploadId=${encodeURIComponent(uploadId)}`, { method: 'DELETE' });
    if (!res.ok && res.status !== 404) throw unavailable(what, await statusDetail(res));
  }

  /**
   * Applies a bucket lifecycle rule where the store supports them (MinIO, S3); returns false where
   * it does not (501), which is tolerated: RGrid's own sweeper deletes expired objects either way.
   */
  async putLifecycle(xml: string): Promise<boolean> {
    const url = `${this.cfg.endpoint.replace(/\/+$/, '')}/${encodeURIComponent(this.cfg.bucket)}?lifecycle`;
    const md5 = await md5Base64(xml);
    const res = await this.client.fetch(url, { method: 'PUT', body: xml, headers: { 'content-md5': md5, 'content-type': 'application/xml' } });
    await res.text();
    return res.ok;
  }

  /** A small object written by the control plane itself (inline webhook inputs). */
  async put(key: string, body: Uint8Array): Promise<void> {
    const res = await this.send(`PUT ${key}`, this.objectUrl(key), { method: 'PUT', body: body as BodyInit, headers: { 'content-length': String(body.length) } });
    if (!res.ok) throw unavailable(`PUT ${key}`, await statusDetail(res));
  }

  async delete(key: string): Promise<void> {
    const res = await this.send(`DELETE ${key}`, this.objectUrl(key), { method: 'DELETE' });
    if (!res.ok && res.status !== 404) throw unavailable(`DELETE ${key}`, await statusDetail(res));
  }
}

/** Blobs are content-addressed per account, so outputs and inputs share one cache. */
export function blobKey(accountId: string, sha256: string): string {
  return `blobs/${accountId}/${sha256}`;
}

async function md5Base64(text: string): Promise<string> {
  const digest = await crypto.subtle.digest('MD5', new TextEncoder().encode(text));
  return btoa(String.fromCharCode(...new Uint8Array(digest)));
}
