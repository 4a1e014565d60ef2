import { stripVTControlCharacters } from 'node:util';
import { describe, expect, it } from 'vitest';
import type { CacheReport } from '../../shared/api/cache.js';
import { formatExplain as colored, formatStats as coloredStats } from './cache.js';

// Colors depend on the terminal (FORCE_COLOR); the text is what is checked.
const formatExplain = (...a: Parameters<typeof colored>) => colored(...a).map((l) => stripVTControlCharacters(l));
const formatStats = (...a: Parameters<typeof coloredStats>) => coloredStats(...a).map((l) => stripVTControlCharacters(l));

const NOW = Date.parse('2025-06-01T12:00:00Z');
const key = (c: string) => c.repeat(64);

const report: CacheReport = {
  script: { key: key('a'), hit: true, reason: null },
  env: { key: key('b'), hit: false, runtime: 'python3.11', packages: 2, builtAt: null, reason: 'requirements changed since last build (+pandas==2.2.2)', added: ['pandas==2.2.2'], removed: [] },
  inputs: { hit: 1, total: 3, bytesHit: 1024 * 1024, bytesTotal: 5 * 1024 * 1024 },
  result: { key: key('c'), reusedFrom: null },
};

describe('rgrid cache output', () => {
  it('explain: keys, and per part hit or miss with the reason', () => {
    expect(formatExplain(report, 'analyze.py', NOW)).toEqual([
      `script       hit   key ${key('a')}`,
      '  analyze.py, python3.11: stored, not uploaded again',
      `environment  miss  key ${key('b')}`,
      '  python3.11 with 2 packages: would be built: requirements changed since last build (+pandas==2.2.2)',
      'inputs       1/3',
      '  1 of 3 files stored (1.0 MB of 5.0 MB); 2 (4.0 MB) would be uploaded',
      `result       miss  key ${key('c')}`,
      '  no earlier identical run succeeded with its outputs still stored: it would run',
      'Nothing was created or run.',
    ]);
  });

  it('explain: a reusable result names the execution', () => {
    const lines = formatExplain({ ...report, result: { key: key('c'), reusedFrom: 'exec_aaaaaaaaaaaaaaaaaaaaaaaa' } }, 'analyze.py', NOW);
    expect(lines).toContain('  identical to exec_aaaaaaaaaaaaaaaaaaaaaaaa, which succeeded: with --reuse-results its outputs are reused and nothing runs');
  });

  it('stats: a table of hit rates, "-" when nothing was counted', () => {
    const row = (hits: number, misses: number) => ({ hits, misses, hitRate: hits + misses ? hits / (hits + misses) : null });
    expect(formatStats({ script: row(3, 1), env: row(1, 1), input: row(0, 0), result: row(2, 6) })).toEqual([
      'KIND           HITS MISSES HIT RATE',
      'script            3      1      75%',
      'environment       1      1      50%',
      'inputs            0      0        -',
      'result            2      6      25%',
    ]);
  });
});
