// Multipart uploads on disk.
//
//   uploads/<uploadId>/upload.json      { key, headers, initiated }
//   uploads/<uploadId>/<N>.<md5hex>     part N, named by its ETag
// Naming a part file by its ETag makes CompleteMultipartUpload's check ("is this exact part
// here?") a file lookup, and re-uploading part N simply replaces the file.
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { mkdir, open, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { receiveToFile, type BodyChecks } from './body.js';
import { S3Error, malformedXml, noSuchUpload } from './errors.js';
import { KeyedLock } from './keyed-lock.js';
import type { ObjectMeta, ObjectStore } from './objects.js';
import { xmlTexts, xmlUnescape } from './xml.js';

/** S3's (and MinIO's) minimum size of every part but the last. */
export const MIN_PART_BYTES = 5 * 1024 * 1024;
export const MAX_PART_NUMBER = 10_000;

interface UploadRecord {
  key: string;
  headers: Record<string, string>;
  initiated: number;
}

export interface CompletedPart {
  partNumber: number;
  /** md5 hex, without quotes. */
  etag: string;
}

export class Multipart {
  private readonly lock = new KeyedLock();

  constructor(
    private readonly objects: ObjectStore,
    private readonly now: () => number,
  ) {}

  async create(key: string, headers: Record<string, string>): Promise<string> {
    const uploadId = randomBytes(16).toString('hex');
    const record: UploadRecord = { key, headers, initiated: this.now() };
    // upload.json appears by rename: a directory without it is not an upload.
    const tmp = this.objects.tmpFile();
    await writeFile(tmp, JSON.stringify(record), { flag: 'wx' });
    await mkdir(this.dir(uploadId));
    await rename(tmp, join(this.dir(uploadId), 'upload.json'));
    return uploadId;
  }

  /** Receives part `partNumber`; returns its md5 hex (the part's ETag without quotes). */
  async uploadPart(
    uploadId: string,
    key: string,
    partNumber: number,
    req: IncomingMessage,
    length: number,
    checks: BodyChecks,
  ): Promise<string> {
    await this.record(uploadId, key); // refuse before accepting a body for a dead upload
    const tmp = this.objects.tmpFile();
    const { md5Hex } = await receiveToFile(req, tmp, length, checks);
    const name = `${partNumber}.${md5Hex}`;
    // Two uploads of the same part number racing must not delete each other's file.
    await this.lock.run(`${uploadId}/${partNumber}`, async () => {
      try {
        await rename(tmp, join(this.dir(uploadId), name));
      } catch (err) {
        await rm(tmp, { force: true });
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw noSuchUpload(); // aborted meanwhile
        throw err;
      }
      for (const other of await readdir(this.dir(uploadId))) {
        if (other.startsWith(`${partNumber}.`) && other !== name) await rm(join(this.dir(uploadId), other), { force: true });
      }
    });
    return md5Hex;
  }

  async complete(uploadId: string, key: string, parts: CompletedPart[]): Promise<ObjectMeta> {
    return this.lock.run(uploadId, async () => {
      const record = await this.record(uploadId, key);
      const present = new Set(await readdir(this.dir(uploadId)));
      const files: string[] = [];
      for (const [i, part] of parts.entries()) {
        const prev = parts[i - 1];
        if (prev && part.partNumber <= prev.partNumber) {
          throw new S3Error('InvalidPartOrder', 'The list of parts was not in ascending order. Parts must be ordered by part number.', 400);
        }
        const name = `${part.partNumber}.${part.etag}`;
        if (!present.has(name)) {
          throw new S3Error(
            'InvalidPart',
            "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.",
            400,
            { UploadId: uploadId, PartNumber: String(part.partNumber), ETag: part.etag },
          );
        }
        files.push(join(this.dir(uploadId), name));
      }
      const sizes = await Promise.all(files.map(async (f) => (await stat(f)).size));
      for (const [i, size] of sizes.entries()) {
        if (i < sizes.length - 1 && size < MIN_PART_BYTES) {
          throw new S3Error('EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed object size.', 400, {
            PartNumber: String(parts[i]?.partNumber),
            ProposedSize: String(size),
            MinSizeAllowed: String(MIN_PART_BYTES),
          });
        }
      }
      const tmp = this.objects.tmpFile();
      await concatenate(files, tmp);
      // S3's multipart ETag: md5 of the concatenated binary part md5s, then "-<part count>".
      const digest = createHash('md5');
      for (const part of parts) digest.update(Buffer.from(part.etag, 'hex'));
      const meta = await this.objects.commit(tmp, {
        key,
        size: sizes.reduce((a, b) => a + b, 0),
        etag: `"${digest.digest('hex')}-${parts.length}"`,
        headers: record.headers,
      });
      // Only after the object is committed: a crash in between leaves a stale upload (harmless,
      // abortable), never a lost object.
      await rm(this.dir(uploadId), { recursive: true, force: true });
      return meta;
    });
  }

  async abort(uploadId: string, key: string): Promise<void> {
    await this.lock.run(uploadId, async () => {
      await this.record(uploadId, key);
      await rm(this.dir(uploadId), { recursive: true, force: true });
    });
  }

  private async record(uploadId: string, key: string): Promise<UploadRecord> {
    if (!/^[0-9a-f]{32}$/.test(uploadId)) throw noSuchUpload(); // also keeps it a plain file name
    let record: UploadRecord;
    try {
      record = JSON.parse(await readFile(join(this.dir(uploadId), 'upload.json'), 'utf8')) as UploadRecord;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw noSuchUpload();
      throw err;
    }
    if (record.key !== key) throw noSuchUpload();
    return record;
  }

  private dir(uploadId: string): string {
    return join(this.objects.root, 'uploads', uploadId);
  }
}

/** Parses a CompleteMultipartUpload document into (partNumber, md5 hex) pairs. */
export function parseCompleteXml(xml: string): CompletedPart[] {
  if (!/<CompleteMultipartUpload[\s>]/.test(xml)) throw malformedXml();
  const parts = xmlTexts(xml, 'Part').map((part) => {
    const number = xmlTexts(part, 'PartNumber')[0]?.trim() ?? '';
    const etag = xmlUnescape(xmlTexts(part, 'ETag')[0] ?? '')
      .trim()
      .replace(/^"|"$/g, '')
      .toLowerCase();
    const partNumber = Number(number);
    if (!/^\d+$/.test(number) || partNumber < 1 || partNumber > MAX_PART_NUMBER || !/^[0-9a-f]{32}$/.test(etag)) {
      throw malformedXml();
    }
    return { partNumber, etag };
  });
  if (parts.length === 0) throw malformedXml();
  return parts;
}

/** Appends `files` into the new file `dest` through one fixed buffer: memory stays constant. */
async function concatenate(files: string[], dest: string): Promise<void> {
  const out = await open(dest, 'wx');
  const buf = Buffer.allocUnsafe(1024 * 1024);
  try {
    for (const file of files) {
      const input = await open(file, 'r');
      try {
        for (;;) {
          const { bytesRead } = await input.read(buf, 0, buf.length, null);
          if (bytesRead === 0) break;
          for (let done = 0; done < bytesRead; ) {
            done += (await out.write(buf, done, bytesRead - done)).bytesWritten;
          }
        }
      } finally {
        await input.close();
      }
    }
  } catch (err) {
    await out.close();
    await rm(dest, { force: true });
    throw err;
  }
  await out.close();
}
