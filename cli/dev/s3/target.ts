// Parsing of the request target (`/bucket/key?query`) exactly once, into decoded values.
// Signature verification and routing both work from this result, so they can never disagree on
// which key or which sub-resource a request names.
import { S3Error } from './errors.js';

export interface RequestTarget {
  /** Percent-decoded path, e.g. `/bucket/dir/a b.txt`. A `+` in the path is a literal plus. */
  path: string;
  /** Percent-decoded query pairs in request order; `?uploads` gives `['uploads', '']`. */
  query: Array<[string, string]>;
  bucket: string;
  /** Object key; '' for bucket-level requests (`/bucket` or `/bucket/`). */
  key: string;
}

const invalidUri = () => new S3Error('InvalidURI', "Couldn't parse the specified URI.", 400);

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw invalidUri();
  }
}

export function parseTarget(rawUrl: string): RequestTarget {
  const q = rawUrl.indexOf('?');
  const rawPath = q === -1 ? rawUrl : rawUrl.slice(0, q);
  const rawQuery = q === -1 ? '' : rawUrl.slice(q + 1);
  // Absolute-form targets (`http://host/...`, proxy style) are not something S3 clients send.
  if (!rawPath.startsWith('/')) throw invalidUri();
  const path = decode(rawPath);
  const query = rawQuery
    .split('&')
    .filter((part) => part !== '')
    .map((part): [string, string] => {
      const eq = part.indexOf('=');
      const k = eq === -1 ? part : part.slice(0, eq);
      const v = eq === -1 ? '' : part.slice(eq + 1);
      // In the query, `+` means space (form encoding) for S3, MinIO and URLSearchParams alike.
      return [decode(k.replace(/\+/g, ' ')), decode(v.replace(/\+/g, ' '))];
    });
  const slash = path.indexOf('/', 1);
  const bucket = slash === -1 ? path.slice(1) : path.slice(1, slash);
  const key = slash === -1 ? '' : path.slice(slash + 1);
  return { path, query, bucket, key };
}

/** First value of a query parameter (S3 parameter names are case-sensitive). */
export function queryParam(target: RequestTarget, name: string): string | undefined {
  return target.query.find(([k]) => k === name)?.[1];
}

export function hasQueryParam(target: RequestTarget, name: string): boolean {
  return target.query.some(([k]) => k === name);
}
