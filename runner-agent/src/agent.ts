/**
 * The runner daemon: register (or reuse its stored identity), remove containers an earlier crash
 * left behind, then run one claim loop per slot and a liveness heartbeat.
 *
 * Shutdown: `drain()` stops claiming, lets running jobs finish and returns; `kill()` stops
 * running jobs at once and gives their leases back so they requeue immediately.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import Docker from 'dockerode';
import { rootCertificates } from 'node:tls';
import { Agent, type Dispatcher } from 'undici';
import type { Job } from '../../shared/api/runner.js';
import { ApiCallError, RunnerApi } from './api.js';
import { withRetry } from './retry.js';
import { JobRun } from './job.js';
import { DockerRuntime, RUNNER_LABEL, type ContainerRuntime } from './docker/runtime.js';
import type { RunnerConfig } from './config.js';

export const RUNNER_VERSION = '0.1.0';

interface Identity {
  apiUrl: string;
  runnerId: string;
  runnerToken: string;
  pool: string;
  leaseSeconds: number;
  heartbeatSeconds: number;
}

export interface AgentOptions {
  docker?: Docker;
  log?: (line: string) => void;
}

export class RunnerAgent {
  readonly api: RunnerApi;
  private identity: Identity | undefined;
  private runtime: ContainerRuntime | undefined;
  private readonly docker: Docker;
  private readonly running = new Set<JobRun>();
  private readonly heldEnvKeys = new Set<string>();
  private remoteDispatcher: Dispatcher | undefined;
  private draining = false;
  /** Set by kill(): jobs that still arrive from an open claim are given back, not run. */
  private stopping = false;
  private drained: Promise<void> | undefined;
  private loops: Promise<void>[] = [];
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private readonly log: (line: string) => void;

  constructor(
    readonly config: RunnerConfig,
    opts: AgentOptions = {},
  ) {
    this.api = new RunnerApi(config.apiUrl);
    this.docker = opts.docker ?? new Docker();
    this.log = opts.log ?? ((line) => console.log(`[rgrid-runner] ${line}`));
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
    this.runtime = new DockerRuntime({ runnerId: this.identity.runnerId, docker: this.docker });
    const removed = await this.runtime.removeContainersByLabel(`${RUNNER_LABEL}=${this.identity.runnerId}`);
    if (removed) this.log(`removed ${removed} container(s) left by an earlier run`);
    await rm(join(this.config.workDir, 'jobs'), { recursive: true, force: true });
    await this.loadHeldImages();
    this.log(`runner ${this.identity.runnerId} serving pool ${this.identity.pool} with ${this.config.slots} slot(s)`);
    this.heartbeatTimer = setInterval(() => void this.liveness(), this.identity.heartbeatSeconds * 1000);
    void this.liveness();
    this.loops = Array.from({ length: this.config.slots }, (_, i) => this.slotLoop(i));
  }

  private identityPath(): string {
    return join(this.config.workDir, 'runner.json');
  }

  private async loadOrRegister(): Promise<Identity> {
    try {
      const stored = JSON.parse(await readFile(this.identityPath(), 'utf8')) as Identity;
      if (stored.apiUrl === this.config.apiUrl) {
        this.api.token = stored.runnerToken;
        try {
          await this.api.heartbeat({ activeJobs: 0, draining: false });
          return stored;
        } catch (err) {
          if (!(err instanceof ApiCallError && err.status === 401)) throw err;
          this.log('stored runner identity was refused; registering again');
        }
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' && !(err instanceof SyntaxError)) throw err;
    }
    if (!this.config.registrationToken) throw new Error('no stored runner identity: pass --registration-token to register');
    this.api.token = undefined;
    const reg = await withRetry(
      () => this.api.register({ registrationToken: this.config.registrationToken!, name: this.config.name || hostname(), slots: this.config.slots, labels: this.config.labels, version: RUNNER_VERSION }),
      { budgetMs: 60_000, onRetry: (err) => this.log(`register: ${(err as Error).message}; retrying`) },
    );
    const identity: Identity = { apiUrl: this.config.apiUrl, ...reg };
    await writeFile(this.identityPath(), JSON.stringify(identity, null, 2), { mode: 0o600 });
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

  private async liveness(): Promise<void> {
    try {
      const r = await this.api.heartbeat({ activeJobs: this.running.size, draining: this.draining, envKeys: [...this.heldEnvKeys].slice(0, 1000) });
      if (r.drain && !this.draining) {
        this.log('control plane asked this runner to drain');
        void this.drain();
      }
    } catch (err) {
      this.log(`heartbeat failed: ${(err as Error).message}`);
    }
  }

  /**
   * One slot: claim a job, run it, repeat. A slot runs one container at a time; once a job's
   * container is gone, the slot claims its next job while the previous one uploads its outputs
   * and reports (at most one such job per slot), so a slot is not idle during uploads.
   */
  private async slotLoop(slot: number): Promise<void> {
    let finishing: Promise<void> = Promise.resolve();
    try {
      await this.claimLoop(slot, (job) => {
        const { containerDone, done } = this.runJob(job);
        return containerDone.then(async () => {
          await finishing;
          finishing = done;
        });
      });
    } finally {
      await finishing;
    }
  }

  private async claimLoop(slot: number, start: (job: Job) => Promise<void>): Promise<void> {
    let failures = 0;
    while (!this.draining) {
      let jobs: Job[];
      try {
        ({ jobs } = await this.api.claim({ maxJobs: 1, waitSeconds: this.config.claimWaitSeconds, envKeys: [...this.heldEnvKeys].slice(0, 1000) }));
        failures = 0;
      } catch (err) {
        failures++;
        const delay = Math.round(Math.random() * Math.min(10_000, 250 * 2 ** failures));
        if (failures === 1 || failures % 10 === 0) this.log(`slot ${slot}: claim failed (${(err as Error).message}); retrying`);
        await sleep(delay);
        continue;
      }
      for (const job of jobs) {
        if (this.stopping) {
          await this.api.release(job.executionId, job.attempt).catch(() => undefined);
          continue;
        }
        await start(job);
      }
    }
  }

  /** Starts a job: `containerDone` when its container is gone, `done` when it has reported. */
  private runJob(job: Job): { containerDone: Promise<void>; done: Promise<void> } {
    const run = new JobRun(job, {
      api: this.api,
      runtime: this.runtime!,
      docker: this.docker,
      config: this.config,
      runnerId: this.identity!.runnerId,
      heartbeatMs: this.identity!.heartbeatSeconds * 1000,
      leaseMs: this.identity!.leaseSeconds * 1000,
      heldEnvKeys: this.heldEnvKeys,
      log: this.log,
      remoteDispatcher: this.remoteDispatcher,
    });
    this.running.add(run);
    this.log(`job ${job.executionId} attempt ${job.attempt} started`);
    const done = run.run().finally(() => {
      this.running.delete(run);
      this.log(`job ${job.executionId} attempt ${job.attempt} finished`);
    });
    return { containerDone: run.containerDone, done };
  }

  /** Stop claiming; wait for open claims to return and running jobs to finish. Idempotent. */
  drain(): Promise<void> {
    this.draining = true;
    this.drained ??= (async () => {
      await Promise.all(this.loops);
      await this.stopHeartbeat();
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
    for (const run of this.running) run.shutdown();
    while (this.running.size) await sleep(50);
    // Open long-polls may still hand out a job; wait for them (bounded) so it is released, not lost.
    await Promise.race([Promise.all(this.loops), sleep(this.config.claimWaitSeconds * 1000 + 2000)]);
    for (const run of this.running) run.shutdown();
    while (this.running.size) await sleep(50);
    await this.stopHeartbeat();
  }

  private async stopHeartbeat(): Promise<void> {
    clearInterval(this.heartbeatTimer);
    await this.api.heartbeat({ activeJobs: this.running.size, draining: true }).catch(() => undefined);
  }
}
