import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { sha256File } from './hash.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rgrid-hash-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

it('hashes empty, small and multi-chunk files like a one-shot sha256', async () => {
  for (const size of [0, 5, 3 * 1024 * 1024 + 17]) {
    const bytes = randomBytes(size);
    const path = join(dir, `f${size}`);
    await writeFile(path, bytes);
    expect(await sha256File(path)).toEqual({ sha256: createHash('sha256').update(bytes).digest('hex'), size });
  }
});

it('fails on a missing file', async () => {
  await expect(sha256File(join(dir, 'nope'))).rejects.toThrow(/ENOENT/);
});
