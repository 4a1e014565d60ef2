import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodingFor, gzipToTemp, tempDirs } from './encoding.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rgrid-encoding-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('encodingFor', () => {
  it('compresses text types of 1 KB and more, never binary or unknown types', () => {
    for (const name of ['a.csv', 'b.TSV', 'c.json', 'd.jsonl', 'e.txt', 'f.log', 'g.xml', 'h.md', 'dir.x/seq.fastq']) expect(encodingFor(name, 4096), name).toBe('gzip');
    for (const name of ['a.png', 'b.jpg', 'c.pdf', 'd.zip', 'e.gz', 'f.parquet', 'g.npy', 'h', 'i.weird', 'data.csv.gz']) expect(encodingFor(name, 4096), name).toBe('identity');
    expect(encodingFor('tiny.csv', 1023)).toBe('identity');
  });
});

describe('gzipToTemp', () => {
  it('writes a gzip copy and removes it on dispose', async () => {
    const text = Buffer.from('col\n'.repeat(10_000));
    const src = join(dir, 'x.csv');
    await writeFile(src, text);
    const sha256 = createHash('sha256').update(text).digest('hex');
    let read = 0;
    const gz = await gzipToTemp(src, { sha256, size: text.length, label: 'x.csv' }, (n) => (read += n));
    expect(read).toBe(text.length);
    expect(gz.size).toBe((await stat(gz.path)).size);
    expect(gunzipSync(await readFile(gz.path))).toEqual(text);
    expect(tempDirs.size).toBe(1);
    await gz.dispose();
    expect(tempDirs.size).toBe(0);
    await expect(stat(gz.path)).rejects.toThrow(/ENOENT/);
  });
});
