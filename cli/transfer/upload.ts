/**
 * Uploads the blobs the control plane asked for, straight to the object store through presigned
 * PUTs (the control plane never sees file bytes). Bodies are streamed from disk with an explicit
 * Content-Length (S3 refuses chunked PUTs), several files at once, each retried on transient
 * failures. The file is hashed again while it streams: if it changed since it was hashed for the
 * create request, the upload is abandoned rather than stored under the wrong content address.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { request } from 'undici';
import type { BlobUpload } from '../../shared/api/common.js';
import { CliError } from '../errors.js';
import { IDEMPOTENT, withRetry, type RetryHooks } from '../api/retry.js';
import { mapLimit } from './parallel.js';
import { s3ErrorCode, storeUnreachable, transferFailure } from './errors.js';
import { Progress } from './progress.js';

export interface LocalBlob {
  sha256: string;
  size: number;
  /** Absolute path of the local file. */
  path: string;
  /** How the user named it (messages). */
  label: string;
}

async function putOnce(upload: BlobUpload, blob: LocalBlob, count: (n: number) => void, signal?: AbortSignal): Promise<void> {
  let changed = false;
  // The last chunk is held back until the whole file has been hashed: if the bytes no longer
  // match the declared sha256, the body ends early, the store discards the incomplete object,
  // and nothing is ever stored under a content address it does not have.
  async function* body() {
    const hash = createHash('sha256');
    let size = 0;
    let held: Buffer | undefined;
    for await (const chunk of createReadStream(blob.path, { highWaterMark: 1024 * 1024 })) {
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

function changedWhileUploading(blob: LocalBlob): CliError {
  return new CliError(`${blob.label} changed while it was being uploaded`, { hint: 'Wait until nothing writes to the file, then run the command again.' });
}

export interface UploadOptions extends RetryHooks {
  concurrency?: number;
  progress?: Progress;
}

/** Uploads each requested blob once; returns the number of files and bytes sent. */
export async function uploadBlobs(uploads: BlobUpload[], blobs: Map<string, LocalBlob>, opts: UploadOptions = {}): Promise<{ files: number; bytes: number }> {
  const progress = opts.progress ?? new Progress({ verb: 'Uploading' });
  const unique = [...new Map(uploads.map((u) => [u.sha256, u])).values()];
  let bytes = 0;
  try {
    await mapLimit(unique, opts.concurrency ?? 4, async (upload) => {
      const blob = blobs.get(upload.sha256);
      if (!blob) throw new CliError(`The control plane asked for a blob this CLI did not declare (${upload.sha256.slice(0, 12)}…)`);
      const count = progress.track(blob.size);
      await withRetry(
        IDEMPOTENT,
        async () => {
          let counted = 0;
          try {
            await putOnce(upload, blob, (n) => ((counted += n), count(n)), opts.signal);
          } catch (err) {
            count(-counted); // a retry starts the file over
            throw err;
          }
        },
        opts,
      );
      bytes += blob.size;
    });
  } catch (err) {
    progress.clear();
    throw err;
  }
  progress.finish();
  return { files: unique.length, bytes };
}
