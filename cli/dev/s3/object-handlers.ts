// Object-level operations: PutObject, GetObject/HeadObject, DeleteObject and the multipart ones.
import { pipeline } from 'node:stream/promises';
import { receiveToFile, readSmallBody, requireContentLength } from './body.js';
import { S3Error, noSuchKey } from './errors.js';
import { bodyChecks, send, sendXml, storedHeaders, type Ctx } from './http.js';
import { MAX_PART_NUMBER, parseCompleteXml } from './multipart.js';
import type { ObjectMeta } from './objects.js';
import { queryParam } from './target.js';
import { S3_XMLNS, XML_DECL, xmlElements } from './xml.js';

export async function putObject(ctx: Ctx): Promise<void> {
  if (ctx.req.headers['x-amz-copy-source'] !== undefined) {
    throw new S3Error('NotImplemented', 'CopyObject is not implemented by the RGrid dev store.', 501);
  }
  const length = requireContentLength(ctx.req);
  const tmp = ctx.bucket.objects.tmpFile();
  const { size, md5Hex } = await receiveToFile(ctx.req, tmp, length, bodyChecks(ctx));
  const meta = await ctx.bucket.objects.commit(tmp, {
    key: ctx.target.key,
    size,
    etag: `"${md5Hex}"`,
    headers: storedHeaders(ctx.req),
  });
  send(ctx.res, 200, { ETag: meta.etag });
}

/** Presigned GETs may override these response headers (e.g. a download file name). */
const RESPONSE_OVERRIDES = ['content-type', 'content-language', 'expires', 'cache-control', 'content-disposition', 'content-encoding'];

export async function getObject(ctx: Ctx): Promise<void> {
  const head = ctx.req.method === 'HEAD';
  const opened = await ctx.bucket.objects.openForRead(ctx.target.key);
  if (!opened) throw noSuchKey();
  const { meta, file } = opened;
  let stream;
  try {
    const range = parseRange(ctx.req.headers.range, meta.size);
    if (range === 'unsatisfiable') {
      throw new S3Error('InvalidRange', 'The requested range is not satisfiable', 416, { RangeRequested: ctx.req.headers.range ?? '', ActualObjectSize: String(meta.size) }, {
        'Content-Range': `bytes */${meta.size}`,
      });
    }
    const headers = objectHeaders(meta);
    for (const name of RESPONSE_OVERRIDES) {
      const value = queryParam(ctx.target, `response-${name}`);
      if (value !== undefined) headers[name] = value;
    }
    const start = range?.start ?? 0;
    const end = range?.end ?? meta.size - 1;
    headers['content-length'] = String(end - start + 1);
    if (range) headers['content-range'] = `bytes ${start}-${end}/${meta.size}`;
    ctx.res.writeHead(range ? 206 : 200, headers);
    if (head || meta.size === 0) {
      await file.close();
      ctx.res.end();
      return;
    }
    stream = file.createReadStream({ start, end, highWaterMark: 256 * 1024 }); // closes the file when done
  } catch (err) {
    await file.close();
    throw err;
  }
  await pipeline(stream, ctx.res);
}

export async function deleteObject(ctx: Ctx): Promise<void> {
  await ctx.bucket.objects.delete(ctx.target.key);
  send(ctx.res, 204, {});
}

export async function createMultipartUpload(ctx: Ctx): Promise<void> {
  const uploadId = await ctx.bucket.multipart.create(ctx.target.key, storedHeaders(ctx.req));
  sendXml(
    ctx.res,
    `${XML_DECL}<InitiateMultipartUploadResult xmlns="${S3_XMLNS}">` +
      xmlElements([
        ['Bucket', ctx.bucket.name],
        ['Key', ctx.target.key],
        ['UploadId', uploadId],
      ]) +
      '</InitiateMultipartUploadResult>',
  );
}

export async function uploadPart(ctx: Ctx): Promise<void> {
  const uploadId = queryParam(ctx.target, 'uploadId') ?? '';
  const rawNumber = queryParam(ctx.target, 'partNumber') ?? '';
  const partNumber = Number(rawNumber);
  if (!/^\d+$/.test(rawNumber) || partNumber < 1 || partNumber > MAX_PART_NUMBER) {
    throw new S3Error('InvalidArgument', `Part number must be an integer between 1 and ${MAX_PART_NUMBER}, inclusive`, 400);
  }
  const length = requireContentLength(ctx.req);
  const md5Hex = await ctx.bucket.multipart.uploadPart(uploadId, ctx.target.key, partNumber, ctx.req, length, bodyChecks(ctx));
  send(ctx.res, 200, { ETag: `"${md5Hex}"` });
}

export async function completeMultipartUpload(ctx: Ctx): Promise<void> {
  const uploadId = queryParam(ctx.target, 'uploadId') ?? '';
  // 10,000 parts at ~100 bytes of XML each.
  const body = await readSmallBody(ctx.req, 2 * 1024 * 1024, bodyChecks(ctx));
  const parts = parseCompleteXml(body.toString('utf8'));
  const meta = await ctx.bucket.multipart.complete(uploadId, ctx.target.key, parts);
  sendXml(
    ctx.res,
    `${XML_DECL}<CompleteMultipartUploadResult xmlns="${S3_XMLNS}">` +
      xmlElements([
        ['Location', `http://${ctx.req.headers.host ?? '127.0.0.1'}/${ctx.bucket.name}/${encodeURI(ctx.target.key)}`],
        ['Bucket', ctx.bucket.name],
        ['Key', ctx.target.key],
        ['ETag', meta.etag],
      ]) +
      '</CompleteMultipartUploadResult>',
  );
}

export async function abortMultipartUpload(ctx: Ctx): Promise<void> {
  await ctx.bucket.multipart.abort(queryParam(ctx.target, 'uploadId') ?? '', ctx.target.key);
  send(ctx.res, 204, {});
}

function objectHeaders(meta: ObjectMeta): Record<string, string> {
  return {
    'content-type': 'application/octet-stream', // MinIO's default when the PUT named none
    ...meta.headers,
    etag: meta.etag,
    'last-modified': new Date(meta.lastModified).toUTCString(),
    'accept-ranges': 'bytes',
  };
}

/**
 * One `bytes=` range, as S3 supports: `a-b`, `a-`, `-n`. Malformed or multi-range headers are
 * ignored (whole object, 200), as S3 does; a range starting past the end is unsatisfiable.
 */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  const m = header === undefined ? null : /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  if (m[2] !== '' && Number(m[2]) < start) return undefined;
  if (start >= size) return 'unsatisfiable';
  return { start, end: m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1) };
}
