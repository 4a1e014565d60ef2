/**
 * The runner's one heartbeat (POST /runner/v1/heartbeat): liveness, and one renewal for the lease
 * of every job the runner holds, running or still uploading and reporting. It also acknowledges
 * jobs just claimed: the control plane takes a job back when no heartbeat names it within
 * `offerSeconds` (it assumes the claim answer was lost). That window is at least two intervals and
 * the next regular heartbeat goes out at most one interval after a claim answer, so no extra
 * heartbeat is sent for a claim (a job that completes first needs no acknowledgement at all).
 * The answer routes `cancel` and `stale` to the jobs and `drain` to the agent.
 *
 * Timing comes only from the control plane's latest claim or heartbeat answer (it may change it at
 * any time); before the first answer, a heartbeat goes out every DEFAULT_HEARTBEAT_MS.
 *
 * Lease loss (F1, F11): a job stops itself when no successful heartbeat that named it was *sent*
 * (the control plane renewed the lease no earlier than that) within leaseSeconds - heartbeatSeconds,
 * counted from the claim answer until one has: it gives up one interval before the lease ends, so
 * its container is usually gone before the job is handed out again. The window is at least two
 * intervals (the next heartbeat and its timeout must fit in it, or a runner whose every heartbeat
 * succeeds would stop its own jobs: with a one-interval window the deadline falls on the very
 * moment the next heartbeat goes out), but never longer than the lease itself (counted from the
 * send, it then ends no later than the control plane's). The check has its own timer, independent of the calls:
 * a call that hangs (a control plane that drops packets) must not keep a job running while it is
 * requeued elsewhere; a call still in flight at the deadline does not count. One call at a time,
 * each bounded by the interval, so a hung call delays the next one by at most one tick.
 */
import type { HeldJob, LeaseTiming, RunnerHeartbeatRequest, RunnerHeartbeatResponse } from '../../shared/api/runner.js';

/** Heartbeat interval until an answer says otherwise (also the first call's timeout). */
export const DEFAULT_HEARTBEAT_MS = 2000;

/** A job whose lease the runner holds (JobRun). */
export interface LeaseHolder {
  readonly job: { executionId: string; attempt: number; shard: number };
  /**
   * False once the attempt was given up (stale, lease lost, shut down): its lease is no longer
   * renewed (renewing it would only delay the requeue) nor checked. A canceled job still holds its
   * lease while its logs upload and it reports.
   */
  readonly holding: boolean;
  /** The execution was canceled: stop, report it as canceled. */
  cancel(): void;
  /** The attempt is over (requeued elsewhere, finished, unknown): stop, report nothing. */
  stale(): void;
  /** No renewal for (almost) a lease: stop, report nothing. */
  leaseLost(): void;
}

export interface HeartbeatDeps {
  send(body: RunnerHeartbeatRequest, timeoutMs: number): Promise<RunnerHeartbeatResponse>;
  status(): { activeJobs: number; draining: boolean };
  /** Env keys of the images the runner holds (dispatcher affinity). */
  envKeys(): Iterable<string>;
  /** The control plane asked this runner to drain. */
  onDrain(): void;
  log(line: string): void;
}

interface Lease {
  holder: LeaseHolder;
  /** When the last successful heartbeat that named it was sent; until then, the claim answer. */
  since: number;
  /** Named by a successful heartbeat: the control plane will not take the offer back. */
  acked: boolean;
  /** leaseLost() was called: never again. */
  lost: boolean;
}

export class HeartbeatLoop {
  private timing: LeaseTiming | undefined;
  private readonly leases = new Map<LeaseHolder, Lease>();
  private running = false;
  private inFlight: Promise<void> | undefined;
  /** A heartbeat was asked for while one was in flight: send it as soon as that one returns. */
  private again = false;
  /** When the last heartbeat was sent: the next is due one interval (by the latest timing) later. */
  private lastSentAt = -Infinity;
  private timer: NodeJS.Timeout | undefined;
  /** The env key set the control plane last received, as a sorted list joined. */
  private sentEnvKeys: string | undefined;
  private failures = 0;

  constructor(private readonly deps: HeartbeatDeps) {}

  /** The interval in force: from the latest answer, or the default before any. */
  get intervalMs(): number {
    return this.timing ? this.timing.heartbeatSeconds * 1000 : DEFAULT_HEARTBEAT_MS;
  }

  /** Due by the interval in force now, which an answer may have changed since the last send. */
  private get nextBeatAt(): number {
    return this.lastSentAt + this.intervalMs;
  }

  /** Starts the loop with a heartbeat at once. */
  start(): void {
    this.running = true;
    this.beat();
  }

  /** Timing from an answer the loop did not make itself (a claim, the identity check). */
  observe(timing: LeaseTiming): void {
    this.timing = timing;
    this.schedule();
  }

  /**
   * Jobs a claim just returned: their leases count from now, and the next regular heartbeat (at
   * most one interval away) acknowledges them.
   */
  claimed(holders: LeaseHolder[], timing: LeaseTiming): void {
    this.timing = timing;
    const now = Date.now();
    for (const holder of holders) this.leases.set(holder, { holder, since: now, acked: false, lost: false });
    // Their deadlines need the timer even while a call is in flight.
    this.schedule();
  }

  /** The job has reported (or gave its lease up): no more renewals. */
  drop(holder: LeaseHolder): void {
    this.leases.delete(holder);
    this.schedule();
  }

  /** Sends a heartbeat now, or as soon as the one in flight returns. */
  beat(): void {
    if (!this.running) return;
    if (this.inFlight) {
      this.again = true;
      return;
    }
    this.inFlight = this.send().finally(() => {
      this.inFlight = undefined;
      // Asked for meanwhile, or due already (a call cut at its timeout): the next one goes now.
      if (this.again || Date.now() >= this.nextBeatAt) {
        this.again = false;
        this.beat();
      } else this.schedule();
    });
    this.schedule();
  }

  /** Stops the loop; a last heartbeat tells the control plane where the runner stands (draining). */
  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    await this.inFlight;
    await this.send();
  }

  /** How long after `since` the job gives up, by the latest timing. */
  private giveUpMs(lease: Lease): number {
    const t = this.timing;
    if (!t) return Infinity; // no lease without a claim answer, which carries the timing
    const renewal = Math.max(t.leaseSeconds - t.heartbeatSeconds, Math.min(2 * t.heartbeatSeconds, t.leaseSeconds)) * 1000;
    // Not yet acknowledged: the control plane takes the offer back after offerSeconds, whatever
    // the lease (the claim answer arrived after the offer started, so this is the latest bound).
    return lease.acked ? renewal : Math.min(renewal, t.offerSeconds * 1000);
  }

  private checked(): Lease[] {
    return [...this.leases.values()].filter((l) => l.holder.holding && !l.lost);
  }

  /** One timer for everything: the next heartbeat, or the first lease deadline if earlier. */
  private schedule(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.running) return;
    // While a call is in flight, its end sends or schedules the next one.
    let at = this.inFlight ? Infinity : this.nextBeatAt;
    for (const lease of this.checked()) at = Math.min(at, lease.since + this.giveUpMs(lease));
    if (at === Infinity) return;
    this.timer = setTimeout(() => this.tick(), Math.max(0, at - Date.now()));
  }

  private tick(): void {
    this.checkLeases();
    // Due while a call is in flight: beat() marks it, and the call's end (at most its timeout,
    // one interval) sends it. The lease deadlines keep their timer meanwhile.
    if (Date.now() >= this.nextBeatAt) this.beat();
    this.schedule();
  }

  /**
   * Cut off from the control plane for (almost) a lease: the job has been (or will be) requeued
   * elsewhere, so this copy must stop and never report.
   */
  private checkLeases(): void {
    const now = Date.now();
    for (const lease of this.checked()) {
      if (now - lease.since < this.giveUpMs(lease)) continue;
      lease.lost = true;
      lease.holder.leaseLost();
    }
  }

  private async send(): Promise<void> {
    // A job at its deadline is given up before this heartbeat could renew it: renewing a lease
    // whose container is being stopped would only delay its requeue by a lease.
    this.checkLeases();
    const sentAt = Date.now();
    const timeoutMs = this.intervalMs;
    this.lastSentAt = sentAt;
    const named = this.checked();
    const keys = [...new Set(this.deps.envKeys())].sort().slice(0, 1000);
    const keysChanged = keys.join(',') !== this.sentEnvKeys;
    const body: RunnerHeartbeatRequest = {
      ...this.deps.status(),
      jobs: named.map(({ holder: { job } }): HeldJob => ({ executionId: job.executionId, attempt: job.attempt, shard: job.shard })),
      ...(keysChanged ? { envKeys: keys } : {}),
    };
    let res: RunnerHeartbeatResponse;
    try {
      res = await this.deps.send(body, timeoutMs);
    } catch (err) {
      if (++this.failures === 1 || this.failures % 10 === 0) this.deps.log(`heartbeat failed (${this.failures} in a row): ${(err as Error).message}`);
      return;
    }
    if (this.failures) this.deps.log(`heartbeat answered again after ${this.failures} failure(s)`);
    this.failures = 0;
    if (keysChanged) this.sentEnvKeys = keys.join(',');
    this.timing = res.timing;
    for (const lease of named) {
      lease.since = Math.max(lease.since, sentAt);
      lease.acked = true;
    }
    this.route(named, res);
  }

  private route(named: Lease[], res: RunnerHeartbeatResponse): void {
    const byId = new Map(named.map((l) => [l.holder.job.executionId, l.holder]));
    for (const id of res.cancel) byId.get(id)?.cancel();
    for (const s of res.stale) byId.get(s.executionId)?.stale();
    if (res.drain) this.deps.onDrain();
  }
}
