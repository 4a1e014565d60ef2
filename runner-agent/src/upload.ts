/**
 * Output uploads with bounded memory: text is gzip-compressed to a temporary file first (a
 * presigned PUT needs its length up front), files over 100 MB go up in parallel parts with each
 * part retried, and a multipart upload that fails is aborted so no half-object remains.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { request } from 'undici';
import { MULTIPART_PART_BYTES, MULTIPART_THRESHOLD_BYTES, type PresignedRequest } from '../../shared/api/common.js';
import type { JobRef, RunnerApi } from './api.js';
import { withRetry } from './retry.js';
import { TransferError, isTransientTransferError, summarizeErrorBody } from './files.js';

const COMPRESSIBLE = /^(text\/|application\/(json|x-ndjson|xml|yaml|javascript))/;
const MIN_COMPRESS_BYTES = 1024;

export function shouldCompress(contentType: string, size: number): boolean {
  return size >= MIN_COMPRESS_BYTES && COMPRESSIBLE.test(contentType);
}

export async function gzipFile(src: string, dest: string): Promise<number> {
  await pipeline(createReadStream(src), createGzip({ level: 6 }), createWriteStream(dest));
  return (await stat(dest)).size;
}

/** Throttled progress lines for big transfers: percent, MB/s and ETA. */
export function progressReporter(label: string, total: number, log: (line: string) => void, everyMs = 2000) {
  const start = Date.now();
  let last = 0;
  let done = 0;
  return {
    add(n: number) {
      done += n;
      const now = Date.now();
      if (now - last < everyMs && done < total) return;
      last = now;
      const secs = Math.max(0.001, (now - start) / 1000);
      const rate = done / secs;
      const eta = rate > 0 ? Math.round((total - done) / rate) : 0;
      log(`[rgrid] ${label}: ${Math.floor((done / total) * 100)}% of ${(total / 1e6).toFixed(1)} MB, ${(rate / 1e6).toFixed(1)} MB/s, ETA ${eta}s`);
    },
  };
}

async function putStream(url: string, headers: Record<string, string>, path: string, start: number, length: number, onBytes?: (n: number) => void, signal?: AbortSignal): Promise<string> {
  const body = length === 0 ? '' : Readable.from(createReadStream(path, { start, end: start + length - 1 }).on('data', (c) => onBytes?.((c as Buffer).length)));
  const res = await request(url, { method: 'PUT', headers: { ...headers, 'content-length': String(length) }, body, signal });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new TransferError(`upload answered ${res.statusCode}: ${summarizeErrorBody(text)}`, res.statusCode);
  return String(res.headers.etag ?? '');
}

export interface StoredFile {
  sha256: string;
  /** Original size. */
  size: number;
  encoding: 'identity' | 'gzip';
  /** The bytes to upload (the gzip temp file, or the file itself). */
  storedPath: string;
  storedSize: number;
  label: string;
}

/** One presigned PUT (small files); store outages, 429 and 5xx are retried for 60 s. */
export async function uploadSingle(file: StoredFile, upload: PresignedRequest, log: (l: string) => void, signal?: AbortSignal): Promise<void> {
  const progress = file.storedSize > 10 * 1024 * 1024 ? progressReporter(`uploading ${file.label}`, file.storedSize, log) : undefined;
  await withRetry(() => putStream(upload.url, upload.headers, file.storedPath, 0, file.storedSize, progress && ((n) => progress.add(n)), signal), { budgetMs: 60_000, signal, retryIf: isTransientTransferError });
}

/** Parts in parallel through the runner's multipart endpoints; aborted on failure. */
export async function uploadMultipart(api: RunnerApi, executionId: string, ref: JobRef, file: StoredFile, log: (l: string) => void, signal?: AbortSignal): Promise<void> {
  const start = await withRetry(
    () => api.multipartCreate(executionId, { attempt: ref.attempt, shard: ref.shard, sha256: file.sha256, size: file.size, storedSize: file.storedSize, encoding: file.encoding, partSize: MULTIPART_PART_BYTES }),
    { budgetMs: 60_000, signal },
  );
  if (!start.uploadId) return; // already stored
  const uploadId = start.uploadId;
  const progress = progressReporter(`uploading ${file.label}`, file.storedSize, log);
  try {
    const etags: { partNumber: number; etag: string }[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(4, start.parts.length) }, async () => {
        while (next < start.parts.length) {
          const part = start.parts[next++]!;
          const offset = (part.partNumber - 1) * start.partSize;
          const length = Math.min(start.partSize, file.storedSize - offset);
          let sent = 0;
          const etag = await withRetry(
            async () => {
              sent = 0;
              return putStream(part.url, {}, file.storedPath, offset, length, (n) => (sent += n), signal);
            },
            { budgetMs: 120_000, signal, retryIf: isTransientTransferError, onRetry: (err) => log(`[rgrid] part ${part.partNumber} of ${file.label} failed (${(err as Error).message}); retrying`) },
          );
          progress.add(sent);
          etags.push({ partNumber: part.partNumber, etag });
        }
      }),
    );
    await withRetry(() => api.multipartComplete(executionId, { attempt: ref.attempt, shard: ref.shard, sha256: file.sha256, size: file.size, encoding: file.encoding, uploadId, parts: etags }), { budgetMs: 60_000, signal });
  } catch (err) {
    await api.multipartAbort(executionId, { attempt: ref.attempt, shard: ref.shard, sha256: file.sha256, uploadId }).catch(() => undefined);
    throw err;
  }
}

export const isMultipart = (storedSize: number) => storedSize > MULTIPART_THRESHOLD_BYTES;
