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
  it('draws one line with percent and MB/s for large files on a terminal, then a summary', () => {
    const { p, writes, tick } = harness(true);
    const count = p.track(40 * MB);
    expect(p.track(1 * MB)).toBeTypeOf('function'); // small file: no bar, a no-op counter
    tick(1000);
    count(10 * MB);
    expect(writes.at(-1)).toBe('\r\u001b[2KUploading 1 file ██████░░░░░░░░░░░░░░░░░░  25%  10 MB/40 MB  10.0 MB/s');
    tick(50);
    count(1 * MB); // throttled: no redraw within 100 ms
    expect(writes).toHaveLength(1);
    tick(950);
    count(29 * MB);
    expect(writes.at(-1)).toMatch(/100%  40 MB\/40 MB  20\.0 MB\/s$/);
    p.finish();
    expect(writes.at(-1)).toBe('\r\u001b[2KUploaded 40 MB in 2.0s (20.0 MB/s)\n');
  });

  it('prints nothing at all when not a terminal', () => {
    const { p, writes } = harness(false);
    p.track(400 * MB)(400 * MB);
    p.finish();
    expect(writes).toEqual([]);
  });
});
