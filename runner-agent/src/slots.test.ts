import { describe, expect, it, vi } from 'vitest';
import { LIMITS } from '../../shared/limits.js';
import { SlotScheduler } from './slots.js';

/**
 * The claim loop with a scripted control plane: every claim waits until the test answers it, and
 * every job's container and report end when the test says so.
 */
interface Deferred<T = void> {
  promise: Promise<T>;
  resolve(v: T): void;
  reject(err: unknown): void;
}
function deferred<T = void>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

interface TestJob {
  name: string;
  slot?: number;
  container: Deferred;
  reported: Deferred;
}

/** Lets every pending promise chain run. */
const settle = () => new Promise((r) => setImmediate(r));

function harness(slots: number) {
  const claims: { maxJobs: number; answer: Deferred<TestJob[]> }[] = [];
  const started: TestJob[] = [];
  const surplus: TestJob[] = [];
  const jobs = new Map<string, TestJob>();
  const scheduler = new SlotScheduler<TestJob>({
    slots,
    claim: (maxJobs) => {
      const answer = deferred<TestJob[]>();
      claims.push({ maxJobs, answer });
      return answer.promise;
    },
    start: (job, slot) => {
      job.slot = slot;
      started.push(job);
      return { containerDone: job.container.promise, done: job.reported.promise };
    },
    surplus: (job) => void surplus.push(job),
    log: () => undefined,
  });
  const job = (name: string): TestJob => {
    const j = { name, container: deferred(), reported: deferred() };
    jobs.set(name, j);
    return j;
  };
  /** Answers the open claim with new jobs of these names. */
  const answer = async (...names: string[]) => {
    claims.at(-1)!.answer.resolve(names.map(job));
    await settle();
  };
  const containerDone = async (name: string) => {
    jobs.get(name)!.container.resolve();
    await settle();
  };
  const reported = async (name: string) => {
    jobs.get(name)!.reported.resolve();
    await settle();
  };
  return { scheduler, claims, started, surplus, answer, containerDone, reported, maxJobs: () => claims.map((c) => c.maxJobs) };
}

describe('SlotScheduler: one claim loop for all slots', () => {
  it('claims for every free slot in one request, starts the jobs at once, and claims again for the rest', async () => {
    const h = harness(3);
    const run = h.scheduler.run();
    await settle();
    expect(h.maxJobs()).toEqual([3]);
    await h.answer('a', 'b');
    expect(h.started.map((j) => [j.name, j.slot])).toEqual([
      ['a', 0],
      ['b', 1],
    ]);
    expect(h.maxJobs()).toEqual([3, 1]);
    await h.answer();
    expect(h.maxJobs()).toEqual([3, 1, 1]); // an empty answer: claim again, for the same slot
    h.scheduler.drain();
    await h.answer();
    for (const n of ['a', 'b']) await h.containerDone(n), await h.reported(n);
    await run;
  });

  it('with no free slot, claims nothing until a container is gone (no busy loop); never more jobs than free slots', async () => {
    const h = harness(2);
    void h.scheduler.run();
    await settle();
    await h.answer('a', 'b');
    await settle();
    expect(h.maxJobs()).toEqual([2]); // both slots busy: no claim open
    await h.containerDone('b');
    expect(h.maxJobs()).toEqual([2, 1]);
    expect(h.scheduler.freeSlots).toBe(1);
    await h.answer('c');
    expect(h.started.map((j) => [j.name, j.slot])).toEqual([
      ['a', 0],
      ['b', 1],
      ['c', 1],
    ]);
    expect(h.maxJobs()).toEqual([2, 1]);
  });

  it('a slot takes its next job while the previous one reports, but only one such job: it is free again once that one has reported', async () => {
    const h = harness(1);
    void h.scheduler.run();
    await settle();
    await h.answer('a');
    await h.containerDone('a'); // a uploads and reports; the slot is free meanwhile
    expect(h.maxJobs()).toEqual([1, 1]);
    await h.answer('b');
    await h.containerDone('b'); // a still reporting: the slot waits for it
    expect(h.maxJobs()).toEqual([1, 1]);
    expect(h.scheduler.freeSlots).toBe(0);
    await h.reported('a');
    expect(h.maxJobs()).toEqual([1, 1, 1]); // now b is the one job reporting
  });

  it('a long job holds back only its own slot: slots freed during a claim are all in the next one', async () => {
    const h = harness(4);
    void h.scheduler.run();
    await settle();
    await h.answer('long', 'a', 'b', 'c');
    for (const n of ['a', 'b', 'c']) await h.containerDone(n);
    expect(h.maxJobs()).toEqual([4, 1]); // the claim opened when a's container was gone
    await h.answer(); // b and c freed up meanwhile: the next claim asks for all three
    expect(h.maxJobs()).toEqual([4, 1, 3]);
    await h.answer('d', 'e', 'f');
    expect(h.started.slice(4).map((j) => j.slot).sort()).toEqual([1, 2, 3]);
  });

  it('asks for at most LIMITS.maxClaimJobs jobs per claim', async () => {
    const h = harness(LIMITS.maxClaimJobs + 8);
    void h.scheduler.run();
    await settle();
    await h.answer(...Array.from({ length: LIMITS.maxClaimJobs }, (_, i) => `j${i}`));
    expect(h.maxJobs()).toEqual([LIMITS.maxClaimJobs, 8]);
  });

  it('gives back jobs beyond the free slots (an answer with more than asked for)', async () => {
    const h = harness(2);
    void h.scheduler.run();
    await settle();
    await h.answer('a', 'b', 'extra');
    expect(h.started.map((j) => j.name)).toEqual(['a', 'b']);
    expect(h.surplus.map((j) => j.name)).toEqual(['extra']);
  });
});

describe('SlotScheduler: drain and failures', () => {
  it('drain: no claims after the open one, whose jobs still run; run() resolves once every job has reported', async () => {
    const h = harness(2);
    let ended = false;
    const run = h.scheduler.run().then(() => (ended = true));
    await settle();
    h.scheduler.drain();
    await h.answer('a');
    expect(h.started.map((j) => j.name)).toEqual(['a']);
    expect(h.maxJobs()).toEqual([2]);
    await h.containerDone('a');
    expect(ended).toBe(false);
    await h.reported('a');
    await run;
    expect(h.maxJobs()).toEqual([2]);
  });

  it('drain while waiting for a free slot ends the loop without a claim', async () => {
    const h = harness(1);
    const run = h.scheduler.run();
    await settle();
    await h.answer('a');
    h.scheduler.drain();
    await h.containerDone('a');
    await h.reported('a');
    await run;
    expect(h.maxJobs()).toEqual([1]);
  });

  it('a failed claim is retried after a backoff that a drain cuts short', async () => {
    const random = vi.spyOn(Math, 'random').mockReturnValue(1); // the longest backoff: 500 ms, then 1 s
    try {
      const h = harness(1);
      const run = h.scheduler.run();
      await settle();
      const t0 = Date.now();
      h.claims[0]!.answer.reject(new TypeError('fetch failed'));
      while (h.claims.length < 2 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 10));
      expect(h.maxJobs()).toEqual([1, 1]);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(490);
      h.claims[1]!.answer.reject(new TypeError('fetch failed'));
      await settle();
      const t1 = Date.now();
      h.scheduler.drain(); // during the 1 s backoff
      await run;
      expect(Date.now() - t1).toBeLessThan(100);
      expect(h.claims.length).toBe(2);
    } finally {
      random.mockRestore();
    }
  });
});
