// A small S3-compatible object store on 127.0.0.1 for RGrid's local stack and tests. Unlike
// s3rver, it VERIFIES AWS Signature V4 on every request (presigned URLs and Authorization
// headers), so a bug in how the control plane signs, or in how the CLI/runner use the URLs
// (wrong method, wrong key, expired), fails locally the way it would against MinIO.
//
// Why our own server on node:http and not a verifying front in front of s3rver:
//   - a front would have to parse and proxy every request anyway, so the verification work is
//     the same; what s3rver adds (storage) is the part where we need guarantees it does not give
//     us: bodies streamed to a temp file and renamed into place, so no half-written object is
//     ever visible and an interrupted upload leaves nothing; constant memory for 1 GB objects;
//     S3's multipart rules (part ETags, 5 MiB minimum) checked as MinIO checks them;
//   - one process, one port, no second server to start, wait for and stop;
//   - the S3 subset RGrid uses is small (≈ 1,400 commented lines in ./s3/), and everything else
//     answers 501 NotImplemented instead of being silently mis-handled.
//
// Not done on purpose: lifecycle rules are stored and returned but never applied (RGrid's own
// retention sweeper deletes expired artifacts; MinIO applies the rules in production); no
// versioning, ACLs, CopyObject, ListObjects v1 or aws-chunked uploads. See ./s3/README.md.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { S3Error, errorXml } from './s3/errors.js';
import type { Bucket, Ctx } from './s3/http.js';
import { Multipart } from './s3/multipart.js';
import { ObjectStore } from './s3/objects.js';
import { route } from './s3/router.js';
import { authenticate } from './s3/sigv4.js';
import { parseTarget } from './s3/target.js';

export interface S3StoreOptions {
  /** TCP port on 127.0.0.1; 0 (default) picks a free one. */
  port?: number;
  /** Where objects live; the bucket is a sub-directory. Survives restarts. */
  dataDir: string;
  /** The one bucket this store serves (created at start if missing). */
  bucket: string;
  /** Region signatures must be scoped to. Default 'us-east-1'. */
  region?: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Clock (ms since epoch) for signature expiry and Last-Modified; tests override it. */
  now?: () => number;
}

export interface S3Store {
  /** `http://127.0.0.1:PORT`; objects are at `${endpoint}/${bucket}/${key}` (path style). */
  endpoint: string;
  port: number;
  bucket: string;
  /** Stops listening, cuts open connections and waits for in-flight requests to clean up. */
  close(): Promise<void>;
  /** `requests`: all requests received; `rejected`: refused by signature verification. */
  stats(): { requests: number; rejected: number };
}

const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export async function startS3Store(opts: S3StoreOptions): Promise<S3Store> {
  if (!BUCKET_NAME.test(opts.bucket)) throw new Error(`invalid S3 bucket name: ${JSON.stringify(opts.bucket)}`);
  const now = opts.now ?? Date.now;
  const creds = { accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey, region: opts.region ?? 'us-east-1' };
  const root = join(opts.dataDir, opts.bucket);
  const objects = await ObjectStore.open(root, now);
  const bucket: Bucket = { name: opts.bucket, region: creds.region, root, objects, multipart: new Multipart(objects, now) };
  const counters = { requests: 0, rejected: 0 };
  const inflight = new Set<Promise<void>>();

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    counters.requests++;
    const requestId = randomBytes(8).toString('hex').toUpperCase();
    res.setHeader('x-amz-request-id', requestId);
    let resource = (req.url ?? '/').split('?')[0] ?? '/';
    try {
      const target = parseTarget(req.url ?? '/');
      resource = target.path;
      const signed = { method: req.method ?? '', path: target.path, query: target.query, headers: headerMap(req) };
      let auth;
      try {
        auth = authenticate(signed, creds, now());
      } catch (err) {
        counters.rejected++;
        throw err;
      }
      // Only an authenticated client is invited to send its body (Expect: 100-continue); a
      // rejected one gets its 403 before uploading anything.
      if (req.headers.expect?.toLowerCase() === '100-continue') res.writeContinue();
      const ctx: Ctx = { req, res, target, auth, bucket };
      await route(ctx);
    } catch (err) {
      sendError(req, res, err, resource, requestId);
    }
  }

  const server = createServer({ requestTimeout: 0 /* 1 GB uploads may take a while */ }, (req, res) => {
    const done = handle(req, res);
    inflight.add(done);
    void done.finally(() => inflight.delete(done));
  });
  // Without this listener Node answers 100 Continue before we have checked the signature.
  server.on('checkContinue', (req, res) => server.emit('request', req, res));
  server.setTimeout(5 * 60_000); // a client silent for 5 minutes is gone; its upload is discarded

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    bucket: opts.bucket,
    stats: () => ({ ...counters }),
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      // Interrupted uploads remove their temp files in their own error paths; wait for that so
      // the data directory is quiescent when close() resolves (a restart may follow at once).
      await Promise.allSettled([...inflight]);
    },
  };
}

/** Lower-case header name → all values, as SigV4's canonical headers need them. */
function headerMap(req: IncomingMessage): Map<string, string[]> {
  return new Map(Object.entries(req.headersDistinct).map(([k, v]) => [k, v ?? []]));
}

function sendError(req: IncomingMessage, res: ServerResponse, err: unknown, resource: string, requestId: string): void {
  // The client hung up (e.g. an interrupted upload): nobody to answer, nothing to report.
  if (res.destroyed || req.socket.destroyed) return;
  // Failure in the middle of a streamed body: cutting the connection is the only honest signal.
  if (res.headersSent) {
    res.destroy();
    return;
  }
  let s3err: S3Error;
  if (err instanceof S3Error) {
    s3err = err;
  } else {
    process.stderr.write(`s3-store: internal error on ${req.method} ${resource}: ${(err as Error)?.stack ?? String(err)}\n`);
    s3err = new S3Error('InternalError', 'We encountered an internal error. Please try again.', 500);
  }
  // HEAD responses carry no body; S3 still sends the status and headers.
  const body = req.method === 'HEAD' ? '' : errorXml(s3err, resource, requestId);
  res.writeHead(s3err.status, { ...s3err.headers, 'Content-Type': 'application/xml', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}
