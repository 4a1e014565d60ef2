// bin/_load.mjs: the CLI and the runner start from a bundle of the sources that is rebuilt when a
// source file changes. Real processes, the real package.
import { execFile } from 'node:child_process';
import { readFile, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { PACKAGE_ROOT, RGRID_BIN } from '../cli/paths.js';
import { VERSION } from '../cli/version.js';

const run = promisify(execFile);
const MANIFEST = join(PACKAGE_ROOT, 'node_modules', '.cache', 'rgrid', 'rgrid-cli.json');
const manifest = async () => JSON.parse(await readFile(MANIFEST, 'utf8')) as { bundle: string; inputs: Record<string, [number, number]> };

describe('bin/_load.mjs', () => {
  it('runs the CLI from a bundle that records its sources, and rebuilds it when one changes', async () => {
    const first = await run(process.execPath, [RGRID_BIN, '--version']);
    // version.ts reads ../package.json relative to its own import.meta.url: still the source's.
    expect(first.stdout.trim()).toBe(VERSION);
    const before = await manifest();
    expect(Object.keys(before.inputs)).toEqual(expect.arrayContaining(['cli/main.ts', 'cli/version.ts', 'cli/paths.ts']));
    await stat(join(PACKAGE_ROOT, 'node_modules', '.cache', 'rgrid', before.bundle));

    // A source file changes (its mtime here): the next start builds a new bundle.
    const file = join(PACKAGE_ROOT, 'cli', 'version.ts');
    const s = await stat(file);
    const later = new Date(s.mtimeMs + 1000);
    await utimes(file, s.atime, later);
    try {
      const second = await run(process.execPath, [RGRID_BIN, '--version']);
      expect(second.stdout.trim()).toBe(VERSION);
      const after = await manifest();
      expect(after.bundle).not.toBe(before.bundle);
      expect(Math.round(after.inputs['cli/version.ts']![1])).toBe(later.getTime());
    } finally {
      await utimes(file, s.atime, s.mtime);
    }
  }, 60_000);

  it('RGRID_NO_BUNDLE=1 runs the sources through tsx', async () => {
    const r = await run(process.execPath, [RGRID_BIN, '--version'], { env: { ...process.env, RGRID_NO_BUNDLE: '1' } });
    expect(r.stdout.trim()).toBe(VERSION);
  }, 60_000);
});
