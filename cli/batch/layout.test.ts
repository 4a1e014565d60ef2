import { describe, expect, it } from 'vitest';
import { folderNames } from './layout.js';

const names = (inputs: string[]) => Object.fromEntries(folderNames(inputs));

describe('output folder names', () => {
  it('uses the file name without its extension', () => {
    expect(names(['data/a.csv', 'data/b.csv', 'logs.tar.gz', 'README'])).toEqual({ 'data/a.csv': 'a', 'data/b.csv': 'b', 'logs.tar.gz': 'logs', README: 'README' });
  });

  it('tells same-named inputs from different folders apart by their nearest parent folder', () => {
    expect(names(['data/2024/jan.csv', 'data/2025/jan.csv', 'data/feb.csv'])).toEqual({
      'data/2024/jan.csv': 'jan (2024)',
      'data/2025/jan.csv': 'jan (2025)',
      'data/feb.csv': 'feb',
    });
    expect(names(['x/2024/jan.csv', 'y/2024/jan.csv'])).toEqual({ 'x/2024/jan.csv': 'jan (x-2024)', 'y/2024/jan.csv': 'jan (y-2024)' });
    expect(names(['jan.csv', 'old/jan.csv'])).toEqual({ 'jan.csv': 'jan', 'old/jan.csv': 'jan (old)' });
    expect(names(['/abs/in/a.csv', 'rel/a.csv'])).toEqual({ '/abs/in/a.csv': 'a (in)', 'rel/a.csv': 'a (rel)' });
  });

  it('never gives two inputs one folder: case-insensitive, counters last', () => {
    expect(names(['data/a.csv', 'data/a.json', 'data/A.txt'])).toEqual({ 'data/A.txt': 'A (data)', 'data/a.csv': 'a (data) (1)', 'data/a.json': 'a (data) (2)' });
    const many = Array.from({ length: 10_000 }, (_, i) => `d${i % 7}/sub${i % 3}/f${i % 50}.csv`);
    const folders = [...folderNames(many).values()];
    expect(new Set(folders.map((f) => f.toLowerCase())).size).toBe(new Set(many).size);
  });

  it('depends only on the set of names, not their order', () => {
    const a = ['b/x.csv', 'a/x.csv', 'c.csv'];
    expect(names(a)).toEqual(names([...a].reverse()));
  });
});
