/**
 * Client API: storing files on their own (/api/v1/blobs), so that later requests can name them
 * by sha256 alone — a webhook delivery's `sha256` + `size` inputs are the reason this exists.
 *
 * The same two phases as an execution, with the same helpers: `POST /` presigns PUTs for the
 * blobs the account lacks (uploadsFor; big files may use /api/v1/uploads/multipart instead),
 * `POST /confirm` HEAD-checks and records them (confirmBlobs). Nothing is recorded before the
 * object store has the object, so a sha256 that confirm accepted can always be used as an input.
 */
import { Hono } from 'hono';
import { ConfirmBlobsRequest, CreateBlobUploadsRequest, type BlobDeclaration, type ConfirmBlobsResponse, type CreateBlobUploadsResponse } from '../../../shared/api/blobs.js';
import { ApiError } from '../errors.js';
import { readJson } from '../validate.js';
import { confirmBlobs, knownBlobs } from '../executions/blobs.js';
import { uploadsFor } from '../executions/service.js';
import type { AppContext, AppEnv } from '../context.js';

export const blobRoutes = new Hono<AppEnv>();

/** The operator's MAX_FILE_BYTES may be lower than the contract's bound. */
function checkSizes(c: AppContext, blobs: BlobDeclaration[]): void {
  const { maxFileBytes } = c.get('config');
  const i = blobs.findIndex((b) => b.size > maxFileBytes);
  if (i >= 0) {
    throw new ApiError('payload_too_large', `blobs[${i}] (sha256 ${blobs[i]!.sha256.slice(0, 12)}…) has ${blobs[i]!.size} bytes; the limit is ${maxFileBytes}`, 'Split the file, or ask the operator to raise MAX_FILE_BYTES.', { index: i, sha256: blobs[i]!.sha256 });
  }
}

blobRoutes.post('/', async (c) => {
  const { blobs } = await readJson(c, CreateBlobUploadsRequest);
  checkSizes(c, blobs);
  const body: CreateBlobUploadsResponse = { uploads: await uploadsFor(c, blobs.map((b) => b.sha256)) };
  return c.json(body);
});

blobRoutes.post('/confirm', async (c) => {
  const { blobs } = await readJson(c, ConfirmBlobsRequest);
  checkSizes(c, blobs);
  const unique = [...new Map(blobs.map((b) => [b.sha256, b])).values()];
  const db = c.get('db');
  const { accountId } = c.get('caller');
  // Asked before confirming, which records the new ones: afterwards every blob would be known.
  const known = await knownBlobs(db, accountId, unique.map((b) => b.sha256));
  const labels = unique.map((b) => `blob ${b.sha256.slice(0, 12)}…`);
  try {
    await confirmBlobs(db, c.get('store'), accountId, unique.map((b, i) => ({ sha256: b.sha256, size: b.size, encoding: b.encoding, label: labels[i]! })));
  } catch (err) {
    if (!(err instanceof ApiError) || err.code !== 'conflict') throw err;
    // confirmBlobs' hint speaks of executions; name the blob in full and say how to upload it here.
    const i = labels.findIndex((l) => err.message.startsWith(`${l} `));
    const blob = unique[i];
    throw new ApiError(
      'conflict',
      blob ? `${err.message.replace(/ \(sha256 [0-9a-f]+…\)$/, '')} (sha256 ${blob.sha256})` : err.message,
      'PUT it with the URL from POST /api/v1/blobs (or let `rgrid upload FILE` do both steps), then confirm again.',
      blob ? { sha256: blob.sha256, size: blob.size } : err.details,
    );
  }
  const body: ConfirmBlobsResponse = { blobs: unique.map((b) => ({ sha256: b.sha256, size: b.size, status: known.has(b.sha256) ? 'known' : 'uploaded' })) };
  return c.json(body);
});
