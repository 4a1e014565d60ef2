/**
 * Object store access for the control plane: presigned URLs for clients and runners (SigV4 query
 * signing via aws4fetch, one object per URL, short expiry), plus header-signed HEAD/DELETE for the
 * control plane's own checks. The control plane never proxies file bytes.
 */
import { AwsClient } from 'aws4fetch';
import type { PresignedRequest } from '../../../shared/api/common.js';

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

  /** Size of a stored object, or null when it does not exist. */
  async head(key: string): Promise<{ size: number } | null> {
    const res = await this.client.fetch(this.objectUrl(key), { method: 'HEAD' });
    if (res.status === 404) return null;
    if (!res.ok) throw new Error(`object store HEAD ${key} answered ${res.status}`);
    return { size: Number(res.headers.get('content-length') ?? '0') };
  }

  /** Starts a multipart upload; parts are then PUT by the client through presignPart URLs. */
  async createMultipart(key: string): Promise<string> {
    const res = await this.client.fetch(this.objectUrl(key) + '?uploads', { method: 'POST' });
    const text = await res.text();
    if (!res.ok) throw new Error(`object store CreateMultipartUpload ${key} answered ${res.status}: ${text.slice(0, 200)}`);
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
    const res = await this.client.fetch(`${this.objectUrl(key)}?uploadId=${encodeURIComponent(uploadId)}`, { method: 'POST', body: xml });
    const text = await res.text();
    // S3 may answer 200 with an <Error> body.
    if (!res.ok || text.includes('<Error>')) return { ok: false, reason: /<Message>([^<]*)<\/Message>/.exec(text)?.[1] ?? `status ${res.status}` };
    return { ok: true };
  }

  async abortMultipart(key: string, uploadId: string): Promise<void> {
    const res = await this.client.fetch(`${this.objectUrl(key)}?uploadId=${encodeURIComponent(uploadId)}`, { method: 'DELETE' });
    if (!res.ok && res.status !== 404) throw new Error(`object store AbortMultipartUpload answered ${res.status}`);
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
    const res = await this.client.fetch(this.objectUrl(key), { method: 'PUT', body: body as BodyInit, headers: { 'content-length': String(body.length) } });
    if (!res.ok) throw new Error(`object store PUT ${key} answered ${res.status}`);
  }

  async delete(key: string): Promise<void> {
    const res = await this.client.fetch(this.objectUrl(key), { method: 'DELETE' });
    if (!res.ok && res.status !== 404) throw new Error(`object store DELETE ${key} answered ${res.status}`);
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
