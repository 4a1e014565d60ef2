/**
 * The runner's slots and its one claim loop. A slot runs one container at a time; once a job's
 * container is gone, the slot may take its next job while that job uploads and reports (at most
 * one such job per slot, so uploads overlap the next container without piling up). A slot is free
 * when its container is gone and its previous job has reported.
 *
 * One long poll claims for every free slot at once (maxJobs = free slots, at most
 * LIMITS.maxClaimJobs); the jobs go to free slots at once and the loop claims again. With no slot
 * free it waits for one (no polling). Each slot moves on its own: a long job holds back only its
 * own slot, never work claimed for the others.
 */
import { LIMITS } from '../../shared/limits.js';
import { backoffDelay } from './retry.js';

export interface StartedJob {
  /** Resolves when the job's container is gone. */
  containerDone: Promise<void>;
  /** Resolves when the job has reported (or given up). */
  done: Promise<void>;
}

export interface SlotDeps<T> {
  slots: number;
  /** One claim for up to maxJobs jobs (a long poll). A failure is retried with backoff. */
  claim(maxJobs: number): Promise<T[]>;
  start(job: T, slot: number): StartedJob;
  /** A job beyond the free slots (the control plane answered more than asked for): give it back. */
  surplus(job: T): void;
  log(line: string): void;
}

export class SlotScheduler<T> {
  private readonly free: number[];
  /** Per slot: the job that has left its container and is still uploading and reporting. */
  private readonly finishing: Promise<void>[];
  private readonly jobs = new Set<Promise<void>>();
  private draining = false;
  /** Ends a claim backoff early on drain. */
  private readonly drained = new AbortController();
  /** Resolves the wait for a free slot. */
  private wake: (() => void) | undefined;

  constructor(private readonly deps: SlotDeps<T>) {
    this.free = Array.from({ length: deps.slots }, (_, i) => i);
    this.finishing = this.free.map(() => Promise.resolve());
  }

  get freeSlots(): number {
    return this.free.length;
  }

  /** The claim loop; resolves once draining and every job it started has reported. */
  async run(): Promise<void> {
    try {
      await this.claimLoop();
    } finally {
      while (this.jobs.size) await Promise.all(this.jobs);
    }
  }

  /**
   * No more claims. A claim already open still returns, and its jobs run (kill() gives them back
   * in the agent's claim instead).
   */
  drain(): void {
    this.draining = true;
    this.drained.abort();
    this.wake?.();
  }

  private async claimLoop(): Promise<void> {
    let failures = 0;
    while (!this.draining) {
      if (!this.free.length) {
        await new Promise<void>((resolve) => (this.wake = resolve));
        continue;
      }
      const maxJobs = Math.min(this.free.length, LIMITS.maxClaimJobs);
      let jobs: T[];
      try {
        jobs = await this.deps.claim(maxJobs);
        failures = 0;
      } catch (err) {
        failures++;
        if (failures === 1 || failures % 10 === 0) this.deps.log(`claim failed (${(err as Error).message}); retrying`);
        await this.pause(backoffDelay(failures, 250, 10_000));
        continue;
      }
      // Slots only free up during a claim, so up to maxJobs jobs always fit.
      for (const job of jobs) {
        const slot = this.free.shift();
        if (slot === undefined) this.deps.surplus(job);
        else this.assign(slot, job);
      }
    }
  }

  private assign(slot: number, job: T): void {
    const previous = this.finishing[slot]!;
    const { containerDone, done } = this.deps.start(job, slot);
    const reported = done.catch(() => undefined);
    this.jobs.add(reported);
    void reported.then(() => this.jobs.delete(reported));
    void containerDone
      .catch(() => undefined)
      .then(() => previous)
      .then(() => {
        this.finishing[slot] = reported;
        this.free.push(slot);
        this.wake?.();
      });
  }

  /** A backoff that a drain cuts short. */
  private pause(ms: number): Promise<void> {
    const signal = this.drained.signal;
    if (signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const t = setTimeout(done, ms);
      signal.addEventListener('abort', done);
    });
  }
}
