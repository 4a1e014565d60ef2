/**
 * Content-addressed blobs per account. A blob row exists only once the object store has
 * confirmed the object (HEAD with the declared size), so "which blobs does the account lack" is
 * one indexed query and is exactly the input cache.
 */
import { and, eq, inArray, isNull, sql } from 'drizzle-orm';
import { schema, type Db } from '../db/client.js';
import { blobKey, type ObjectStore } from '../storage/s3.js';
import { ApiError } from '../errors.js';

/** D1 caps bound parameters per statement; IN lists are chunked below it. */
const IN_CHUNK = 90;

export function chunk<T>(xs: T[], size = IN_CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += size) out.push(xs.slice(i, i + size));
  return out;
}

export async function knownBlobs(db: Db, accountId: string, shas: string[]): Promise<Set<string>> {
  return new Set((await blobEncodings(db, accountId, shas)).keys());
}

/** The account's stored (not deleted) blobs among `shas`, with the encoding each is stored in. */
export async function blobEncodings(db: Db, accountId: string, shas: string[]): Promise<Map<string, 'identity' | 'gzip'>> {
  const found = new Map<string, 'identity' | 'gzip'>();
  for (const part of chunk([...new Set(shas)])) {
    const rows = await db
      .select({ sha256: schema.blobs.sha256, encoding: schema.blobs.encoding })
      .from(schema.blobs)
      .where(and(eq(schema.blobs.accountId, accountId), inArray(schema.blobs.sha256, part), isNull(schema.blobs.deletedAt)))
      .all();
    for (const r of rows) found.set(r.sha256, r.encoding);
  }
  return found;
}

export interface DeclaredBlob {
  sha256: string;
  size: number;
  /** How the uploader stored the bytes; a gzip object's stored size differs from `size`. */
  encoding?: 'identity' | 'gzip';
  /** Name used in error messages (input path, output path). */
  label: string;
}

/**
 * Makes sure every declared blob is stored: known rows pass; the rest are checked in the object
 * store and recorded. Throws a 409 naming the first blob that was never uploaded. Returns how each
 * blob is stored: for a blob that existed before, its recorded encoding, whatever the caller
 * declared (the bytes were stored by whoever uploaded them first).
 */
export async function confirmBlobs(
  db: Db,
  store: ObjectStore,
  accountId: string,
  declared: DeclaredBlob[],
  missingHint = 'Upload it with the presigned URL from the create response, then submit again.',
): Promise<Map<string, 'identity' | 'gzip'>> {
  const stored = await blobEncodings(db, accountId, declared.map((d) => d.sha256));
  const known = new Set(stored.keys());
  // Using a blob keeps it: the retention sweep only deletes blobs unused for the retention period.
  for (const part of chunk([...known])) {
    await db.update(schema.blobs).set({ lastUsedAt: Date.now() }).where(and(eq(schema.blobs.accountId, accountId), inArray(schema.blobs.sha256, part)));
  }
  const pending = new Map<string, DeclaredBlob>();
  for (const d of declared) if (!known.has(d.sha256)) pending.set(d.sha256, d);
  const confirmed: (typeof schema.blobs.$inferInsert)[] = [];
  await Promise.all(
    [...pending.values()].map(async (d) => {
      const key = blobKey(accountId, d.sha256);
      const head = await store.head(key);
      if (!head) {
        throw new ApiError('conflict', `${d.label} was not uploaded (sha256 ${d.sha256.slice(0, 12)}…)`, missingHint);
      }
      if ((d.encoding ?? 'identity') === 'identity' && head.size !== d.size) {
        throw new ApiError('conflict', `${d.label} was uploaded with ${head.size} bytes, but ${d.size} were declared`, 'Upload the file again with the presigned URL.');
      }
      confirmed.push({ accountId, sha256: d.sha256, size: d.size, encoding: d.encoding ?? 'identity', objectKey: key });
      stored.set(d.sha256, d.encoding ?? 'identity');
    }),
  );
  for (const part of chunk(confirmed, 10)) {
    await db.insert(schema.blobs).values(part).onConflictDoUpdate({
      target: [schema.blobs.accountId, schema.blobs.sha256],
      // A blob deleted by the retention sweep and uploaded again is stored as it was uploaded now.
      set: { deletedAt: null, lastUsedAt: Date.now(), encoding: sql`excluded.encoding` },
    });
  }
  return stored;
}
