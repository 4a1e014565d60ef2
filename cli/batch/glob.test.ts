import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expandBraces, expandGlobs, matchGlob, segmentRegExp } from './glob.js';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rgrid-glob-'));
  for (const f of ['data/b.csv', 'data/a.csv', 'data/c.json', 'data/.hidden.csv', 'data/2024/jan.csv', 'data/2025/jan.csv', 'data/2025/deep/x.csv', 'top.csv', 'odd [1].csv', '.git/ignored.csv']) {
    await mkdir(join(dir, f, '..'), { recursive: true });
    await writeFile(join(dir, f), f);
  }
  await mkdir(join(dir, 'data', 'dir.csv')); // a directory whose name matches: never returned
  await symlink(join(dir, 'data', 'a.csv'), join(dir, 'data', 'link.csv'));
  await symlink(join(dir, 'data'), join(dir, 'loop')); // not followed by **
});

afterAll(() => rm(dir, { recursive: true, force: true }));

describe('glob', () => {
  it('matches files in one folder, sorted, without hidden files or directories', async () => {
    expect(await matchGlob('data/*.csv', dir)).toEqual(['data/a.csv', 'data/b.csv', 'data/link.csv']);
    expect(await matchGlob('./data/?.csv', dir)).toEqual(['data/a.csv', 'data/b.csv']);
    expect(await matchGlob('data/.*.csv', dir)).toEqual(['data/.hidden.csv']);
  });

  it('supports classes, braces and **', async () => {
    expect(await matchGlob('data/[ab].csv', dir)).toEqual(['data/a.csv', 'data/b.csv']);
    expect(await matchGlob('data/[!a]*.csv', dir)).toEqual(['data/b.csv', 'data/link.csv']);
    expect(await matchGlob('data/*.{csv,json}', dir)).toEqual(['data/a.csv', 'data/b.csv', 'data/c.json', 'data/link.csv']);
    expect(await matchGlob('data/**/jan.csv', dir)).toEqual(['data/2024/jan.csv', 'data/2025/jan.csv']);
    expect(await matchGlob('**/*.csv', dir)).toEqual([
      'data/2024/jan.csv',
      'data/2025/deep/x.csv',
      'data/2025/jan.csv',
      'data/a.csv',
      'data/b.csv',
      'data/link.csv',
      'odd [1].csv',
      'top.csv',
    ]);
    expect(await matchGlob('data/*/jan.csv', dir)).toEqual(['data/2024/jan.csv', 'data/2025/jan.csv']);
  });

  it('keeps absolute patterns absolute and literal names literal', async () => {
    expect(await matchGlob(join(dir, 'data', 'a.*'), '/')).toEqual([join(dir, 'data', 'a.csv')]);
    expect(await matchGlob('top.csv', dir)).toEqual(['top.csv']);
    expect(await matchGlob('odd \\[1\\].csv', dir)).toEqual(['odd [1].csv']);
    expect(await matchGlob('missing/*.csv', dir)).toEqual([]);
  });

  it('unions several patterns and reports the ones that matched nothing', async () => {
    const r = await expandGlobs(['data/b.csv', 'data/*.csv', 'nothing/*.txt'], dir);
    expect(r.files).toEqual(['data/a.csv', 'data/b.csv', 'data/link.csv']);
    expect(r.unmatched).toEqual(['nothing/*.txt']);
  });

  it('expands braces and escapes regex characters', () => {
    expect(expandBraces('a{b,c{d,e}}f')).toEqual(['abf', 'acdf', 'acef']);
    expect(expandBraces('{x}')).toEqual(['{x}']);
    expect(segmentRegExp('a.b+(c)').test('a.b+(c)')).toBe(true);
    expect(segmentRegExp('a.b').test('axb')).toBe(false);
  });
});
