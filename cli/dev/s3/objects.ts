// Objects of one bucket on disk, with atomic replace.
//
// Layout under the bucket's root directory:
//   blobs/<uuid>              object bytes, immutable once renamed here
//   meta/<sha256(key)>.json   { key, blob, size, etag, lastModified, headers } — the commit record
//   tmp/                      bodies being received, metadata being written (same filesystem, so
//                             rename() into blobs/ or meta/ is atomic)
// A key maps to a blob only through its meta file, and a meta file only ever appears by rename,
// so readers see the old object or the new one, never a partial one. Keys are hashed for file
// names because S3 keys may be 1024 bytes of anything, including `..` and `/`.
// All metadata is also kept in memory (rebuilt from meta/ at start) for HEAD and listing.
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, open, readFile, readdir, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { KeyedLock } from './keyed-lock.js';

export interface ObjectMeta {
  key: string;
  /** File name under blobs/. */
  blob: string;
  size: number;
  /** Quoted, as sent in the ETag header: `"md5hex"` or `"md5hex-N"` for multipart. */
  etag: string;
  /** Milliseconds since epoch. */
  lastModified: number;
  /** Stored response headers: content-type, content-encoding, …, x-amz-meta-*. */
  headers: Record<string, string>;
}

export type NewObject = Omit<ObjectMeta, 'blob' | 'lastModified'>;

export class ObjectStore {
  private readonly index = new Map<string, ObjectMeta>();
  private readonly lock = new KeyedLock();

  private constructor(
    readonly root: string,
    private readonly now: () => number,
  ) {}

  /** Opens (creating if needed) the bucket directory and loads its index. */
  static async open(root: string, now: () => number): Promise<ObjectStore> {
    const store = new ObjectStore(root, now);
    // Whatever is in tmp/ belongs to uploads a previous process never finished: not an object.
    await rm(join(root, 'tmp'), { recursive: true, force: true });
    for (const dir of ['blobs', 'meta', 'tmp', 'uploads']) await mkdir(join(root, dir), { recursive: true });
    for (const name of await readdir(join(root, 'meta'))) {
      const meta = JSON.parse(await readFile(join(root, 'meta', name), 'utf8')) as ObjectMeta;
      store.index.set(meta.key, meta);
    }
    // A crash between publishing a blob and its meta file, or between replacing a meta file and
    // freeing the old blob, leaves a blob nothing points to.
    const live = new Set([...store.index.values()].map((m) => m.blob));
    for (const blob of await readdir(join(root, 'blobs'))) {
      if (!live.has(blob)) await rm(join(root, 'blobs', blob), { force: true });
    }
    return store;
  }

  /** A fresh path in tmp/ for a body being received. */
  tmpFile(): string {
    return join(this.root, 'tmp', randomUUID());
  }

  get(key: string): ObjectMeta | undefined {
    return this.index.get(key);
  }

  all(): IterableIterator<ObjectMeta> {
    return this.index.values();
  }

  /**
   * Publishes the complete file `tmp` as object `obj.key`, replacing any previous version.
   * Order matters: blob first (invisible, nothing references it), then the meta file (the commit
   * point), then the in-memory index, and only then the old blob is freed.
   */
  async commit(tmp: string, obj: NewObject): Promise<ObjectMeta> {
    return this.lock.run(obj.key, async () => {
      const meta: ObjectMeta = { ...obj, blob: randomUUID(), lastModified: this.now() };
      try {
        await rename(tmp, this.blobPath(meta.blob));
      } catch (err) {
        await rm(tmp, { force: true });
        throw err;
      }
      try {
        const metaTmp = this.tmpFile();
        await writeFile(metaTmp, JSON.stringify(meta), { flag: 'wx' });
        await rename(metaTmp, this.metaPath(obj.key));
      } catch (err) {
        await rm(this.blobPath(meta.blob), { force: true });
        throw err;
      }
      const previous = this.index.get(obj.key);
      this.index.set(obj.key, meta);
      if (previous) await rm(this.blobPath(previous.blob), { force: true });
      return meta;
    });
  }

  /** Removes the object; a missing key is not an error (S3 answers 204 either way). */
  async delete(key: string): Promise<void> {
    await this.lock.run(key, async () => {
      const previous = this.index.get(key);
      if (!previous) return;
      await rm(this.metaPath(key), { force: true }); // commit point of the delete
      this.index.delete(key);
      await rm(this.blobPath(previous.blob), { force: true });
    });
  }

  /**
   * Opens the current version for reading. An open file stays readable after a concurrent
   * replace unlinks it; only the window between reading the index and open() can miss, and then
   * the index already points at the newer blob, so we look again.
   */
  async openForRead(key: string): Promise<{ meta: ObjectMeta; file: FileHandle } | undefined> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const meta = this.index.get(key);
      if (!meta) return undefined;
      try {
        return { meta, file: await open(this.blobPath(meta.blob), 'r') };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    return undefined;
  }

  private blobPath(blob: string): string {
    return join(this.root, 'blobs', blob);
  }

  private metaPath(key: string): string {
    return join(this.root, 'meta', `${createHash('sha256').update(key, 'utf8').digest('hex')}.json`);
  }
}
