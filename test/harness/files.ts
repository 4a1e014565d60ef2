/** Big test files without holding them in memory (used by test/e2e/files.test.ts and bench/files.ts). */
import { createHash, randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';

const MiB = 1024 * 1024;

/** Random content, written and hashed a MiB at a time; resolves with its sha256. */
export async function randomFile(path: string, mib: number): Promise<string> {
  const hash = createHash('sha256');
  const f = await open(path, 'w');
  try {
    for (let i = 0; i < mib; i++) {
      const block = randomBytes(MiB);
      hash.update(block);
      await f.write(block);
    }
  } finally {
    await f.close();
  }
  return hash.digest('hex');
}
