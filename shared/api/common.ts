/** Schema fragments shared by the client API and the runner protocol. */
import { z } from 'zod';
import { LIMITS, RUNTIME_NAMES } from '../limits.js';
import { SHA256_HEX } from '../hashing.js';

export const Sha256 = z.string().regex(SHA256_HEX, 'expected a lowercase hex sha256 (64 characters)');
export const Timestamp = z.string().describe('ISO 8601 time in UTC');
export const Runtime = z.enum(RUNTIME_NAMES);

/**
 * A path relative to the job's /work directory. Forward slashes; no empty, "." or ".." segments;
 * no leading slash, backslash, NUL or control characters. The runner checks again on disk.
 */
export const RelativePath = z
  .string()
  .min(1)
  .max(LIMITS.maxPathBytes)
  .refine((p) => !p.startsWith('/') && !/[\\\u0000-\u001f]/.test(p), 'must be a relative path without backslashes or control characters')
  .refine((p) => p.split('/').every((s) => s !== '' && s !== '.' && s !== '..'), 'must not contain empty, "." or ".." segments');

/**
 * A file name without directories (scripts, webhook inputs): no slash, backslash or control
 * characters, and not "." or ".." (which name directories, not files).
 */
export const FileName = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[^/\\\u0000-\u001f]+$/, 'a file name, without directories')
  .refine((n) => n !== '.' && n !== '..', '"." and ".." are not file names');

/**
 * The first pair of paths where one is a file the other would have to be under (e.g. "a" and
 * "a/b"): both cannot exist in one directory tree, so such a list is refused at create time
 * instead of failing on the runner.
 */
export function nestedPathConflict(paths: readonly string[]): [file: string, under: string] | null {
  const all = new Set(paths);
  for (const p of paths) {
    const segments = p.split('/');
    for (let i = 1; i < segments.length; i++) {
      const parent = segments.slice(0, i).join('/');
      if (all.has(parent)) return [parent, p];
    }
  }
  return null;
}

export const ContentEncoding = z.enum(['identity', 'gzip']);
export type ContentEncoding = z.infer<typeof ContentEncoding>;

/** A file by content: what the client declares and what the server records. */
export const FileRef = z.strictObject({
  path: RelativePath,
  sha256: Sha256,
  size: z.number().int().min(0).max(LIMITS.maxFileBytes),
  contentType: z.string().max(200).optional(),
});
export type FileRef = z.infer<typeof FileRef>;

export const StringMap = (maxPairs: number, maxValue: number) =>
  z
    .record(z.string().min(1).max(128).regex(/^[A-Za-z_][A-Za-z0-9_.-]*$/, 'keys are letters, digits, _ . - and start with a letter or _'), z.string().max(maxValue))
    .refine((m) => Object.keys(m).length <= maxPairs, `at most ${maxPairs} entries`);

/** A presigned request the client performs itself; the control plane never proxies bytes. */
export const PresignedRequest = z.object({
  method: z.enum(['PUT', 'GET']),
  url: z.string().url(),
  headers: z.record(z.string(), z.string()),
  expiresAt: Timestamp,
});
export type PresignedRequest = z.infer<typeof PresignedRequest>;

export const BlobUpload = PresignedRequest.extend({ sha256: Sha256 });
export type BlobUpload = z.infer<typeof BlobUpload>;

export const Pagination = z.object({
  limit: z.coerce.number().int().min(1).max(LIMITS.maxPageSize).optional(),
  cursor: z.string().max(200).optional(),
});
export type Runtime = z.infer<typeof Runtime>;

/** Files above this size upload in parts (S3 multipart), each part through its own presigned URL. */
export const MULTIPART_THRESHOLD_BYTES = 100 * 1024 * 1024;
export const MULTIPART_PART_BYTES = 16 * 1024 * 1024;
export const MAX_PARTS = 10_000;

export const CreateMultipartRequest = z.strictObject({
  sha256: Sha256,
  /** Size of the original content. */
  size: z.number().int().min(1),
  /** Size of the bytes that will be stored (differs from size when gzip-compressed; a bound is fine). */
  storedSize: z.number().int().min(1),
  encoding: ContentEncoding.default('identity'),
  partSize: z.number().int().min(5 * 1024 * 1024).max(512 * 1024 * 1024).default(MULTIPART_PART_BYTES),
});
export type CreateMultipartRequest = z.input<typeof CreateMultipartRequest>;

export const CreateMultipartResponse = z.object({
  /** null when the blob is already stored: nothing to upload. */
  uploadId: z.string().nullable(),
  partSize: z.number().int(),
  parts: z.array(z.object({ partNumber: z.number().int(), url: z.string().url(), expiresAt: Timestamp })),
});
export type CreateMultipartResponse = z.infer<typeof CreateMultipartResponse>;

export const CompleteMultipartRequest = z.strictObject({
  sha256: Sha256,
  size: z.number().int().min(1),
  encoding: ContentEncoding.default('identity'),
  uploadId: z.string().min(1).max(1024),
  parts: z.array(z.strictObject({ partNumber: z.number().int().min(1).max(MAX_PARTS), etag: z.string().min(1).max(200) })).min(1).max(MAX_PARTS),
});
export type CompleteMultipartRequest = z.input<typeof CompleteMultipartRequest>;

export const AbortMultipartRequest = z.strictObject({ sha256: Sha256, uploadId: z.string().min(1).max(1024) });
export type AbortMultipartRequest = z.input<typeof AbortMultipartRequest>;
