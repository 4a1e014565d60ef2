import { describe, expect, it } from 'vitest';
import type { BatchSnapshot } from '../../shared/api/batches.js';
import { formatBatchStatus, formatBatchTable } from './status.js';

const snap: BatchSnapshot = {
  id: 'batch_aaaaaaaaaaaaaaaaaaaaaaaa',
  name: 'job.py data/*.csv',
  status: 'finished',
  counts: { total: 30, created: 0, queued: 0, running: 0, succeeded: 5, failed: 25, canceled: 0, reused: 0 },
  parallel: 4,
  failFast: false,
  startedAt: '2025-01-01T00:00:00.000Z',
  finishedAt: '2025-01-01T00:01:00.000Z',
  etaSeconds: 0,
  failures: Array.from({ length: 25 }, (_, i) => ({
    executionId: `exec_${String(i).padStart(24, 'b')}`,
    inputName: `data/f${i}.csv`,
    status: 'failed' as const,
    failureKind: 'timeout' as const,
    message: 'timed out after 60s',
    exitCode: null,
  })),
  metadata: { project: 'x' },
  createdAt: '2025-01-01T00:00:00.000Z',
  version: 9,
};

describe('batch status text', () => {
  it('shows counts, settings and the first 20 failures', () => {
    const text = formatBatchStatus(snap, Date.parse('2025-01-01T00:02:00.000Z'));
    expect(text).toContain('status     finished (5 succeeded, 25 failed)');
    expect(text).toContain('progress   30/30 (100%) | ✓ 5 ✗ 25 ▶ 0 ⏳ 0 | finished in 1m');
    expect(text).toContain('parallel   at most 4 at once');
    expect(text).toContain('metadata   project=x');
    expect(text).toContain('Did not succeed (25):');
    expect(text).toContain('  ✗ data/f0.csv   timeout: timed out after 60s');
    expect(text).not.toContain('data/f20.csv');
    expect(text).toContain('… and 5 more');
    expect(text).toContain(`Retry failures: rgrid retry --batch ${snap.id}`);
  });

  it('lists batches in a table', () => {
    const running = { ...snap, id: 'batch_cccccccccccccccccccccccc', status: 'running' as const, finishedAt: null, counts: { ...snap.counts, failed: 1, running: 24 } };
    const lines = formatBatchTable([running, snap]).split('\n');
    expect(lines[0]).toMatch(/^ID +STATUS +DONE +SUCCEEDED +FAILED +CREATED +NAME$/);
    expect(lines[1]).toMatch(/^batch_c+ +running +6\/30 +5 +1 +2025-01-01 00:00:00Z +job\.py data\/\*\.csv$/);
    expect(lines[2]).toMatch(/^batch_a+ +finished +30\/30 +5 +25 /);
  });
});
