/**
 * Moving files with bounded memory: downloads stream to a temporary file that is renamed only
 * after its sha256 matches; uploads stream from disk; outputs are found by comparing /work after
 * the run with what was put there before it.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { lstat, mkdir, readdir, rename, rm } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { request, type Dispatcher } from 'undici';
import { LIMITS } from '../../shared/limits.js';
import type { PresignedRequest } from '../../shared/api/common.js';

export class TransferError extends Error {
  constructor(
    message: string,
    /** The HTTP status the object store (or remote server) answered, when that was the failure. */
    readonly status?: number,
  ) {
    super(message);
    this.name = 'TransferError';
  }
}

/** The gist of an error body: an S3 error document becomes "Code: Message", anything else is cut short. */
export function summarizeErrorBody(text: string): string {
  const m = /<Code>([^<]*)<\/Code>\s*<Message>([^<]*)<\/Message>/.exec(text);
  return m ? `${m[1]}: ${m[2]}` : text.slice(0, 200);
}

/** Socket-level failures of a transfer (undici and Node codes); local file errors are not among them. */
const NETWORK_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'EAI_AGAIN', 'ENOTFOUND',
  'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT',
]);

/**
 * A transfer failure worth another try: the store was unreachable or answered 429/5xx. A 4xx
 * (expired or refused URL), a checksum or size mismatch and local file errors (EEXIST, ENOSPC…)
 * are final: trying again gives the same answer.
 */
export function isTransientTransferError(err: unknown): boolean {
  if (err instanceof TransferError) return err.status !== undefined && (err.status === 429 || err.status >= 500);
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && NETWORK_CODES.has(code);
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

/** Stops a stream that grows past `limit` bytes (gzip bombs, lying servers). */
function sizeGuard(limit: number, what: string): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      seen += chunk.length;
      if (seen > limit) cb(new TransferError(`${what} is larger than its declared ${limit} bytes`));
      else cb(null, chunk);
    },
  });
}

export interface DownloadSpec {
  download: PresignedRequest;
  sha256: string;
  size: number;
  encoding: 'identity' | 'gzip';
  dest: string;
  label: string;
  /** Called with each chunk's size as it arrives (progress for big files). */
  onBytes?: (n: number) => void;
}

export async function downloadVerified(spec: DownloadSpec, signal?: AbortSignal): Promise<void> {
  await mkdir(dirname(spec.dest), { recursive: true });
  const tmp = `${spec.dest}.rgrid-partial`;
  // Bounded: a store that drops packets must not hang the job for undici's default 300 s.
  const res = await request(spec.download.url, { method: 'GET', headers: spec.download.headers, signal, headersTimeout: 30_000, bodyTimeout: 60_000 });
  if (res.statusCode !== 200) {
    const body = await res.body.text().catch(() => '');
    throw new TransferError(`download of ${spec.label} answered ${res.statusCode}: ${summarizeErrorBody(body)}`, res.statusCode);
  }
  const hash = createHash('sha256');
  const tee = new Transform({
    transform(chunk: Buffer, _e, cb) {
      hash.update(chunk);
      spec.onBytes?.(chunk.length);
      cb(null, chunk);
    },
  });
  try {
    const guard = sizeGuard(spec.size, spec.label);
    if (spec.encoding === 'gzip') await pipeline(res.body, createGunzip(), guard, tee, createWriteStream(tmp));
    else await pipeline(res.body, guard, tee, createWriteStream(tmp));
    const digest = hash.digest('hex');
    if (digest !== spec.sha256) throw new TransferError(`${spec.label} failed its checksum (expected ${spec.sha256.slice(0, 12)}…, got ${digest.slice(0, 12)}…)`);
    await rename(tmp, spec.dest);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/**
 * Fetches a remote input (webhook deliveries): https only, no redirects, at most `maxBytes`,
 * written to a temporary file renamed into place when complete.
 */
export async function fetchRemote(url: string, dest: string, maxBytes: number, dispatcher?: Dispatcher, signal?: AbortSignal): Promise<number> {
  const u = new URL(url);
  if (u.protocol !== 'https:') throw new TransferError(`remote input ${url} is not https`);
  await mkdir(dirname(dest), { recursive: true });
  const tmp = `${dest}.rgrid-partial`;
  const res = await request(url, { method: 'GET', dispatcher, signal, headersTimeout: 30_000, bodyTimeout: 60_000 });
  if (res.statusCode !== 200) {
    await res.body.text().catch(() => '');
    throw new TransferError(`remote input ${url} answered ${res.statusCode}`, res.statusCode);
  }
  let size = 0;
  const count = new Transform({
    transform(chunk: Buffer, _e, cb) {
      size += chunk.length;
      cb(null, chunk);
    },
  });
  try {
    await pipeline(res.body, sizeGuard(maxBytes, `remote input ${url}`), count, createWriteStream(tmp));
    await rename(tmp, dest);
    return size;
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

export interface FileEntry {
  path: string;
  size: number;
  sha256: string;
}

export interface ScanResult {
  files: FileEntry[];
  /** Entries passed over, with the reason (symlinks, odd names, special files). */
  skipped: { path: string; reason: string }[];
}

const SAFE_NAME = /^[^\u0000-\u001f\\]+$/;

/**
 * Every regular file under `root`, relative, with size and sha256. Symlinks are never followed
 * (a link pointing outside /work cannot leak a host file); names that are not valid UTF-8 or
 * contain control characters, and paths longer than the API accepts, are skipped and reported
 * (one unrepresentable file must not fail the whole attempt).
 */
export async function scanTree(root: string, maxFiles = LIMITS.maxOutputsPerExecution + 1): Promise<ScanResult> {
  const files: FileEntry[] = [];
  const skipped: ScanResult['skipped'] = [];
  async function walk(dir: string): Promise<void> {
    const entries = await readdir(dir, { withFileTypes: true, encoding: 'buffer' });
    for (const entry of entries) {
      const name = entry.name.toString('utf8');
      const full = join(dir, name);
      const rel = relative(root, full).split(sep).join('/');
      if (!Buffer.from(name, 'utf8').equals(entry.name) || !SAFE_NAME.test(name)) {
        skipped.push({ path: rel, reason: 'file name is not valid UTF-8 or has control characters' });
        continue;
      }
      const st = await lstat(full);
      if (st.isSymbolicLink()) {
        skipped.push({ path: rel, reason: 'symbolic link (not followed)' });
      } else if (st.isDirectory()) {
        await walk(full);
      } else if (st.isFile()) {
        if (files.length >= maxFiles) return;
        // Same measure as the API's RelativePath (string length). Directories are still walked:
        // each file under a long directory is reported by its own path.
        if (rel.length > LIMITS.maxPathBytes) {
          skipped.push({ path: rel, reason: `path longer than ${LIMITS.maxPathBytes} characters` });
          continue;
        }
        files.push({ path: rel, size: st.size, sha256: await sha256File(full) });
      } else {
        skipped.push({ path: rel, reason: 'not a regular file' });
      }
    }
  }
  await walk(root);
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { files, skipped };
}

const TYPES: Record<string, string> = {
  csv: 'text/csv', tsv: 'text/tab-separated-values', json: 'application/json', jsonl: 'application/x-ndjson',
  txt: 'text/plain', log: 'text/plain', md: 'text/markdown', xml: 'application/xml', html: 'text/html',
  yaml: 'application/yaml', yml: 'application/yaml', py: 'text/x-python', js: 'text/javascript',
  png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg', gif: 'image/gif', svg: 'image/svg+xml',
  pdf: 'application/pdf', zip: 'application/zip', gz: 'application/gzip', parquet: 'application/vnd.apache.parquet',
  npy: 'application/octet-stream', bin: 'application/octet-stream',
};

export function contentTypeFor(path: string): string {
  const ext = path.toLowerCase().split('.').pop() ?? '';
  return TYPES[ext] ?? 'application/octet-stream';
}
