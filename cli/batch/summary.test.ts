import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { BatchFailure, BatchSnapshot } from '../../shared/api/batches.js';
import { batchExitCode, failureLines, failuresFileText, summaryLine, writeFailuresFile } from './summary.js';

const E = (n: number) => `exec_${String(n).padStart(24, 'a')}`;
const failure = (n: number, input: string, extra: Partial<BatchFailure> = {}): BatchFailure => ({
  executionId: E(n),
  inputName: input,
  status: 'failed',
  failureKind: 'script_error',
  message: 'script exited with code 3',
  exitCode: 3,
  ...extra,
});

function snap(counts: Partial<BatchSnapshot['counts']>, failures: BatchFailure[] = []): BatchSnapshot {
  const c = { created: 0, queued: 0, running: 0, succeeded: 0, failed: 0, canceled: 0, reused: 0, ...counts };
  return {
    id: 'batch_aaaaaaaaaaaaaaaaaaaaaaaa',
    name: null,
    status: 'finished',
    counts: { ...c, total: c.created + c.queued + c.running + c.succeeded + c.failed + c.canceled },
    parallel: null,
    failFast: false,
    startedAt: null,
    finishedAt: '2025-01-01T00:00:00.000Z',
    etaSeconds: 0,
    failures,
    metadata: {},
    createdAt: '2025-01-01T00:00:00.000Z',
    version: 1,
  };
}

describe('batch summary', () => {
  it('says how many succeeded and failed', () => {
    expect(summaryLine(snap({ succeeded: 95, failed: 5 }))).toBe('95 succeeded, 5 failed');
    expect(summaryLine(snap({ succeeded: 3, failed: 1, canceled: 6 }))).toBe('3 succeeded, 1 failed, 6 canceled');
    expect(summaryLine(snap({ succeeded: 1000, reused: 990 }))).toBe('1000 succeeded (990 reused earlier results, nothing ran), 0 failed');
  });

  it('lists each failed input with its kind and message', () => {
    const lines = failureLines([failure(1, 'data/x.csv'), failure(2, 'data/longer-name.csv', { failureKind: 'timeout', message: 'timed out after 60s', exitCode: null }), failure(3, 'y.csv', { status: 'canceled', failureKind: 'canceled', message: null })]);
    expect(lines).toEqual([
      `  ✗ data/x.csv            script_error: script exited with code 3  (${E(1)})`,
      `  ✗ data/longer-name.csv  timeout: timed out after 60s  (${E(2)})`,
      `  ⊘ y.csv                 canceled: canceled  (${E(3)})`,
    ]);
    // Without a runner message, the outcome's own words.
    expect(failureLines([failure(4, 'z', { message: null, failureKind: 'oom' })])[0]).toMatch(/oom: Script ran out of memory/);
  });

  it('exit code: 0 if any succeeded, 1 if all failed or the batch was cut short', () => {
    expect(batchExitCode(snap({ succeeded: 95, failed: 5 }))).toBe(0);
    expect(batchExitCode(snap({ failed: 7 }))).toBe(1);
    expect(batchExitCode(snap({ succeeded: 2, failed: 1, canceled: 7 }))).toBe(1);
  });

  it('batch_failures.txt: one tab-separated row per failure; removed once nothing fails; a foreign file is left alone', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rgrid-summary-'));
    try {
      const s = snap({ succeeded: 1, failed: 1 }, [failure(1, 'data/a\tb.csv', { message: 'line one\nline two' })]);
      const path = await writeFailuresFile(join(dir, 'out'), s);
      const text = await readFile(path!, 'utf8');
      expect(text.split('\n').slice(2)).toEqual(['execution_id\tinput\tkind\tmessage', `${E(1)}\tdata/a b.csv\tscript_error\tline one line two`, '']);
      expect(failuresFileText(s)).toMatch(/^# rgrid batch batch_a+: 1 of 2 inputs did not succeed/);
      expect(await writeFailuresFile(join(dir, 'out'), snap({ succeeded: 2 }))).toBeUndefined();
      await expect(readFile(path!, 'utf8')).rejects.toThrow(/ENOENT/);
      await writeFile(path!, 'my own notes');
      expect(await writeFailuresFile(join(dir, 'out'), s)).toBeUndefined();
      expect(await readFile(path!, 'utf8')).toBe('my own notes');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
