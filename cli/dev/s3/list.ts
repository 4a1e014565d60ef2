// ListObjectsV2 over the in-memory index.
import { S3Error } from './errors.js';
import type { ObjectMeta } from './objects.js';
import { uriEncode } from './sigv4.js';
import { S3_XMLNS, XML_DECL, xmlElements } from './xml.js';

export interface ListParams {
  prefix: string;
  delimiter: string | undefined;
  maxKeys: number;
  startAfter: string | undefined;
  continuationToken: string | undefined;
  encodingType: 'url' | undefined;
}

/** Validates and defaults the query of a ListObjectsV2 request. */
export function listParams(param: (name: string) => string | undefined): ListParams {
  const maxKeysRaw = param('max-keys');
  if (maxKeysRaw !== undefined && !/^\d+$/.test(maxKeysRaw)) {
    throw new S3Error('InvalidArgument', 'Provided max-keys not an integer or within integer range', 400);
  }
  const encodingType = param('encoding-type');
  if (encodingType !== undefined && encodingType !== 'url') {
    throw new S3Error('InvalidArgument', 'Invalid Encoding Method specified in Request', 400);
  }
  return {
    prefix: param('prefix') ?? '',
    delimiter: param('delimiter') || undefined,
    // S3 never returns more than 1000 per page, whatever max-keys asks.
    maxKeys: Math.min(maxKeysRaw === undefined ? 1000 : Number(maxKeysRaw), 1000),
    startAfter: param('start-after'),
    continuationToken: param('continuation-token'),
    encodingType,
  };
}

// S3 lists in UTF-8 byte order; JS string comparison is UTF-16 order, which differs above U+FFFF.
const utf8Compare = (a: string, b: string) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

/** The continuation token is the last key examined, opaque to clients. */
const encodeToken = (key: string) => Buffer.from(key, 'utf8').toString('base64url');
function decodeToken(token: string): string {
  if (!/^[A-Za-z0-9_-]*$/.test(token)) {
    throw new S3Error('InvalidArgument', 'The continuation token provided is incorrect', 400);
  }
  return Buffer.from(token, 'base64url').toString('utf8');
}

export function listObjectsV2Xml(bucket: string, objects: Iterable<ObjectMeta>, p: ListParams): string {
  const after = p.continuationToken !== undefined ? decodeToken(p.continuationToken) : p.startAfter;
  const candidates = [...objects]
    .filter((o) => o.key.startsWith(p.prefix) && (after === undefined || utf8Compare(o.key, after) > 0))
    .sort((a, b) => utf8Compare(a.key, b.key));
  const contents: ObjectMeta[] = [];
  const prefixes: string[] = [];
  let lastExamined: string | undefined;
  let truncated = false;
  for (const o of candidates) {
    if (p.maxKeys === 0) break;
    const cut = p.delimiter === undefined ? -1 : o.key.indexOf(p.delimiter, p.prefix.length);
    const commonPrefix = cut === -1 ? undefined : o.key.slice(0, cut + (p.delimiter?.length ?? 0));
    // Keys rolled up into the prefix just returned are skipped but still advance the token, so
    // the next page does not return the same common prefix again.
    if (commonPrefix !== undefined && prefixes[prefixes.length - 1] === commonPrefix) {
      lastExamined = o.key;
      continue;
    }
    if (contents.length + prefixes.length >= p.maxKeys) {
      truncated = true;
      break;
    }
    if (commonPrefix !== undefined) prefixes.push(commonPrefix);
    else contents.push(o);
    lastExamined = o.key;
  }
  const enc = (s: string) => (p.encodingType === 'url' ? uriEncode(s, false) : s);
  const body = xmlElements([
    ['Name', bucket],
    ['Prefix', enc(p.prefix)],
    ['Delimiter', p.delimiter === undefined ? undefined : enc(p.delimiter)],
    ['MaxKeys', p.maxKeys],
    ['KeyCount', contents.length + prefixes.length],
    ['IsTruncated', truncated],
    ['EncodingType', p.encodingType],
    ['StartAfter', p.startAfter === undefined ? undefined : enc(p.startAfter)],
    ['ContinuationToken', p.continuationToken],
    ['NextContinuationToken', truncated && lastExamined !== undefined ? encodeToken(lastExamined) : undefined],
  ]);
  const items = contents
    .map(
      (o) =>
        '<Contents>' +
        xmlElements([
          ['Key', enc(o.key)],
          ['LastModified', new Date(o.lastModified).toISOString()],
          ['ETag', o.etag],
          ['Size', o.size],
          ['StorageClass', 'STANDARD'],
        ]) +
        '</Contents>',
    )
    .join('');
  const common = prefixes.map((cp) => `<CommonPrefixes>${xmlElements([['Prefix', enc(cp)]])}</CommonPrefixes>`).join('');
  return `${XML_DECL}<ListBucketResult xmlns="${S3_XMLNS}">${body}${items}${common}</ListBucketResult>`;
}
