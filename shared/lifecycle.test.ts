import { describe, expect, it } from 'vitest';
import { EXECUTION_STATES, FAILURE_KINDS, describeFailure, isFinal, transition, type ExecutionState, type LifecycleEvent } from './lifecycle.js';

const events: LifecycleEvent[] = [
  { type: 'submit' },
  { type: 'claim' },
  { type: 'lease_expired', attemptsLeft: true },
  { type: 'lease_expired', attemptsLeft: false },
  { type: 'complete', outcome: 'succeeded' },
  { type: 'complete', outcome: 'failed', failureKind: 'script_error' },
  { type: 'complete', outcome: 'failed', failureKind: 'canceled' },
  { type: 'cancel' },
  { type: 'fail', failureKind: 'input_error' },
  { type: 'reuse' },
];

/** The full table: every (state, event) pair and its expected result ('-' = refused). */
const expected: Record<ExecutionState, string[]> = {
  //         submit    claim      expired+  expired-          succeeded   failed            completed-canceled  cancel      fail   reuse
  created: ['queued', '-', '-', '-', '-', '-', '-', 'canceled', 'failed:input_error', 'succeeded'],
  queued: ['-', 'running', '-', '-', '-', '-', '-', 'canceled', 'failed:input_error', '-'],
  running: ['-', '-', 'queued', 'failed:runner_lost', 'succeeded', 'failed:script_error', 'canceled', 'canceled', 'failed:input_error', '-'],
  succeeded: ['-', '-', '-', '-', '-', '-', '-', '-', '-', '-'],
  failed: ['-', '-', '-', '-', '-', '-', '-', '-', '-', '-'],
  canceled: ['-', '-', '-', '-', '-', '-', '-', '-', '-', '-'],
};

describe('execution state machine', () => {
  for (const state of EXECUTION_STATES) {
    events.forEach((event, i) => {
      const want = expected[state][i]!;
      it(`${state} + ${JSON.stringify(event)} → ${want}`, () => {
        const r = transition(state, event);
        if (want === '-') {
          expect(r.ok).toBe(false);
          if (!r.ok) expect(r.reason).toMatch(new RegExp(`execution that is ${state}`));
        } else {
          const [s, kind] = want.split(':');
          expect(r).toMatchObject({ ok: true, state: s });
          if (r.ok && s !== 'canceled') expect(r.failureKind).toBe(kind);
        }
      });
    });
  }

  it('knows which states are final', () => {
    expect(EXECUTION_STATES.filter(isFinal)).toEqual(['succeeded', 'failed', 'canceled']);
  });

  it('describes every failure kind with a distinct exit code', () => {
    const codes = FAILURE_KINDS.filter((k) => k !== 'script_error').map((k) => describeFailure(k, null).exitCode);
    expect(new Set(codes).size).toBe(codes.length);
    expect(describeFailure('script_error', 3).exitCode).toBe(3);
    expect(describeFailure('script_error', null).exitCode).toBe(1);
    for (const k of FAILURE_KINDS) expect(describeFailure(k, 1).summary.length).toBeGreaterThan(5);
  });
});
