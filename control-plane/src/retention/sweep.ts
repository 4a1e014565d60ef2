/**
 * Retention: artifacts expire `ARTIFACT_RETENTION_DAYS` after they are recorded. The sweep (Worker
 * cron, or on demand with a clock the caller controls) marks expired artifacts deleted, then
 * deletes blobs no longer needed: a blob is kept while any unexpired artifact references it or
 * while it was used (uploaded, or submitted as an input) within the retention period.
 */
import { and, eq, inArray, isNull, lte, lt, sql } from 'drizzle-orm';
import { schema, type Db } from '../db/client.js';
import type { ObjectStore } from '../storage/s3.js';
import { chunk } from '../executions/blobs.js';

export interface SweepResult {
  artifactsExpired: number;
  blobsDeleted: number;
  lifecycleRule: boolean;
}

/** The bucket rule that matches what the sweeper cannot see: parts of abandoned multipart uploads. */
export const LIFECYCLE_XML =
  '<LifecycleConfiguration><Rule><ID>rgrid-abort-incomplete-multipart</ID><Status>Enabled</Status><Filter><Prefix>blobs/</Prefix></Filter>' +
  '<AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule></LifecycleConfiguration>';

export async function sweep(db: Db, store: ObjectStore, now: number, retentionDays: number, limit = 1000): Promise<SweepResult> {
  const a = schema.artifacts;
  const b = schema.blobs;
  const expired = await db
    .select({ id: a.id })
    .from(a)
    .where(and(isNull(a.deletedAt), lte(a.expiresAt, now)))
    .limit(limit)
    .all();
  for (const part of chunk(expired.map((e) => e.id))) {
    await db.update(a).set({ deletedAt: now }).where(inArray(a.id, part));
  }

  const cutoff = now - retentionDays * 86400_000;
  const candidates = await db
    .select({ accountId: b.accountId, sha256: b.sha256, objectKey: b.objectKey })
    .from(b)
    .where(
      and(
        isNull(b.deletedAt),
        lt(b.lastUsedAt, cutoff),
        sql`NOT EXISTS (SELECT 1 FROM ${a} WHERE ${a.accountId} = ${b.accountId} AND ${a.sha256} = ${b.sha256} AND ${a.deletedAt} IS NULL AND ${a.expiresAt} > ${now})`,
      ),
    )
    .limit(limit)
    .all();
  let blobsDeleted = 0;
  for (const blob of candidates) {
    // Mark first: a concurrent create then sees the blob as missing and asks for a new upload.
    await db.update(b).set({ deletedAt: now }).where(and(eq(b.accountId, blob.accountId), eq(b.sha256, blob.sha256), isNull(b.deletedAt), lt(b.lastUsedAt, cutoff)));
    await store.delete(blob.objectKey);
    blobsDeleted++;
  }
  const lifecycleRule = await store.putLifecycle(LIFECYCLE_XML).catch(() => false);
  return { artifactsExpired: expired.length, blobsDeleted, lifecycleRule };
}

