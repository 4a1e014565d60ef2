// What every operation handler gets, and the small response helpers they share.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { BodyChecks } from './body.js';
import { S3Error, notImplemented } from './errors.js';
import type { Multipart } from './multipart.js';
import type { ObjectStore } from './objects.js';
import type { Authenticated } from './sigv4.js';
import type { RequestTarget } from './target.js';

export interface Bucket {
  name: string;
  region: string;
  /** Directory holding this bucket's blobs/, meta/, uploads/, tmp/ and lifecycle.xml. */
  root: string;
  objects: ObjectStore;
  multipart: Multipart;
}

export interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  target: RequestTarget;
  /** Present on every request that reaches a handler: unsigned requests never do. */
  auth: Authenticated;
  bucket: Bucket;
}

export function send(res: ServerResponse, status: number, headers: Record<string, string | number>, body = ''): void {
  res.writeHead(status, { ...headers, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

export function sendXml(res: ServerResponse, xml: string): void {
  send(res, 200, { 'Content-Type': 'application/xml' }, xml);
}

export function bodyChecks(ctx: Ctx): BodyChecks {
  const md5 = ctx.req.headers['content-md5'];
  return { payloadHash: ctx.auth.payloadHash, contentMd5: typeof md5 === 'string' ? md5 : undefined };
}

/** Headers a PUT (or CreateMultipartUpload) stores and GET/HEAD give back, like S3. */
const STORED_HEADERS = ['content-type', 'content-encoding', 'content-disposition', 'content-language', 'cache-control', 'expires'];

export function storedHeaders(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (typeof value !== 'string') continue;
    if (STORED_HEADERS.includes(name) || name.startsWith('x-amz-meta-')) out[name] = value;
  }
  return out;
}

/** Query parameters any request may carry without naming a sub-resource. */
const NEUTRAL_PARAM = /^(X-Amz-.*|x-id)$/;

/**
 * Refuses query parameters this store does not implement. Without this, `PUT /b/k?tagging` would
 * be taken for a PutObject and overwrite the object with a tagging document.
 */
export function onlyParams(ctx: Ctx, operation: string, allowed: readonly (string | RegExp)[]): void {
  const unknown = ctx.target.query
    .map(([k]) => k)
    .filter((k) => !NEUTRAL_PARAM.test(k) && !allowed.some((a) => (typeof a === 'string' ? a === k : a.test(k))));
  if (unknown.length > 0) throw notImplemented(`${operation} with ?${unknown.join('&')}`);
}

export const noSuchBucket = () => new S3Error('NoSuchBucket', 'The specified bucket does not exist', 404);
