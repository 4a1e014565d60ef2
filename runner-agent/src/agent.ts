/**
 * The runner daemon: register (or reuse its stored identity), remove containers an earlier crash
 * left behind, then run one claim loop for all slots (slots.ts), one heartbeat that renews every
 * lease it holds (heartbeat.ts) and one completion batcher (completions.ts).
 *
 * Shutdown: `drain()` stops claiming, lets running jobs finish and returns; `kill()` stops
 * running jobs at once and gives their leases back so they requeue immediately.
 */
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import Docker from 'dockerode';
import { rootCertificates } from 'node:tls';
import { Agent, type Dispatcher } from 'undici';
import { ApiCallError, RunnerApi } from './api.js';
import { withRetry } from './retry.js';
import { JobRun } from './job.js';
import { HeartbeatLoop } from './heartbeat.js';
import { CompletionBatcher } from './completions.js';
import { SlotScheduler, type StartedJob } from './slots.js';
import { loadIdentity, storeIdentity, type Identity } from './identity.js';
import { DockerRuntime, RUNNER_LABEL, type ContainerRuntime } from './docker/runtime.js';
import type { RunnerConfig } from './config.js';

export const RUNNER_VERSION = '0.1.0';

export interface AgentOptions {
  docker?: Docker;
  /** The container runtime for a runner id; DockerRuntime on `docker` unless given (tests). */
  runtime?: (runnerId: string) => ContainerRuntime;
  log?: (line: string) => void;
}

export class RunnerAgent {
  readonly api: RunnerApi;
  private identity: Identity | undefined;
  private runtime: ContainerRuntime | undefined;
  private readonly docker: Docker;
  private readonly makeRuntime: (runnerId: string) => ContainerRuntime;
  /** Jobs held from the claim answer until they have reported (activeJobs). */
  private readonly running = new Set<JobRun>();
  private readonly heldEnvKeys = new Set<string>();
  private remoteDispatcher: Dispatcher | undefined;
  private draining = false;
  /** Set by kill(): jobs that still arrive from an open claim are given back, not run. */
  private stopping = false;
  private drained: Promise<void> | undefined;
  private readonly heartbeat: HeartbeatLoop;
  private readonly completions: CompletionBatcher;
  private readonly slots: SlotScheduler<JobRun>;
  /** The claim loop; resolves once draining and every job has reported. */
  private claiming: Promise<void> = Promise.resolve();
  private readonly log: (line: string) => void;

  constructor(
    readonly config: RunnerConfig,
    opts: AgentOptions = {},
  ) {
    this.api = new RunnerApi(config.apiUrl);
    this.docker = opts.docker ?? new Docker();
    this.makeRuntime = opts.runtime ?? ((runnerId) => new DockerRuntime({ runnerId, docker: this.docker }));
    this.log = opts.log ?? ((line) => console.log(`[rgrid-runner] ${line}`));
    this.heartbeat = new HeartbeatLoop({
      send: (body, timeoutMs) => this.api.heartbeat(body, timeoutMs),
      status: () => ({ activeJobs: this.running.size, draining: this.draining }),
      envKeys: () => this.heldEnvKeys,
      onDrain: () => {
        if (this.draining) return;
        this.log('control plane asked this runner to drain');
        void this.drain();
      },
      log: this.log,
    });
    this.completions = new CompletionBatcher(this.api, { log: this.log });
    this.slots = new SlotScheduler<JobRun>({
      slots: config.slots,
      claim: (maxJobs) => this.claim(maxJobs),
      start: (run) => this.runJob(run),
      surplus: (run) => void this.giveBack(run),
      log: this.log,
    });
  }

  get runnerId(): string | undefined {
    return this.identity?.runnerId;
  }

  get activeJobs(): number {
    return this.running.size;
  }

  async start(): Promise<void> {
    try {
      await this.docker.ping();
    } catch (err) {
      throw new Error(`Docker daemon not reachable (${(err as Error).message}). Start Docker (on this machine: .ci/docker-up.sh) or set DOCKER_HOST.`);
    }
    await mkdir(this.config.workDir, { recursive: true });
    if (this.config.remoteCaFile) {
      const extra = await readFile(this.config.remoteCaFile, 'utf8');
      this.remoteDispatcher = new Agent({ connect: { ca: [...rootCertificates, extra] } });
    }
    this.identity = await this.loadOrRegister();
    this.api.token = this.identity.runnerToken;
    this.runtime = this.makeRuntime(this.identity.runnerId);
    const removed = await this.runtime.removeContainersByLabel(`${RUNNER_LABEL}=${this.identity.runnerId}`);
    if (removed) this.log(`removed ${removed} container(s) left by an earlier run`);
    await rm(join(this.config.workDir, 'jobs'), { recursive: true, force: true });
    await this.loadHeldImages();
    this.log(`runner ${this.identity.runnerId} serving pool ${this.identity.pool} with ${this.config.slots} slot(s)`);
    this.heartbeat.start();
    this.claiming = this.slots.run();
  }

  private identityPath(): string {
    return join(this.config.workDir, 'runner.json');
  }

  private async loadOrRegister(): Promise<Identity> {
    const stored = await loadIdentity(this.identityPath(), this.config.apiUrl);
    if (stored) {
      this.api.token = stored.runnerToken;
      try {
        const { timing } = await this.api.heartbeat({ activeJobs: 0, draining: false, jobs: [] });
        this.heartbeat.observe(timing);
        return stored;
      } catch (err) {
        if (!(err instanceof ApiCallError && err.status === 401)) throw err;
        this.log('stored runner identity was refused; registering again');
      }
    }
    if (!this.config.registrationToken) throw new Error('no stored runner identity: pass --registration-token to register');
    this.api.token = undefined;
    const reg = await withRetry(
      () => this.api.register({ registrationToken: this.config.registrationToken!, name: this.config.name || hostname(), slots: this.config.slots, labels: this.config.labels, version: RUNNER_VERSION }),
      { budgetMs: 60_000, onRetry: (err) => this.log(`register: ${(err as Error).message}; retrying`) },
    );
    const identity: Identity = { apiUrl: this.config.apiUrl, runnerId: reg.runnerId, runnerToken: reg.runnerToken, pool: reg.pool };
    await storeIdentity(this.identityPath(), identity);
    return identity;
  }

  /** Environment images survive restarts; their env keys are image labels. */
  private async loadHeldImages(): Promise<void> {
    const images = await this.docker.listImages({ filters: { label: ['rgrid.env-key'] } });
    for (const img of images) {
      const key = img.Labels?.['rgrid.env-key'];
      if (key) this.heldEnvKeys.add(key);
    }
  }

  /**
   * One long poll for `maxJobs` free slots. The jobs' leases are held (and acknowledged by a
   * heartbeat at once) from the moment the answer arrives, before their slots start them.
   */
  private async claim(maxJobs: number): Promise<JobRun[]> {
    const { jobs, timing } = await this.api.claim({ maxJobs, waitSeconds: this.config.claimWaitSeconds, envKeys: [...this.heldEnvKeys].slice(0, 1000) });
    if (this.stopping) {
      // kill() came while this claim was open: give the jobs back for immediate requeue.
      this.heartbeat.observe(timing);
      await Promise.all(jobs.map((job) => this.api.release(job.executionId, job).catch(() => undefined)));
      return [];
    }
    const runs = jobs.map(
      (job) =>
        new JobRun(job, {
          api: this.api,
          runtime: this.runtime!,
          docker: this.docker,
          config: this.config,
          runnerId: this.identity!.runnerId,
          completions: this.completions,
          heldEnvKeys: this.heldEnvKeys,
          log: this.log,
          remoteDispatcher: this.remoteDispatcher,
        }),
    );
    for (const run of runs) this.running.add(run);
    this.heartbeat.claimed(runs, timing);
    return runs;
  }

  /** Starts a job in its slot; its lease is renewed until it has reported. */
  private runJob(run: JobRun): StartedJob {
    const { job } = run;
    this.log(`job ${job.executionId} attempt ${job.attempt} started`);
    const done = run.run().finally(() => {
      this.heartbeat.drop(run);
      this.running.delete(run);
      this.log(`job ${job.executionId} attempt ${job.attempt} finished`);
    });
    return { containerDone: run.containerDone, done };
  }

  /** A job the slots cannot take: its lease goes back at once. */
  private async giveBack(run: JobRun): Promise<void> {
    this.heartbeat.drop(run);
    this.running.delete(run);
    this.log(`job ${run.job.executionId} attempt ${run.job.attempt}: no free slot (the claim answered more jobs than asked for); released`);
    await this.api.release(run.job.executionId, run.job).catch(() => undefined);
  }

  /** Stop claiming; wait for the open claim to return and running jobs to finish. Idempotent. */
  drain(): Promise<void> {
    this.draining = true;
    this.slots.drain();
    this.drained ??= (async () => {
      await this.claiming;
      await this.heartbeat.stop();
      this.onDrained?.();
    })();
    return this.drained;
  }

  /** Called once a drain (asked by a signal or by the control plane) has finished. */
  onDrained: (() => void) | undefined;

  /** Stop now: kill running jobs and give their leases back for immediate requeue. */
  async kill(): Promise<void> {
    this.draining = true;
    this.stopping = true;
    this.slots.drain();
    for (const run of this.running) run.shutdown();
    while (this.running.size) await sleep(50);
    // An open long poll may still hand out jobs; wait for it (bounded) so they are released, not lost.
    await Promise.race([this.claiming, sleep(this.config.claimWaitSeconds * 1000 + 2000)]);
    for (const run of this.running) run.shutdown();
    while (this.running.size) await sleep(50);
    await this.heartbeat.stop();
  }
}
