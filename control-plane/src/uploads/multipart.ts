/**
 * Multipart uploads of one content-addressed blob (files over 100 MB): the control plane starts
 * the upload and presigns one URL per part; the client PUTs parts in parallel (retrying a failed
 * part), then completes — or aborts, so no half-object remains. The blob is recorded only after
 * the store accepted the completed object.
 */
import { CompleteMultipartRequest, CreateMultipartRequest, AbortMultipartRequest, MAX_PARTS, type CreateMultipartResponse } from '../../../shared/api/common.js';
import type { z } from 'zod';
import { ApiError } from '../errors.js';
import { blobKey } from '../storage/s3.js';
import { confirmBlobs, knownBlobs } from '../executions/blobs.js';
import type { AppContext } from '../context.js';

export async function createMultipart(c: AppContext, accountId: string, req: z.output<typeof CreateMultipartRequest>): Promise<CreateMultipartResponse> {
  const { maxFileBytes, presignSeconds } = c.get('config');
  if (req.size > maxFileBytes) throw tooBig(req.size, maxFileBytes);
  const partCount = Math.ceil(req.storedSize / req.partSize);
  if (partCount > MAX_PARTS) throw new ApiError('bad_request', `${partCount} parts of ${req.partSize} bytes exceed the ${MAX_PARTS}-part limit`, 'Use a larger partSize.');
  if ((await knownBlobs(c.get('db'), accountId, [req.sha256])).has(req.sha256)) return { uploadId: null, partSize: req.partSize, parts: [] };
  const store = c.get('store');
  const key = blobKey(accountId, req.sha256);
  const uploadId = await store.createMultipart(key);
  const parts = await Promise.all(
    Array.from({ length: partCount }, async (_, i) => {
      const p = await store.presignPart(key, uploadId, i + 1, presignSeconds);
      return { partNumber: i + 1, url: p.url, expiresAt: p.expiresAt };
    }),
  );
  return { uploadId, partSize: req.partSize, parts };
}

export async function completeMultipart(c: AppContext, accountId: string, req: z.output<typeof CompleteMultipartRequest>) {
  const store = c.get('store');
  const key = blobKey(accountId, req.sha256);
  const done = await store.completeMultipart(key, req.uploadId, req.parts);
  if (!done.ok) {
    await store.abortMultipart(key, req.uploadId);
    throw new ApiError('conflict', `the object store refused the uploaded parts: ${done.reason}`, 'The upload was aborted; upload the file again.');
  }
  await confirmBlobs(c.get('db'), store, accountId, [{ sha256: req.sha256, size: req.size, encoding: req.encoding, label: `blob ${req.sha256.slice(0, 12)}…` }]);
}

export async function abortMultipart(c: AppContext, accountId: string, req: z.output<typeof AbortMultipartRequest>) {
  await c.get('store').abortMultipart(blobKey(accountId, req.sha256), req.uploadId);
}

export function tooBig(size: number, max: number) {
  return new ApiError('payload_too_large', `file of ${size} bytes exceeds the ${max}-byte limit`, 'Split the input, or ask the operator to raise MAX_FILE_BYTES.');
}
