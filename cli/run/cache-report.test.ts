import { describe, expect, it } from 'vitest';
import type { CacheReport } from '../../shared/api/cache.js';
import { ago, cacheReportLines } from './cache-report.js';

const NOW = Date.parse('2025-06-01T12:00:00Z');
const K = 'a'.repeat(64);

function report(over: { env?: Partial<CacheReport['env']>; script?: Partial<CacheReport['script']>; inputs?: Partial<CacheReport['inputs']> } = {}): CacheReport {
  return {
    script: { key: K, hit: true, reason: null, ...over.script },
    env: { key: K, hit: true, runtime: 'python3.11', packages: 3, builtAt: new Date(NOW - 2 * 3600_000).toISOString(), reason: null, added: [], removed: [], ...over.env },
    inputs: { hit: 3, total: 3, bytesHit: 120 * 1024 * 1024, bytesTotal: 120 * 1024 * 1024, ...over.inputs },
    result: { key: K, reusedFrom: null },
  };
}

describe('cache report lines', () => {
  it('says what was reused', () => {
    expect(cacheReportLines(report(), {}, NOW)).toEqual([
      { kind: 'hit', text: 'Using cached environment (python3.11, 3 packages, built 2h ago)' },
      { kind: 'hit', text: 'Using cached script' },
      { kind: 'hit', text: 'Using cached inputs (3 files, 120 MB)' },
    ]);
  });

  it('says why the environment is built, and nothing for new scripts or inputs', () => {
    const r = report({ env: { hit: false, builtAt: null, reason: 'requirements changed since last build (+pandas==2.2.2)' }, script: { hit: false }, inputs: { hit: 0, bytesHit: 0 } });
    expect(cacheReportLines(r, {}, NOW)).toEqual([{ kind: 'note', text: 'Building environment: requirements changed since last build (+pandas==2.2.2)' }]);
  });

  it('partial input hits, --no-cache and --no-cache-inputs', () => {
    expect(cacheReportLines(report({ inputs: { hit: 2, bytesHit: 80 * 1024 * 1024 } }), {}, NOW).at(-1)).toEqual({ kind: 'hit', text: 'Using cached inputs (2 of 3 files, 80 MB)' });
    const lines = cacheReportLines(report(), { noCache: true, forceUpload: true }, NOW);
    expect(lines[0]).toEqual({ kind: 'note', text: 'Building environment: --no-cache given (python3.11, 3 packages, rebuilt from scratch)' });
    expect(lines.at(-1)).toEqual({ kind: 'note', text: 'Uploading all 3 inputs again (--no-cache-inputs)' });
  });

  it('has no environment line without requirements (the base image runs the script)', () => {
    expect(cacheReportLines(report({ env: { packages: 0 } }), {}, NOW).map((l) => l.text)).toEqual(['Using cached script', 'Using cached inputs (3 files, 120 MB)']);
  });

  it('ages coarsely', () => {
    const iso = (ms: number) => new Date(NOW - ms).toISOString();
    expect([ago(iso(2000), NOW), ago(iso(40_000), NOW), ago(iso(5 * 60_000), NOW), ago(iso(30 * 3600_000), NOW), ago(iso(5 * 86400_000), NOW)]).toEqual(['just now', '40s ago', '5m ago', '30h ago', '5 days ago']);
  });
});
