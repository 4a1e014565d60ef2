import { describe, expect, it } from 'vitest';
import { Progress } from './progress.js';

const MB = 1024 * 1024;

function harness(tty: boolean) {
  let now = 1_000_000;
  const writes: string[] = [];
  const p = new Progress({ verb: 'Uploading', tty, write: (s) => writes.push(s), now: () => now });
  return { p, writes, tick: (ms: number) => (now += ms) };
}

describe('Progress', () => {
  it('draws one line with percent, MB/s and ETA for large files on a terminal, then a summary', () => {
    const { p, writes, tick } = harness(true);
    const count = p.track(40 * MB);
    expect(p.track(1 * MB)).toBeTypeOf('function'); // small file: no bar, a no-op counter
    tick(1000);
    count(10 * MB);
    expect(writes.at(-1)).toBe('\r\u001b[2KUploading 1 file ██████░░░░░░░░░░░░░░░░░░  25%  10 MB/40 MB  10.0 MB/s  ETA 3s');
    tick(50);
    count(1 * MB); // throttled: no redraw within 100 ms
    expect(writes).toHaveLength(1);
    tick(950);
    count(29 * MB);
    expect(writes.at(-1)).toMatch(/100%  40 MB\/40 MB  20\.0 MB\/s  ETA 0s$/);
    p.finish();
    expect(writes.at(-1)).toBe('\r\u001b[2KUploaded 40 MB in 2.0s (20.0 MB/s)\n');
  });

  it('writes plain lines elsewhere: every 10 points, at most one a second, no control characters', () => {
    const { p, writes, tick } = harness(false);
    const count = p.track(400 * MB);
    tick(500);
    count(80 * MB); // 20%, but within the first second: nothing yet
    expect(writes).toEqual([]);
    tick(500);
    count(20 * MB); // 25% after 1 s
    expect(writes).toEqual(['Uploading 1 file: 25% of 400 MB, 100.0 MB/s, ETA 3s\n']);
    tick(1000);
    count(20 * MB); // 30%: only 5 points more
    expect(writes).toHaveLength(1);
    tick(10);
    count(20 * MB); // 35%
    expect(writes.at(-1)).toBe('Uploading 1 file: 35% of 400 MB, 69.7 MB/s, ETA 4s\n');
    tick(1990);
    count(260 * MB); // done: the summary says it
    p.finish();
    expect(writes.at(-1)).toBe('Uploaded 400 MB in 4.0s (100.0 MB/s)\n');
    expect(writes.join('')).not.toMatch(/[\r\u001b]/);
  });

  it('says nothing for small files', () => {
    const { p, writes } = harness(false);
    p.track(5 * MB)(5 * MB);
    p.finish();
    expect(writes).toEqual([]);
  });

  it('gives an ETA in minutes for long transfers and "?" before there is a rate', () => {
    const { p, tick } = harness(true);
    const count = p.track(10_000 * MB);
    expect(p.eta()).toBe('?');
    tick(10_000);
    count(100 * MB);
    expect(p.eta()).toBe('16m 30s');
  });
});
