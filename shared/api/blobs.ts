/**
 * Client API: blobs on their own (/api/v1/blobs). Files are stored per account by content
 * (sha256) before anything names them, e.g. as `sha256` + `size` inputs of a webhook delivery.
 * The same two phases as an execution: ask which blobs need uploading (presigned PUTs for the
 * missing ones only), upload, then confirm (the control plane checks the objects and records them).
 */
import { z } from 'zod';
import { LIMITS } from '../limits.js';
import { BlobUpload, ContentEncoding, Sha256 } from './common.js';

/** Blobs per request. */
export const MAX_BLOBS_PER_REQUEST = 1000;

export const BlobDeclaration = z.strictObject({
  sha256: Sha256,
  /** Size of the original content (for gzip-stored blobs too). */
  size: z.number().int().min(0).max(LIMITS.maxFileBytes),
  /** How the uploader stores the bytes (gzip for text); `sha256`/`size` are of the original. */
  encoding: ContentEncoding.optional(),
});
export type BlobDeclaration = z.infer<typeof BlobDeclaration>;

const BlobList = z.array(BlobDeclaration).min(1).max(MAX_BLOBS_PER_REQUEST);

/** POST /api/v1/blobs: which of these does the account lack? */
export const CreateBlobUploadsRequest = z.strictObject({ blobs: BlobList });
export type CreateBlobUploadsRequest = z.input<typeof CreateBlobUploadsRequest>;

export const CreateBlobUploadsResponse = z.object({
  /**
   * One presigned PUT per blob the account does not have yet (deduplicated); none for blobs it
   * already stores. A blob whose stored bytes exceed MULTIPART_THRESHOLD_BYTES may go up through
   * /api/v1/uploads/multipart instead (which records it on completion).
   */
  uploads: z.array(BlobUpload),
});
export type CreateBlobUploadsResponse = z.infer<typeof CreateBlobUploadsResponse>;

/** POST /api/v1/blobs/confirm: after the uploads, check and record every blob. */
export const ConfirmBlobsRequest = z.strictObject({ blobs: BlobList });
export type ConfirmBlobsRequest = z.input<typeof ConfirmBlobsRequest>;

export const StoredBlob = z.object({
  sha256: Sha256,
  size: z.number().int(),
  /**
   * `uploaded`: found in the object store and recorded by this call; `known`: the account had it
   * already. Either way it is stored and can be named by sha256 (e.g. in a webhook delivery).
   */
  status: z.enum(['uploaded', 'known']),
});
export type StoredBlob = z.infer<typeof StoredBlob>;

/** Every declared blob, in request order (duplicates once). A blob never uploaded is a 409 instead. */
export const ConfirmBlobsResponse = z.object({ blobs: z.array(StoredBlob) });
export type ConfirmBlobsResponse = z.infer<typeof ConfirmBlobsResponse>;
