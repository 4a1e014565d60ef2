/**
 * How an input is stored: text types gzip-compressed (5-10x smaller for CSV/JSON, so uploads and
 * the runner's downloads are that much faster), everything else as is. Already-compressed and
 * binary formats (png, parquet, zip, …) never are: gzip would only cost time. The choice comes from
 * the file name alone, so the same file always gets the same encoding, and it is declared on the
 * input before anything is uploaded (sha256 and size always describe the original bytes).
 *
 * A presigned PUT needs its length up front, so compression writes a temporary file first (as the
 * runner does for outputs); the source is hashed while it is read, so a file that changed since it
 * was hashed is caught here rather than stored under the wrong content address.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, rmSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { extname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import type { ContentEncoding } from '../../shared/api/common.js';
import { CliError } from '../errors.js';
import { hashingMeter } from './hash.js';

/** Extensions stored gzip-compressed: plain-text formats. Unknown extensions are left alone. */
export const TEXT_EXTENSIONS = new Set([
  'csv', 'tsv', 'psv', 'json', 'jsonl', 'ndjson', 'geojson', 'txt', 'text', 'log', 'xml', 'md', 'markdown', 'rst', 'html', 'htm',
  'yaml', 'yml', 'toml', 'ini', 'cfg', 'conf', 'sql', 'svg', 'tex', 'srt', 'vtt',
  'fasta', 'fa', 'fna', 'faa', 'fastq', 'fq', 'vcf', 'sam', 'gff', 'gff3', 'gtf', 'bed', 'pdb', 'mol', 'sdf', 'xyz',
]);

/** Below this, compression saves nothing worth a temp file (the runner uses the same bound). */
export const MIN_COMPRESS_BYTES = 1024;

/** gzip level: 6 (zlib's default) compresses CSV ~5x at ~60 MB/s per core, faster than most uplinks. */
const GZIP_LEVEL = 6;

export function encodingFor(name: string, size: number): ContentEncoding {
  const ext = extname(name).slice(1).toLowerCase();
  return size >= MIN_COMPRESS_BYTES && TEXT_EXTENSIONS.has(ext) ? 'gzip' : 'identity';
}

/** Temp directories holding compressed copies; removed synchronously if the process is interrupted. */
export const tempDirs = new Set<string>();

export function removeTempDirsSync(): void {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
}

export interface Compressed {
  path: string;
  size: number;
  /** Removes the temp file. */
  dispose(): Promise<void>;
}

/**
 * gzip `source` into a temp file, checking on the way that it still has the declared sha256 and
 * size. `onBytes` counts source bytes read (progress).
 */
export async function gzipToTemp(source: string, expect: { sha256: string; size: number; label: string }, onBytes?: (n: number) => void): Promise<Compressed> {
  const dir = await mkdtemp(join(tmpdir(), 'rgrid-gz-'));
  tempDirs.add(dir);
  const dispose = async () => {
    tempDirs.delete(dir);
    await rm(dir, { recursive: true, force: true });
  };
  const path = join(dir, `${randomBytes(4).toString('hex')}.gz`);
  const meter = hashingMeter(onBytes);
  try {
    await pipeline(createReadStream(source, { highWaterMark: 1024 * 1024 }), meter.stream, createGzip({ level: GZIP_LEVEL }), createWriteStream(path));
    if (meter.bytes() !== expect.size || meter.digest() !== expect.sha256) {
      throw new CliError(`${expect.label} changed while it was being uploaded`, { hint: 'Wait until nothing writes to the file, then run the command again.' });
    }
    return { path, size: (await stat(path)).size, dispose };
  } catch (err) {
    await dispose();
    if (err instanceof CliError) throw err;
    throw new CliError(`Cannot compress ${expect.label}: ${(err as Error).message}`, { hint: 'Check that the file is readable and that the temp directory has space (TMPDIR).', cause: err });
  }
}
