import { describe, expect, it } from 'vitest';
import type { BatchCounts } from '../../shared/api/batches.js';
import { formatEta, formatProgress, ProgressReporter, type ProgressView } from './progress.js';

function view(counts: Partial<BatchCounts>, extra: Partial<ProgressView> = {}): ProgressView {
  const c = { created: 0, queued: 0, running: 0, succeeded: 0, failed: 0, canceled: 0, reused: 0, ...counts };
  const total = c.created + c.queued + c.running + c.succeeded + c.failed + c.canceled;
  return { counts: { ...c, total }, etaSeconds: null, status: 'running', startedAt: null, finishedAt: null, createdAt: '2025-01-01T00:00:00.000Z', ...extra };
}

describe('formatProgress', () => {
  it('matches the documented example', () => {
    expect(formatProgress(view({ succeeded: 45, failed: 2, running: 4, queued: 49 }, { etaSeconds: 200 }))).toBe('Progress: 47/100 (47%) | ✓ 45 ✗ 2 ▶ 4 ⏳ 49 | ETA 3m 20s');
  });

  it('all queued: nothing done, waiting for a runner', () => {
    expect(formatProgress(view({ queued: 100 }))).toBe('Progress: 0/100 (0%) | ✓ 0 ✗ 0 ▶ 0 ⏳ 100 | ETA waiting for a runner');
    expect(formatProgress(view({ created: 3 }))).toBe('Progress: 0/3 (0%) | ✓ 0 ✗ 0 ▶ 0 ⏳ 3 | ETA waiting for a runner');
    expect(formatProgress(view({ queued: 9, running: 1 }))).toBe('Progress: 0/10 (0%) | ✓ 0 ✗ 0 ▶ 1 ⏳ 9 | ETA estimating…');
  });

  it('all failed, finished', () => {
    const v = view({ failed: 7 }, { status: 'finished', etaSeconds: 0, startedAt: '2025-01-01T00:00:00.000Z', finishedAt: '2025-01-01T00:01:05.000Z' });
    expect(formatProgress(v)).toBe('Progress: 7/7 (100%) | ✓ 0 ✗ 7 ▶ 0 ⏳ 0 | finished in 1m 5s');
  });

  it('mixed with canceled items (fail-fast) shows them apart', () => {
    const v = view({ succeeded: 3, failed: 1, canceled: 6 }, { status: 'finished', startedAt: '2025-01-01T00:00:00.000Z', finishedAt: '2025-01-01T00:00:04.400Z' });
    expect(formatProgress(v)).toBe('Progress: 10/10 (100%) | ✓ 3 ✗ 1 ▶ 0 ⏳ 0 ⊘ 6 | finished in 4s');
    const canceled = view({ succeeded: 1, canceled: 1 }, { status: 'canceled', startedAt: '2025-01-01T00:00:00.000Z', finishedAt: '2025-01-01T00:00:02.000Z' });
    expect(formatProgress(canceled)).toMatch(/\| canceled after 2s$/);
  });

  it('one item, and ten thousand: percent floors, so 100% means all done', () => {
    expect(formatProgress(view({ running: 1 }))).toBe('Progress: 0/1 (0%) | ✓ 0 ✗ 0 ▶ 1 ⏳ 0 | ETA estimating…');
    expect(formatProgress(view({ succeeded: 1 }, { status: 'finished', startedAt: '2025-01-01T00:00:00.000Z', finishedAt: '2025-01-01T00:00:00.300Z' }))).toBe(
      'Progress: 1/1 (100%) | ✓ 1 ✗ 0 ▶ 0 ⏳ 0 | finished in 0s',
    );
    expect(formatProgress(view({ succeeded: 9_990, failed: 9, running: 1 }, { etaSeconds: 1 }))).toBe('Progress: 9999/10000 (99%) | ✓ 9990 ✗ 9 ▶ 1 ⏳ 0 | ETA 1s');
    expect(formatProgress(view({ succeeded: 1, queued: 9_999 }, { etaSeconds: 7_260 }))).toBe('Progress: 1/10000 (0%) | ✓ 1 ✗ 0 ▶ 0 ⏳ 9999 | ETA 2h 1m');
  });

  it('items that reused earlier results (--reuse-results) show inside the succeeded count', () => {
    expect(formatProgress(view({ succeeded: 995, reused: 990, running: 5 }, { etaSeconds: 4 }))).toBe('Progress: 995/1000 (99%) | ✓ 995 (990 reused) ✗ 0 ▶ 5 ⏳ 0 | ETA 4s');
  });

  it('an empty batch does not divide by zero', () => {
    expect(formatProgress(view({}))).toBe('Progress: 0/0 (0%) | ✓ 0 ✗ 0 ▶ 0 ⏳ 0 | ETA waiting for a runner');
  });

  it('formats ETAs in whole seconds', () => {
    expect([formatEta(0), formatEta(59.4), formatEta(60), formatEta(3600)]).toEqual(['0s', '59s', '1m', '1h']);
  });
});

describe('ProgressReporter', () => {
  it('plain mode: the first line at once, then at most one per interval while it changes, and the last', () => {
    let t = 0;
    const out: string[] = [];
    const r = new ProgressReporter({ inPlace: false, intervalMs: 5000, write: (s) => out.push(s), now: () => t });
    r.update(view({ queued: 4 }));
    r.update(view({ queued: 3, running: 1 }));
    t = 5000;
    r.update(view({ queued: 3, running: 1 }));
    t = 6000;
    r.update(view({ queued: 2, running: 1, succeeded: 1 }));
    r.log('✗ a.csv failed');
    r.update(view({ succeeded: 3, failed: 1 }, { status: 'finished', startedAt: '2025-01-01T00:00:00.000Z', finishedAt: '2025-01-01T00:00:06.000Z' }));
    r.finish();
    expect(out.join('')).toBe(
      [
        'Progress: 0/4 (0%) | ✓ 0 ✗ 0 ▶ 0 ⏳ 4 | ETA waiting for a runner',
        'Progress: 0/4 (0%) | ✓ 0 ✗ 0 ▶ 1 ⏳ 3 | ETA estimating…',
        '✗ a.csv failed',
        'Progress: 4/4 (100%) | ✓ 3 ✗ 1 ▶ 0 ⏳ 0 | finished in 6s',
        '',
      ].join('\n'),
    );
    expect(out.join('')).not.toMatch(/[\r\u001b]/);
  });

  it('in place: redraws one line and keeps messages above it', () => {
    let t = 0;
    const out: string[] = [];
    const r = new ProgressReporter({ inPlace: true, write: (s) => out.push(s), now: () => t });
    r.update(view({ queued: 2 }));
    t = 200;
    r.log('a message');
    r.update(view({ succeeded: 2 }, { status: 'finished', startedAt: '2025-01-01T00:00:00.000Z', finishedAt: '2025-01-01T00:00:01.000Z' }));
    r.finish();
    const text = out.join('');
    expect(text.startsWith('\r\u001b[2KProgress: 0/2')).toBe(true);
    expect(text).toContain('\r\u001b[2Ka message\nProgress: 0/2');
    expect(text.endsWith('Progress: 2/2 (100%) | ✓ 2 ✗ 0 ▶ 0 ⏳ 0 | finished in 1s\n')).toBe(true);
  });
});
