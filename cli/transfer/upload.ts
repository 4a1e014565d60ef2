/**
 * Uploads the blobs the control plane asked for, straight to the object store through presigned
 * URLs (the control plane never sees file bytes). Nothing is ever held whole in memory:
 *
 * - text inputs declared `encoding: 'gzip'` are compressed to a temp file first (encoding.ts);
 * - stored sizes over 100 MB go up in parallel parts (multipart.ts), aborted on failure;
 * - the rest is one PUT streamed from disk with an explicit Content-Length (S3 refuses chunked
 *   PUTs), several files at once, each retried on transient failures.
 *
 * A file is checked against its declared sha256 while it is read (as it streams, while it is
 * compressed, or by a hash pass beside the parts): if it changed since it was hashed for the create
 * request, the upload is abandoned rather than stored under the wrong content address.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { MULTIPART_THRESHOLD_BYTES, type BlobUpload, type ContentEncoding } from '../../shared/api/common.js';
import { CliError } from '../errors.js';
import { IDEMPOTENT, withRetry, type RetryHooks } from '../api/retry.js';
import { mapLimit } from './parallel.js';
import { s3ErrorCode, storeUnreachable, transferFailure } from './errors.js';
import { gzipToTemp } from './encoding.js';
import { STREAM_CHUNK, sha256File } from './hash.js';
import { uploadMultipart, type MultipartApi, type StoredFile } from './multipart.js';
import { Progress } from './progress.js';

/** S3's largest single PUT. */
const MAX_SINGLE_PUT_BYTES = 5 * 1024 ** 3;

export interface LocalBlob {
  sha256: string;
  size: number;
  /** Absolute path of the local file. */
  path: string;
  /** How the user named it (messages). */
  label: string;
  /** How to store it (declared on the input at create); identity when absent. */
  encoding?: ContentEncoding;
}

/** One PUT of the original file, verified against its sha256 as it streams. */
async function putVerified(upload: BlobUpload, blob: LocalBlob, count: (n: number) => void, signal?: AbortSignal): Promise<void> {
  let changed = false;
  // The last chunk is held back until the whole file has been hashed: if the bytes no longer
  // match the declared sha256, the body ends early, the store discards the incomplete object,
  // and nothing is ever stored under a content address it does not have.
  async function* body() {
    const hash = createHash('sha256');
    let size = 0;
    let held: Buffer | undefined;
    for await (const chunk of createReadStream(blob.path, { highWaterMark: STREAM_CHUNK })) {
      const buf = chunk as Buffer;
      hash.update(buf);
      size += buf.length;
      if (held) {
        count(held.length);
        yield held;
      }
      held = buf;
    }
    if (size !== blob.size || hash.digest('hex') !== blob.sha256) {
      changed = true;
      throw changedWhileUploading(blob);
    }
    if (held) {
      count(held.length);
      yield held;
    }
  }
  let res;
  try {
    res = await request(upload.url, {
      method: 'PUT',
      headers: { ...upload.headers, 'content-length': String(blob.size) },
      body: Readable.from(body(), { objectMode: false }),
      signal,
    });
  } catch (err) {
    if (changed) throw changedWhileUploading(blob);
    if ((err as Error).name === 'AbortError') throw err;
    throw storeUnreachable(`Uploading ${blob.label}`, upload.url, err);
  }
  if (res.statusCode < 200 || res.statusCode >= 300) {
    const code = await s3ErrorCode(res.body);
    throw transferFailure(`Uploading ${blob.label}`, res.statusCode, code);
  }
  await res.body.dump();
}

/** One PUT of a file this process wrote itself (a compressed copy): nothing to verify. */
async function putFile(upload: BlobUpload, file: StoredFile, count: (n: number) => void, signal?: AbortSignal): Promise<void> {
  async function* body() {
    for await (const chunk of createReadStream(file.path, { highWaterMark: STREAM_CHUNK })) {
      count((chunk as Buffer).length);
      yield chunk as Buffer;
    }
  }
  let res;
  try {
    res = await request(upload.url, {
      method: 'PUT',
      headers: { ...upload.headers, 'content-length': String(file.storedSize) },
      body: file.storedSize === 0 ? '' : Readable.from(body(), { objectMode: false }),
      signal,
    });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw storeUnreachable(`Uploading ${file.label}`, upload.url, err);
  }
  if (res.statusCode < 200 || res.statusCode >= 300) throw transferFailure(`Uploading ${file.label}`, res.statusCode, await s3ErrorCode(res.body));
  await res.body.dump();
}

function changedWhileUploading(blob: LocalBlob): CliError {
  return new CliError(`${blob.label} changed while it was being uploaded`, { hint: 'Wait until nothing writes to the file, then run the command again.' });
}

export interface UploadOptions extends RetryHooks {
  /** Files in flight at once (default 4). */
  concurrency?: number;
  progress?: Progress;
  /** Progress of compressing text files before their upload. */
  compressProgress?: Progress;
  /**
   * The control plane's multipart calls (RGridClient). Without them every file goes up in one PUT,
   * which S3 limits to 5 GB.
   */
  multipart?: MultipartApi;
  /** Told how a file is sent (verbose output). */
  onNote?: (message: string) => void;
}

/** Retries one upload as a whole on transient failures, keeping the progress count honest. */
function retried(count: (n: number) => void, opts: UploadOptions, send: (count: (n: number) => void) => Promise<void>): Promise<void> {
  return withRetry(
    IDEMPOTENT,
    async () => {
      // A retry starts the file over: the failed try's bytes are taken back, and reads that
      // land after the failure are not counted.
      let counted = 0;
      let live = true;
      try {
        await send((n) => {
          if (!live) return;
          counted += n;
          count(n);
        });
      } catch (err) {
        live = false;
        count(-counted);
        throw err;
      }
    },
    opts,
  );
}

async function uploadOne(upload: BlobUpload, blob: LocalBlob, opts: UploadOptions, progress: Progress, compressProgress: Progress): Promise<void> {
  const encoding = blob.encoding ?? 'identity';
  const compressed = encoding === 'gzip' ? await gzipToTemp(blob.path, blob, compressProgress.track(blob.size)) : undefined;
  try {
    const stored: StoredFile = { sha256: blob.sha256, size: blob.size, encoding, path: compressed?.path ?? blob.path, storedSize: compressed?.size ?? blob.size, label: blob.label };
    const count = progress.track(stored.storedSize);
    if (opts.multipart && stored.storedSize > MULTIPART_THRESHOLD_BYTES) {
      // The original file is re-hashed beside the parts (they are read out of order, so they
      // cannot be hashed as they go); a compressed copy was checked while it was made.
      const check = compressed ? undefined : sha256File(blob.path);
      check?.catch(() => undefined); // awaited in verify(); no unhandled rejection meanwhile
      await uploadMultipart(opts.multipart, stored, {
        ...opts,
        count,
        verify: check && (async () => {
          const d = await check;
          if (d.size !== blob.size || d.sha256 !== blob.sha256) throw changedWhileUploading(blob);
        }),
        onStart: (parts, partSize) => opts.onNote?.(`Uploading ${blob.label} in ${parts} parts of ${Math.round(partSize / (1024 * 1024))} MB${compressed ? ' (gzip)' : ''}`),
      });
      return;
    }
    if (stored.storedSize > MAX_SINGLE_PUT_BYTES) {
      throw new CliError(`${blob.label} is larger than 5 GB, the largest single upload`, { hint: 'This caller does not do multipart uploads; use `rgrid run`, which does.' });
    }
    if (compressed) await retried(count, opts, (c) => putFile(upload, stored, c, opts.signal));
    else await retried(count, opts, (c) => putVerified(upload, blob, c, opts.signal));
  } finally {
    await compressed?.dispose();
  }
}

/** Uploads each requested blob once; returns the number of files and bytes (original sizes) sent. */
export async function uploadBlobs(uploads: BlobUpload[], blobs: Map<string, LocalBlob>, opts: UploadOptions = {}): Promise<{ files: number; bytes: number }> {
  const progress = opts.progress ?? new Progress({ verb: 'Uploading' });
  const compressProgress = opts.compressProgress ?? new Progress({ verb: 'Compressing' });
  const unique = [...new Map(uploads.map((u) => [u.sha256, u])).values()];
  let bytes = 0;
  try {
    await mapLimit(unique, opts.concurrency ?? 4, async (upload) => {
      const blob = blobs.get(upload.sha256);
      if (!blob) throw new CliError(`The control plane asked for a blob this CLI did not declare (${upload.sha256.slice(0, 12)}…)`);
      await uploadOne(upload, blob, opts, progress, compressProgress);
      bytes += blob.size;
    });
  } catch (err) {
    compressProgress.clear();
    progress.clear();
    throw err;
  }
  compressProgress.finish();
  progress.finish();
  return { files: unique.length, bytes };
}
