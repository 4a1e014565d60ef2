import { describe, expect, it } from 'vitest';
import { firstFree, splitExtension, variant } from './naming.js';

describe('conflict naming', () => {
  it.each([
    ['output.csv', 1, 'output (1).csv'],
    ['output.csv', 2, 'output (2).csv'],
    ['logs.tar.gz', 1, 'logs (1).tar.gz'],
    ['Makefile', 1, 'Makefile (1)'],
    ['.env', 1, '.env (1)'],
    ['a.b.c', 3, 'a.b (3).c'],
    ['report.csv', 0, 'report.csv'],
  ])('%s #%i → %s', (name, n, expected) => {
    expect(variant(name, n)).toBe(expected);
  });

  it('splits the extension the way variants need it', () => {
    expect(splitExtension('x.tar.zst')).toEqual(['x', '.tar.zst']);
    expect(splitExtension('.tar.gz')).toEqual(['.tar', '.gz']);
  });

  it('picks the first free name', () => {
    const taken = new Set(['output.csv', 'output (1).csv']);
    expect(firstFree('output.csv', (c) => taken.has(c))).toBe('output (2).csv');
    expect(firstFree('fresh.csv', (c) => taken.has(c))).toBe('fresh.csv');
  });
});
