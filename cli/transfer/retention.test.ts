import { describe, expect, it } from 'vitest';
import type { Artifact } from '../../shared/api/executions.js';
import { expiredLine, expiresIn, expiryWarnings } from './retention.js';

const NOW = Date.parse('2025-06-01T12:00:00Z');
const H = 3600_000;
const at = (ms: number) => new Date(NOW + ms).toISOString();

function art(path: string, expiresAt: string): Artifact {
  return { id: 'a', kind: 'output', path, size: 1, sha256: 'a'.repeat(64), contentType: 'text/plain', encoding: 'identity', expiresAt, expired: false, download: null };
}

describe('retention messages', () => {
  it('warns only within 3 days, in days, then hours', () => {
    expect(expiresIn(at(30 * 24 * H), NOW)).toBeUndefined();
    expect(expiresIn(at(72 * H + 1), NOW)).toBeUndefined();
    expect(expiresIn(at(48 * H - 60_000), NOW)).toBe('Expires in 2 days');
    expect(expiresIn(at(26 * H), NOW)).toBe('Expires in 1 day');
    expect(expiresIn(at(5 * H), NOW)).toBe('Expires in 5 hours');
    expect(expiresIn(at(20 * 60_000), NOW)).toBe('Expires in less than an hour');
  });

  it('groups warnings so many outputs make one line each', () => {
    const arts = [art('a.csv', at(47 * H)), art('b.csv', at(47 * H)), art('c.csv', at(47 * H)), art('d.csv', at(47 * H)), art('e.csv', at(10 * H)), art('fresh.csv', at(29 * 24 * H))];
    expect(expiryWarnings(arts, NOW)).toEqual([
      'a.csv, b.csv, c.csv and 1 more: Expires in 2 days (2025-06-03); the stored copies are deleted then.',
      'e.csv: Expires in 10 hours (2025-06-01); the stored copy is deleted then.',
    ]);
  });

  it('says when an expired output went', () => {
    expect(expiredLine('out/report.csv', '2025-05-01T00:00:00.000Z')).toBe('out/report.csv expired on 2025-05-01 and was not downloaded');
  });
});
