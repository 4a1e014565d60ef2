// Request bodies. Large ones (objects, parts) stream to a file with constant memory; small ones
// (XML documents) are read into memory with a hard cap.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { S3Error } from './errors.js';
import { UNSIGNED_PAYLOAD } from './sigv4.js';

/** S3's largest single PUT (and part). */
export const MAX_PUT_BYTES = 5 * 1024 ** 3;

export interface Received {
  size: number;
  md5Hex: string;
}

export interface BodyChecks {
  /** Signed payload hash: UNSIGNED-PAYLOAD or the hex sha256 the body must have. */
  payloadHash: string;
  /** Content-MD5 header (base64), if the client sent one. */
  contentMd5: string | undefined;
}

/** Content-Length of a PUT; S3 (and MinIO) refuse chunked uploads without one. */
export function requireContentLength(req: IncomingMessage): number {
  const raw = req.headers['content-length'];
  if (raw === undefined) {
    throw new S3Error('MissingContentLength', 'You must provide the Content-Length HTTP header.', 411);
  }
  const length = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(length)) {
    throw new S3Error('InvalidArgument', 'Content-Length must be a non-negative integer.', 400);
  }
  if (length > MAX_PUT_BYTES) {
    throw new S3Error('EntityTooLarge', 'Your proposed upload exceeds the maximum allowed object size.', 400);
  }
  return length;
}

/**
 * Streams the body into `dest` (a new file) and checks length and digests. On any failure —
 * client gone mid-body, wrong length, digest mismatch — `dest` is removed before rethrowing, so a
 * caller only ever renames complete, verified files into place.
 */
export async function receiveToFile(
  req: IncomingMessage,
  dest: string,
  length: number,
  checks: BodyChecks,
): Promise<Received> {
  const md5 = createHash('md5');
  const sha256 = checks.payloadHash === UNSIGNED_PAYLOAD ? undefined : createHash('sha256');
  let size = 0;
  try {
    await pipeline(
      req,
      async function* (source: AsyncIterable<Buffer>) {
        for await (const chunk of source) {
          size += chunk.length;
          if (size > length) throw incomplete();
          md5.update(chunk);
          sha256?.update(chunk);
          yield chunk;
        }
      },
      createWriteStream(dest, { flags: 'wx' }),
    );
    if (size !== length) throw incomplete();
    const md5Hex = md5.digest('hex');
    checkDigests(md5Hex, sha256?.digest('hex'), checks);
    return { size, md5Hex };
  } catch (err) {
    await rm(dest, { force: true });
    throw err;
  }
}

/** Reads a small body (an XML document) fully, refusing more than `limit` bytes. */
export async function readSmallBody(req: IncomingMessage, limit: number, checks: BodyChecks): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      throw new S3Error('MaxMessageLengthExceeded', 'Your request was too big.', 400);
    }
    chunks.push(chunk);
  }
  const body = Buffer.concat(chunks);
  const sha256 = checks.payloadHash === UNSIGNED_PAYLOAD ? undefined : createHash('sha256').update(body).digest('hex');
  checkDigests(createHash('md5').update(body).digest('hex'), sha256, checks);
  return body;
}

function checkDigests(md5Hex: string, sha256Hex: string | undefined, checks: BodyChecks): void {
  if (sha256Hex !== undefined && sha256Hex !== checks.payloadHash) {
    throw new S3Error(
      'XAmzContentSHA256Mismatch',
      "The provided 'x-amz-content-sha256' header does not match what was computed.",
      400,
      { ClientComputedContentSHA256: checks.payloadHash, S3ComputedContentSHA256: sha256Hex },
    );
  }
  if (checks.contentMd5 !== undefined && checks.contentMd5 !== Buffer.from(md5Hex, 'hex').toString('base64')) {
    throw new S3Error('BadDigest', 'The Content-MD5 you specified did not match what we received.', 400);
  }
}

const incomplete = () =>
  new S3Error('IncompleteBody', 'You did not provide the number of bytes specified by the Content-Length HTTP header.', 400);
