// Maps an authenticated request to its S3 operation. Anything not listed answers 501
// NotImplemented rather than being mistaken for a neighbouring operation.
import * as bucketOps from './bucket-handlers.js';
import { S3Error, notImplemented } from './errors.js';
import { noSuchBucket, onlyParams, type Ctx } from './http.js';
import * as objectOps from './object-handlers.js';
import { hasQueryParam, queryParam } from './target.js';

const LIST_V2_PARAMS = ['list-type', 'prefix', 'delimiter', 'max-keys', 'continuation-token', 'start-after', 'encoding-type', 'fetch-owner'];
const RESPONSE_PARAMS = /^response-/;

export async function route(ctx: Ctx): Promise<void> {
  const { target } = ctx;
  const method = ctx.req.method ?? '';
  const has = (name: string) => hasQueryParam(target, name);
  if (target.bucket === '') throw notImplemented('ListBuckets');
  if (target.bucket !== ctx.bucket.name) throw noSuchBucket();

  if (target.key === '') {
    if (has('lifecycle')) {
      onlyParams(ctx, 'Bucket lifecycle', ['lifecycle']);
      if (method === 'PUT') return bucketOps.putBucketLifecycle(ctx);
      if (method === 'GET') return bucketOps.getBucketLifecycle(ctx);
      if (method === 'DELETE') return bucketOps.deleteBucketLifecycle(ctx);
    } else if (method === 'HEAD') {
      onlyParams(ctx, 'HeadBucket', []);
      return bucketOps.headBucket(ctx);
    } else if (method === 'GET' && queryParam(target, 'list-type') === '2') {
      onlyParams(ctx, 'ListObjectsV2', LIST_V2_PARAMS);
      return bucketOps.listObjectsV2(ctx);
    } else if (method === 'GET' && target.query.every(([k]) => k.startsWith('X-Amz-') || LIST_V2_PARAMS.includes(k))) {
      throw notImplemented('ListObjects (v1); use list-type=2');
    }
    throw notImplemented(`${method} on a bucket with ?${target.query.map(([k]) => k).join('&')}`);
  }

  if (Buffer.byteLength(target.key, 'utf8') > 1024) {
    throw new S3Error('KeyTooLongError', 'Your key is too long', 400);
  }
  switch (method) {
    case 'PUT':
      if (has('uploadId') || has('partNumber')) {
        onlyParams(ctx, 'UploadPart', ['uploadId', 'partNumber']);
        return objectOps.uploadPart(ctx);
      }
      onlyParams(ctx, 'PutObject', []);
      return objectOps.putObject(ctx);
    case 'GET':
    case 'HEAD':
      onlyParams(ctx, 'GetObject', [RESPONSE_PARAMS]);
      return objectOps.getObject(ctx);
    case 'DELETE':
      if (has('uploadId')) {
        onlyParams(ctx, 'AbortMultipartUpload', ['uploadId']);
        return objectOps.abortMultipartUpload(ctx);
      }
      onlyParams(ctx, 'DeleteObject', []);
      return objectOps.deleteObject(ctx);
    case 'POST':
      if (has('uploads')) {
        onlyParams(ctx, 'CreateMultipartUpload', ['uploads']);
        return objectOps.createMultipartUpload(ctx);
      }
      if (has('uploadId')) {
        onlyParams(ctx, 'CompleteMultipartUpload', ['uploadId']);
        return objectOps.completeMultipartUpload(ctx);
      }
      throw notImplemented(`POST on an object with ?${target.query.map(([k]) => k).join('&')}`);
    default:
      throw new S3Error('MethodNotAllowed', 'The specified method is not allowed against this resource.', 405);
  }
}
