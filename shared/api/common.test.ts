import { describe, expect, it } from 'vitest';
import { FileName, nestedPathConflict } from './common.js';

describe('FileName', () => {
  it('takes plain file names, including ones that start with dots', () => {
    for (const n of ['job.py', '.hidden', '..double', 'a..b', 'x y (1).csv']) expect(FileName.safeParse(n).success, n).toBe(true);
  });

  it('refuses "." and "..", directories, backslashes, control characters, empty and over-long names', () => {
    for (const n of ['.', '..', 'a/b', '../x.py', 'a\\b.py', 'x\u0000.py', 'new\nline', '', 'x'.repeat(256)]) expect(FileName.safeParse(n).success, JSON.stringify(n)).toBe(false);
    expect(FileName.safeParse('..').error?.issues[0]?.message).toBe('"." and ".." are not file names');
  });
});

describe('nestedPathConflict', () => {
  it('finds a file that another path would have to be under', () => {
    expect(nestedPathConflict(['a', 'a/b'])).toEqual(['a', 'a/b']);
    expect(nestedPathConflict(['x/y/z.csv', 'other', 'x/y'])).toEqual(['x/y', 'x/y/z.csv']);
    expect(nestedPathConflict(['data', 'data/2024/jan.csv'])).toEqual(['data', 'data/2024/jan.csv']);
  });

  it('accepts siblings, shared directories and names that only share a prefix', () => {
    expect(nestedPathConflict([])).toBeNull();
    expect(nestedPathConflict(['a/b', 'a/c', 'a/d/e'])).toBeNull();
    expect(nestedPathConflict(['ab', 'a/b', 'a.csv'])).toBeNull();
  });
});
