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
    });
  }

  objectUrl(key: string): string {
    return `${this.cfg.endpoint.replace(/\/+$/, '')}/${encodeURIComponent(this.cfg.bucket)}/${encodeKey(key)}`;
  }

  async presign(method: 'GET' | 'PUT', key: string, opts: PresignOptions): Promise<PresignedRequest> {
    const at = opts.at ?? new Date();
    const url = new URL(this.objectUrl(key));
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
