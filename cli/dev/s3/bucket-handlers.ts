// Bucket-level operations: ListObjectsV2, HeadBucket and the lifecycle configuration.
//
// Lifecycle rules are stored and returned verbatim but NOT enforced: this store never expires
// objects by itself. RGrid's control plane runs its own retention sweeper (which is what deletes
// artifacts locally and in tests); in production MinIO also applies the rules.
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readSmallBody } from './body.js';
import { S3Error, malformedXml } from './errors.js';
import { bodyChecks, send, sendXml, type Ctx } from './http.js';
import { listObjectsV2Xml, listParams } from './list.js';
import { queryParam } from './target.js';

export function listObjectsV2(ctx: Ctx): void {
  const params = listParams((name) => queryParam(ctx.target, name));
  sendXml(ctx.res, listObjectsV2Xml(ctx.bucket.name, ctx.bucket.objects.all(), params));
}

export function headBucket(ctx: Ctx): void {
  send(ctx.res, 200, { 'x-amz-bucket-region': ctx.bucket.region });
}

const lifecyclePath = (ctx: Ctx) => join(ctx.bucket.root, 'lifecycle.xml');

export async function putBucketLifecycle(ctx: Ctx): Promise<void> {
  const body = await readSmallBody(ctx.req, 1024 * 1024, bodyChecks(ctx));
  const xml = body.toString('utf8');
  if (!/<LifecycleConfiguration[\s>]/.test(xml) || !/<Rule[\s>]/.test(xml)) throw malformedXml();
  // Replace atomically: a reader sees the old or the new configuration, never half of one.
  const tmp = ctx.bucket.objects.tmpFile();
  await writeFile(tmp, xml, { flag: 'wx' });
  await rename(tmp, lifecyclePath(ctx));
  send(ctx.res, 200, {});
}

export async function getBucketLifecycle(ctx: Ctx): Promise<void> {
  let xml: string;
  try {
    xml = await readFile(lifecyclePath(ctx), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    throw new S3Error('NoSuchLifecycleConfiguration', 'The lifecycle configuration does not exist', 404, {
      BucketName: ctx.bucket.name,
    });
  }
  sendXml(ctx.res, xml);
}

export async function deleteBucketLifecycle(ctx: Ctx): Promise<void> {
  await rm(lifecyclePath(ctx), { force: true });
  send(ctx.res, 204, {});
}
