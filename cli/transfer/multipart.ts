/**
 * Multipart uploads of one blob (stored size over 100 MB), mirroring the runner's
 * (runner-agent/src/upload.ts): the control plane starts the upload and presigns one URL per part;
 * parts are PUT straight from disk, 4 at a time, each read as a byte range of the file (memory
 * stays at a few MB per part in flight whatever the file size) and each retried on its own; then
 * the control plane completes the upload and only then records the blob.
 *
 * Any failure after the start aborts the upload, so no half-object remains and nothing is
 * recorded. Uploads in flight are listed in `activeMultipart` so that Ctrl+C can abort them too.
 */
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { request } from 'undici';
import {
  MAX_PARTS,
  MULTIPART_PART_BYTES,
  type AbortMultipartRequest,
  type CompleteMultipartRequest,
  type ContentEncoding,
  type CreateMultipartRequest,
  type CreateMultipartResponse,
} from '../../shared/api/common.js';
import { IDEMPOTENT, withRetry, type RetryHooks } from '../api/retry.js';
import { TransferError, s3ErrorCode, storeUnreachable, transferFailure } from './errors.js';
import { STREAM_CHUNK } from './hash.js';
import { mapLimit } from './parallel.js';

/** The control-plane calls a multipart upload needs (RGridClient has them, with retries). */
export interface MultipartApi {
  createMultipart(body: CreateMultipartRequest): Promise<CreateMultipartResponse>;
  completeMultipart(body: CompleteMultipartRequest): Promise<unknown>;
  abortMultipart(body: AbortMultipartRequest): Promise<unknown>;
}

/** The bytes to store: the file itself, or its gzip-compressed temp copy. */
export interface StoredFile {
  /** sha256 and size of the original content (the blob's address). */
  sha256: string;
  size: number;
  encoding: ContentEncoding;
  /** The file whose bytes are uploaded, and how many there are. */
  path: string;
  storedSize: number;
  /** How the user named it (messages). */
  label: string;
}

export interface MultipartOptions extends RetryHooks {
  /** Parts in flight at once (default 4). */
  concurrency?: number;
  /** Counts bytes sent (negative after a failed try of a part: that part starts over). */
  count?: (bytes: number) => void;
  /**
   * Awaited after the last part and before completion; throwing aborts the upload. Used to check
   * that the file still has its declared sha256 (a hash pass that runs while the parts upload).
   */
  verify?: () => Promise<void>;
  /** Told once the parts are known (verbose output). */
  onStart?: (parts: number, partSize: number) => void;
}

/** Uploads being sent right now; `abortActiveMultipart` aborts them (Ctrl+C). */
const active = new Map<string, () => Promise<void>>();

/** Aborts every multipart upload in flight, waiting at most `timeoutMs`. */
export async function abortActiveMultipart(timeoutMs = 3000): Promise<void> {
  const aborts = [...active.values()].map((abort) => abort().catch(() => undefined));
  active.clear();
  await Promise.race([Promise.all(aborts), new Promise((r) => setTimeout(r, timeoutMs).unref())]);
}

/** S3 allows 10,000 parts: larger files get larger parts (whole MiB). */
export function partSizeFor(storedSize: number): number {
  const MiB = 1024 * 1024;
  return Math.max(MULTIPART_PART_BYTES, Math.ceil(storedSize / MAX_PARTS / MiB) * MiB);
}

async function* fileRange(path: string, start: number, length: number, count: (n: number) => void) {
  if (length === 0) return;
  for await (const chunk of createReadStream(path, { start, end: start + length - 1, highWaterMark: STREAM_CHUNK })) {
    count((chunk as Buffer).length);
    yield chunk as Buffer;
  }
}

async function putPart(url: string, file: StoredFile, partNumber: number, start: number, length: number, count: (n: number) => void, signal?: AbortSignal): Promise<string> {
  const what = `Uploading part ${partNumber} of ${file.label}`;
  let res;
  try {
    res = await request(url, {
      method: 'PUT',
      headers: { 'content-length': String(length) },
      body: Readable.from(fileRange(file.path, start, length, count), { objectMode: false }),
      signal,
    });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw storeUnreachable(what, url, err);
  }
  if (res.statusCode < 200 || res.statusCode >= 300) throw transferFailure(what, res.statusCode, await s3ErrorCode(res.body));
  await res.body.dump();
  const etag = res.headers.etag;
  if (typeof etag !== 'string' || !etag) throw new TransferError(`${what}: the object store answered without an ETag`, res.statusCode, true);
  return etag;
}

/**
 * Uploads `file` in parts. Resolves 'stored' when the control plane already had the blob (nothing
 * sent), 'uploaded' once the completed object is recorded.
 */
export async function uploadMultipart(api: MultipartApi, file: StoredFile, opts: MultipartOptions = {}): Promise<'uploaded' | 'stored'> {
  const count = opts.count ?? (() => {});
  const start = await api.createMultipart({ sha256: file.sha256, size: file.size, storedSize: file.storedSize, encoding: file.encoding, partSize: partSizeFor(file.storedSize) });
  if (start.uploadId === null) return 'stored';
  const uploadId = start.uploadId;
  const abort = () => api.abortMultipart({ sha256: file.sha256, uploadId }).then(() => undefined);
  const key = `${file.sha256}:${uploadId}`;
  active.set(key, abort);
  opts.onStart?.(start.parts.length, start.partSize);
  try {
    const etags = await mapLimit(start.parts, opts.concurrency ?? 4, async (part) => {
      const offset = (part.partNumber - 1) * start.partSize;
      const length = Math.min(start.partSize, file.storedSize - offset);
      return withRetry(
        IDEMPOTENT,
        async () => {
          // Bytes of a failed try are taken back (the retry sends the whole part again); reads
          // that land after the failure are not counted at all.
          let sent = 0;
          let live = true;
          const counter = (n: number) => {
            if (!live) return;
            sent += n;
            count(n);
          };
          try {
            return { partNumber: part.partNumber, etag: await putPart(part.url, file, part.partNumber, offset, length, counter, opts.signal) };
          } catch (err) {
            live = false;
            count(-sent);
            throw err;
          }
        },
        opts,
      );
    });
    await opts.verify?.();
    await complete(api, file, uploadId, etags);
    return 'uploaded';
  } catch (err) {
    // Bounded: the upload failed anyway, and the bucket's lifecycle rule is the backstop.
    await Promise.race([abort().catch(() => undefined), new Promise((r) => setTimeout(r, 5000).unref())]);
    throw err;
  } finally {
    active.delete(key);
  }
}

async function complete(api: MultipartApi, file: StoredFile, uploadId: string, parts: { partNumber: number; etag: string }[]): Promise<void> {
  try {
    await api.completeMultipart({ sha256: file.sha256, size: file.size, encoding: file.encoding, uploadId, parts });
  } catch (err) {
    // A completion whose answer was lost and that was sent again finds the upload gone (409),
    // although the first one stored and recorded the blob. Asking to start an upload tells:
    // `uploadId: null` means the blob is recorded.
    const probe = await api.createMultipart({ sha256: file.sha256, size: file.size, storedSize: file.storedSize, encoding: file.encoding, partSize: partSizeFor(file.storedSize) }).catch(() => undefined);
    if (probe?.uploadId === null) return;
    if (probe?.uploadId) await api.abortMultipart({ sha256: file.sha256, uploadId: probe.uploadId }).catch(() => undefined);
    throw err;
  }
}
