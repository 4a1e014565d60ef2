/**
 * Downloads outputs through presigned GETs. Each file streams to a hidden temp file next to its
 * destination while its sha256 is computed; only a file whose size and hash match the artifact
 * record is moved into place, and never over an existing file: it is hard-linked under the first
 * free name (`output.csv`, `output (1).csv`, ...), which fails atomically if the name was taken
 * in the meantime. An interrupted download leaves nothing behind (see `partials`).
 *
 * gzip-stored artifacts are decompressed on the way (the hash is of the decoded bytes), and
 * decoding stops at the declared size: a small object cannot expand into a full disk (gzip bomb).
 * undici's `request` is used rather than fetch because fetch decodes Content-Encoding by itself.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { copyFile, constants, link, mkdir, rm, stat, unlink } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { request } from 'undici';
import type { Artifact } from '../../shared/api/executions.js';
import { CliError } from '../errors.js';
import { IDEMPOTENT, withRetry, type RetryHooks } from '../api/retry.js';
import { mapLimit } from './parallel.js';
import { variant } from './naming.js';
import { Progress } from './progress.js';
import { hashingMeter } from './hash.js';
import { TransferError, s3ErrorCode, storeUnreachable, transferFailure } from './errors.js';

/** The object store answered 404: the bytes are gone (expired and swept, usually). */
export class GoneError extends TransferError {
  constructor(what: string) {
    super(`${what} failed: the object store no longer has it (404)`, 404, false);
  }
}

/** Stops a stream that grows past `limit` bytes. */
function sizeGuard(limit: number, what: string): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      seen += chunk.length;
      if (seen > limit) cb(new TransferError(`${what}: more than the recorded ${limit} bytes; stopped (the stored object does not match its record)`, undefined, false));
      else cb(null, chunk);
    },
  });
}

/** Temp files being written right now, removed synchronously if the process is interrupted. */
export const partials = new Set<string>();

export interface Downloaded {
  /** Path relative to the output directory as recorded remotely (forward slashes). */
  remotePath: string;
  /** Where it was written. */
  localPath: string;
  size: number;
  /** True when the natural name was taken and a variant was used. */
  renamed: boolean;
}

/**
 * Creates `segments` under `base`, one directory at a time. A segment whose name is taken by a
 * file gets a variant (`report (1)/`), so a download never fails or overwrites because of it.
 */
export async function ensureDir(base: string, segments: string[]): Promise<string> {
  let dir = base;
  await mkdir(dir, { recursive: true });
  for (const seg of segments) {
    for (let n = 0; ; n++) {
      const candidate = join(dir, variant(seg, n));
      try {
        await mkdir(candidate);
        dir = candidate;
        break;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'EEXIST') throw err;
        if ((await stat(candidate)).isDirectory()) {
          dir = candidate;
          break;
        }
      }
    }
  }
  return dir;
}

/** Moves a verified temp file to the first free variant of `name` in `dir`; never overwrites. */
export async function placeWithoutOverwrite(tmp: string, dir: string, name: string): Promise<string> {
  for (let n = 0; ; n++) {
    const candidate = join(dir, variant(name, n));
    try {
      await link(tmp, candidate);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') continue;
      // File systems without hard links: an exclusive copy is just as safe, only slower.
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EXDEV') throw err;
      try {
        await copyFile(tmp, candidate, constants.COPYFILE_EXCL);
      } catch (copyErr) {
        if ((copyErr as NodeJS.ErrnoException).code === 'EEXIST') continue;
        throw copyErr;
      }
    }
    await unlink(tmp);
    return candidate;
  }
}

async function fetchToTemp(a: Artifact, tmp: string, count: (n: number) => void, signal?: AbortSignal): Promise<void> {
  if (!a.download) throw new CliError(`Output ${a.path} expired on ${a.expiresAt.slice(0, 10)} and can no longer be downloaded`, { hint: 'Run the execution again to recreate it.' });
  const what = `Downloading ${a.path}`;
  let res;
  try {
    res = await request(a.download.url, { method: 'GET', headers: a.download.headers, signal });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw storeUnreachable(what, a.download.url, err);
  }
  if (res.statusCode === 404) {
    await res.body.dump();
    throw new GoneError(what);
  }
  if (res.statusCode !== 200) throw transferFailure(what, res.statusCode, await s3ErrorCode(res.body));
  const meter = hashingMeter(count);
  try {
    const file = createWriteStream(tmp, { mode: 0o644 });
    const guard = sizeGuard(a.size, what);
    if (a.encoding === 'gzip') await pipeline(res.body, createGunzip(), guard, meter.stream, file);
    else await pipeline(res.body, guard, meter.stream, file);
  } catch (err) {
    count(-meter.bytes());
    if ((err as Error).name === 'AbortError' || err instanceof TransferError) throw err;
    throw new TransferError(`${what} was interrupted: ${(err as Error).message}`, undefined, true);
  }
  const size = meter.bytes();
  const digest = meter.digest();
  if (size !== a.size || digest !== a.sha256) {
    count(-size);
    // Retryable: a truncated or corrupted transfer is usually a one-off.
    throw new TransferError(`${what}: content does not match its record (got ${size} bytes, sha256 ${digest.slice(0, 12)}…; expected ${a.size} bytes, ${a.sha256.slice(0, 12)}…)`, undefined, true);
  }
}

export async function downloadArtifact(a: Artifact, outDir: string, opts: RetryHooks & { progress?: Progress } = {}): Promise<Downloaded> {
  const segments = a.path.split('/');
  const name = segments.pop()!;
  const dir = await ensureDir(outDir, segments);
  const tmp = join(dir, `.${name}.${randomBytes(4).toString('hex')}.rgrid-part`);
  const count = opts.progress?.track(a.size) ?? (() => {});
  partials.add(tmp);
  try {
    await withRetry(IDEMPOTENT, () => fetchToTemp(a, tmp, count, opts.signal), opts);
    const localPath = await placeWithoutOverwrite(tmp, dir, name);
    const natural = join(outDir, ...segments, name);
    return { remotePath: a.path, localPath, size: a.size, renamed: localPath !== natural };
  } finally {
    partials.delete(tmp);
    await rm(tmp, { force: true });
  }
}

export interface DownloadOptions extends RetryHooks {
  concurrency?: number;
  progress?: Progress;
  /**
   * For an artifact the store no longer has (404): the control plane's word on it, e.g.
   * "out.csv expired on 2025-06-01" when it expired, undefined when it should be there.
   */
  explainGone?: (a: Artifact) => Promise<string | undefined>;
  /** An artifact that turned out to be expired: reported here and skipped, the others continue. */
  onExpired?: (a: Artifact, message: string) => void;
}

/**
 * Downloads every artifact into `outDir`, subdirectories preserved, a few at a time. With
 * `explainGone` and `onExpired`, one that expired meanwhile is reported and skipped.
 */
export async function downloadAll(artifacts: Artifact[], outDir: string, opts: DownloadOptions = {}): Promise<Downloaded[]> {
  const progress = opts.progress ?? new Progress({ verb: 'Downloading' });
  try {
    const done = await mapLimit(artifacts, opts.concurrency ?? 4, async (a) => {
      try {
        return await downloadArtifact(a, outDir, { ...opts, progress });
      } catch (err) {
        const why = err instanceof GoneError && opts.onExpired ? await opts.explainGone?.(a) : undefined;
        if (why === undefined) throw err;
        opts.onExpired!(a, why);
        return undefined;
      }
    });
    progress.finish();
    return done.filter((d): d is Downloaded => d !== undefined);
  } catch (err) {
    progress.clear();
    throw err;
  }
}

/** For display: a local path relative to the current directory when it is inside it. */
export function displayPath(p: string, cwd = process.cwd()): string {
  const rel = relative(cwd, p);
  if (rel === '') return '.';
  return !rel.startsWith('..') && !rel.startsWith(sep) ? rel : p;
}
