/**
 * One attempt of one job, start to finish (STYLE.md #5: start first, finish last, always
 * finish). `run()` never throws: every path ends in a completion report (or, when the attempt was
 * taken away, in silence), and the job directory is removed in `finally`.
 *
 * The agent's heartbeat (heartbeat.ts) renews this job's lease from the claim answer until run()
 * has returned and tells it to stop through the LeaseHolder methods (cancel, stale, leaseLost).
 */
import { mkdir, rm } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import type Docker from 'dockerode';
import type { Job } from '../../shared/api/runner.js';
import type { FailureKind } from '../../shared/lifecycle.js';
import { LIMITS, RUNTIMES } from '../../shared/limits.js';
import { envImageTag, envKey } from '../../shared/hashing.js';
import { normalizeRequirements } from '../../shared/requirements.js';
import { ApiCallError, isAttemptOver, type JobRef, type RunnerApi } from './api.js';
import type { CompletionBatcher } from './completions.js';
import type { LeaseHolder } from './heartbeat.js';
import { withRetry } from './retry.js';
import { LogShipper } from './logs.js';
import { contentTypeFor, downloadVerified, fetchRemote, isTransientTransferError, scanTree, sha256File, type DownloadSpec, type FileEntry } from './files.js';
import type { Dispatcher } from 'undici';
import { gzipFile, isMultipart, progressReporter, shouldCompress, uploadMultipart, uploadSingle } from './upload.js';
import { EnvBuildError, ensureEnvImage } from './docker/build.js';
import { ImageMissingError, type ContainerRuntime } from './docker/runtime.js';
import type { RunnerConfig } from './config.js';

export interface JobDeps {
  api: RunnerApi;
  runtime: ContainerRuntime;
  docker: Docker;
  config: RunnerConfig;
  runnerId: string;
  /** Completions go through the agent's batcher (one request for those ready together). */
  completions: Pick<CompletionBatcher, 'complete'>;
  /** Env keys of images this runner holds (reported for dispatcher affinity). */
  heldEnvKeys: Set<string>;
  log: (line: string) => void;
  /** undici dispatcher for remote input fetches (extra CA certificates), if configured. */
  remoteDispatcher?: Dispatcher;
}

interface Outcome {
  outcome: 'succeeded' | 'failed';
  failureKind?: FailureKind;
  exitCode: number | null;
  message?: string;
  outputs: (FileEntry & { localPath: string })[];
  cache: { envHit: boolean | null; buildSeconds: number | null };
  durationMs?: number;
}

class JobFailure extends Error {
  constructor(
    readonly kind: FailureKind,
    message: string,
  ) {
    super(message);
  }
}

/** Why the container was stopped from outside. */
type StopReason = 'canceled' | 'stale' | 'lease_lost' | 'shutdown';

/** The completion message is limited by the API (CompleteRequest.message). */
const MAX_MESSAGE = 4000;

export class JobRun implements LeaseHolder {
  /** Aborted on every stop: the container, downloads, the build and output uploads end. */
  private readonly stopper = new AbortController();
  /**
   * Aborted only when the attempt is no longer ours (stale, lease lost, shutdown): a canceled job
   * still ships its logs, an abandoned one ships nothing more.
   */
  private readonly abandoned = new AbortController();
  private stopReason: StopReason | undefined;
  private readonly dir: string;
  private containerDoneResolve!: () => void;
  /**
   * Resolves once the container is gone (the job ran, failed to start, or was stopped); what is
   * left is collecting and uploading the outputs and reporting. The slot takes its next job then
   * (agent.ts), so uploads overlap the next container instead of keeping the slot idle.
   */
  readonly containerDone = new Promise<void>((resolve) => (this.containerDoneResolve = resolve));

  constructor(
    readonly job: Job,
    private readonly deps: JobDeps,
  ) {
    this.dir = join(deps.config.workDir, 'jobs', `${job.executionId}-${job.attempt}`);
  }

  /** Hard stop for runner shutdown: kill the container and give the lease back. */
  shutdown(): void {
    this.stop('shutdown');
  }

  /** LeaseHolder: the heartbeat renews this lease until the attempt is given up. */
  get holding(): boolean {
    return !this.abandonedReason;
  }

  /** LeaseHolder: the execution was canceled; the job still ships its logs and reports `canceled`. */
  cancel(): void {
    this.stop('canceled');
  }

  /** LeaseHolder: the attempt is over on the control plane; report nothing. */
  stale(): void {
    this.stop('stale');
  }

  /** LeaseHolder: no renewal for (almost) a lease; the job is (or will be) requeued elsewhere. */
  leaseLost(): void {
    this.stop('lease_lost');
  }

  /** What every call about this job names. */
  private get ref(): JobRef {
    return { attempt: this.job.attempt, shard: this.job.shard };
  }

  /** A canceled attempt may still be abandoned later (lease lost while its logs upload); nothing else changes a stop. */
  private stop(reason: StopReason): void {
    if (reason === 'canceled' ? this.stopReason : this.abandonedReason) return;
    this.stopReason = reason;
    if (!this.stopper.signal.aborted) this.stopper.abort(new Error(reason));
    if (reason !== 'canceled') this.abandoned.abort(new Error(reason));
  }

  /** The attempt was taken away or given back: nothing may be reported for it. */
  private get abandonedReason(): StopReason | undefined {
    return this.stopReason === 'canceled' ? undefined : this.stopReason;
  }

  async run(): Promise<void> {
    const { job, deps } = this;
    const logDir = join(this.dir, 'logs');
    let logs: LogShipper | undefined;
    try {
      await mkdir(logDir, { recursive: true });
      logs = new LogShipper(deps.api, job.executionId, this.ref, logDir, deps.config.maxStreamedLogBytes, this.abandoned.signal);
      let result: Outcome;
      try {
        result = await this.execute(logs);
      } catch (err) {
        const failure = err instanceof JobFailure ? err : new JobFailure('internal', `runner error: ${(err as Error).message}`);
        result = { outcome: 'failed', failureKind: failure.kind, exitCode: null, message: failure.message, outputs: [], cache: { envHit: null, buildSeconds: null } };
      }
      this.containerDoneResolve();
      if (this.stopReason === 'canceled') {
        result = { ...result, outcome: 'failed', failureKind: 'canceled', message: 'canceled by user', outputs: [] };
      }
      if (result.message && result.outcome === 'failed') logs.system(`[rgrid] ${result.message}`);
      // The lease is renewed until run() has returned: uploading the outputs can take longer than
      // a lease (big files, a store outage), and a slow upload is not a lost runner (F2).
      const logFiles = await logs.close();
      logs = undefined;
      await this.finish(result, logFiles.map((f) => ({ path: f.name, localPath: f.localPath, size: f.size })));
    } catch (err) {
      deps.log(`job ${job.executionId} attempt ${job.attempt}: could not be finished: ${(err as Error).message}`);
    } finally {
      this.containerDoneResolve();
      await logs?.close().catch(() => undefined);
      await rm(this.dir, { recursive: true, force: true }).catch(() => undefined);
    }
  }

  private async execute(logs: LogShipper): Promise<Outcome> {
    const { job, deps } = this;
    const signal = this.stopper.signal;
    const work = join(this.dir, 'work');
    const scriptDir = join(this.dir, 'script');
    await mkdir(work, { recursive: true });
    await mkdir(scriptDir, { recursive: true });

    // 1. Inputs and script, verified.
    const scriptPath = join(scriptDir, job.script.name);
    try {
      await this.download({ download: job.script.download, sha256: job.script.sha256, size: job.script.size, encoding: 'identity', dest: scriptPath, label: `script ${job.script.name}` }, logs);
      for (const input of job.inputs) {
        const dest = resolve(work, input.path);
        if (!dest.startsWith(work + sep)) throw new Error(`input path ${input.path} leaves /work`);
        await this.download({ ...input, dest, label: `input ${input.path}` }, logs);
      }
      for (const remote of job.remoteInputs) {
        const dest = resolve(work, remote.path);
        if (!dest.startsWith(work + sep)) throw new Error(`input path ${remote.path} leaves /work`);
        const size = await fetchRemote(remote.url, dest, LIMITS.maxFileBytes, deps.remoteDispatcher, signal);
        logs.system(`[rgrid] fetched ${remote.url} (${size} bytes) as ${remote.path}`);
      }
    } catch (err) {
      if (signal.aborted) throw new JobFailure('canceled', 'stopped while downloading inputs');
      // Still unreachable (or 5xx) after a minute of retries: our side failed, not the user's
      // inputs. A 4xx, a checksum mismatch or an input layout that cannot be placed stays input_error.
      if (isTransientTransferError(err)) throw new JobFailure('internal', `could not download the inputs: ${(err as Error).message}`);
      throw new JobFailure('input_error', (err as Error).message);
    }

    // 2. Environment.
    const { image, cache } = await this.environment(logs);

    // 3. Run.
    const args = [...job.args];
    for (const input of [...job.inputs, ...job.remoteInputs]) if (input.arg !== undefined && input.arg < args.length) args[input.arg] = `/work/${input.path}`;
    const scriptInContainer = `/opt/rgrid/${job.script.name}`;
    const memoryMb = Math.min(job.limits.memoryMb, deps.config.maxMemoryMb);
    const res = await deps.runtime.runJob({
      image,
      cmd: [...RUNTIMES[job.runtime].command, scriptInContainer, ...args],
      workDir: work,
      scriptHostPath: scriptPath,
      scriptContainerPath: scriptInContainer,
      env: job.env,
      memoryBytes: memoryMb * 1024 * 1024,
      nanoCpus: Math.round(job.limits.cpus * 1e9),
      pidsLimit: deps.config.pidsLimit,
      timeoutMs: job.limits.timeoutSeconds * 1000,
      labels: { 'rgrid.execution': job.executionId, 'rgrid.attempt': String(job.attempt) },
      onStdout: (b) => logs.write('stdout', b),
      onStderr: (b) => logs.write('stderr', b),
      signal,
    });

    let base: Omit<Outcome, 'outputs' | 'cache'>;
    if (res.canceled) base = { outcome: 'failed', failureKind: 'canceled', exitCode: res.exitCode, message: 'stopped' };
    else if (res.timedOut) base = { outcome: 'failed', failureKind: 'timeout', exitCode: res.exitCode, message: `timed out after ${job.limits.timeoutSeconds}s` };
    else if (res.oomKilled) base = { outcome: 'failed', failureKind: 'oom', exitCode: res.exitCode, message: `ran out of memory (limit ${memoryMb} MB)` };
    else if (res.exitCode === 0) base = { outcome: 'succeeded', exitCode: 0 };
    else base = { outcome: 'failed', failureKind: 'script_error', exitCode: res.exitCode, message: `script exited with code ${res.exitCode}` };

    // 4. Outputs: every regular file that is new or changed (unchanged inputs are not outputs).
    const scan = await scanTree(work);
    // The path is quoted (JSON) so that a file name with a newline cannot write extra log lines (F15).
    for (const s of scan.skipped) logs.system(`[rgrid] not collected: ${JSON.stringify(s.path)}: ${s.reason}`);
    const inputs = new Map(job.inputs.map((i) => [i.path, i.sha256]));
    const outputs = scan.files.filter((f) => inputs.get(f.path) !== f.sha256).map((f) => ({ ...f, localPath: join(work, f.path) }));
    if (outputs.length > LIMITS.maxOutputsPerExecution) {
      return { outcome: 'failed', failureKind: 'script_error', exitCode: res.exitCode, message: `script wrote more than ${LIMITS.maxOutputsPerExecution} output files`, outputs: [], cache, durationMs: res.durationMs };
    }
    return { ...base, outputs, cache, durationMs: res.durationMs };
  }

  /**
   * One verified download from the object store; network errors, 429 and 5xx are retried for
   * 60 s, so a store blip at job start does not fail the job (F3).
   */
  private async download(spec: Omit<DownloadSpec, 'onBytes'>, logs: LogShipper): Promise<void> {
    const signal = this.stopper.signal;
    await withRetry(
      () => {
        const progress = spec.size > 10 * 1024 * 1024 ? progressReporter(`downloading ${spec.label}`, spec.size, (l) => logs.system(l)) : undefined;
        return downloadVerified({ ...spec, onBytes: progress && ((n) => progress.add(n)) }, signal);
      },
      {
        budgetMs: 60_000,
        signal,
        retryIf: isTransientTransferError,
        onRetry: (err, ms) => logs.system(`[rgrid] download of ${spec.label} failed (${(err as Error).message}); retrying in ${ms} ms`),
      },
    );
  }

  private async environment(logs: LogShipper): Promise<{ image: string; cache: Outcome['cache'] }> {
    const { job, deps } = this;
    const baseImage = deps.config.images[job.runtime];
    if (!baseImage) throw new JobFailure('build_failed', `runtime ${job.runtime} has no base image configured on this runner`);
    const requirements = normalizeRequirements(job.requirements ?? '');
    if (!requirements && !job.rebuildEnv) {
      if (await deps.runtime.imageExists(baseImage)) return { image: baseImage, cache: { envHit: true, buildSeconds: 0 } };
      if (!deps.config.pullImages) throw new JobFailure('build_failed', `base image ${baseImage} for ${job.runtime} is not available on this runner (image pulls are disabled)`);
    }
    const tag = envImageTag(await envKey(job.runtime, baseImage, job.requirements ?? ''));
    try {
      const built = await ensureEnvImage({
        baseImage,
        requirementsText: job.requirements ?? '',
        tag,
        pipIndexUrl: deps.config.pipIndexUrl,
        extraIndexUrls: deps.config.extraIndexUrls,
        onLog: (line) => logs.system(`[build] ${line}`),
        signal: this.stopper.signal,
        pullBaseImage: deps.config.pullImages,
        force: job.rebuildEnv,
        labels: { 'rgrid.env-key': job.envKey },
        docker: deps.docker,
      });
      deps.heldEnvKeys.add(job.envKey);
      logs.system(built.cacheHit ? `[rgrid] using cached environment ${tag}` : `[rgrid] built environment ${tag} in ${built.buildSeconds.toFixed(1)}s`);
      return { image: tag, cache: { envHit: built.cacheHit, buildSeconds: built.buildSeconds } };
    } catch (err) {
      if (this.stopper.signal.aborted) throw new JobFailure('canceled', 'stopped while building the environment');
      if (err instanceof EnvBuildError || err instanceof ImageMissingError) throw new JobFailure('build_failed', err.message);
      throw err;
    }
  }

  /**
   * Uploads outputs and logs, then reports. Skipped when the attempt is no longer ours, before or
   * during the uploads (the heartbeat still renews the lease, and a stop aborts them).
   */
  private async finish(result: Outcome, logFiles: { path: string; localPath: string; size: number }[]): Promise<void> {
    const { job, deps } = this;
    if (await this.gaveUp()) return;
    const outputs = await this.uploadAll(result.outputs, 'output', this.stopper.signal);
    const logs = await this.uploadAll(logFiles.map((f) => ({ ...f, sha256: '' })), 'log', this.abandoned.signal);
    if (await this.gaveUp()) return;
    let report = result;
    if (this.stopReason === 'canceled' && result.failureKind !== 'canceled') {
      // Canceled while the outputs uploaded: the outputs are not recorded.
      report = { ...result, outcome: 'failed', failureKind: 'canceled', message: 'canceled by user', outputs: [] };
    } else if (!outputs.ok) {
      report = { ...result, outcome: 'failed', failureKind: 'internal', message: `uploading outputs failed: ${outputs.error}`, outputs: [] };
    }
    // Logs that cannot be uploaded do not change the outcome: the user sees what happened to the
    // job, with a note (F9). Only outputs decide between the outcome and `internal`.
    if (!logs.ok) report = { ...report, message: [report.message, `(logs could not be uploaded: ${logs.error})`].filter(Boolean).join(' ') };
    if (report.message && report.message.length > MAX_MESSAGE) report = { ...report, message: report.message.slice(0, MAX_MESSAGE - 1) + '…' };
    const files = (r: typeof outputs) => (r.ok ? r.files : []);
    try {
      // The batcher retries 429, 5xx and network errors for 5 minutes; what it rejects is final.
      await deps.completions.complete({
        executionId: job.executionId,
        ...this.ref,
        outcome: report.outcome,
        failureKind: report.failureKind,
        exitCode: report.exitCode,
        message: report.message,
        outputs: report.outcome === 'failed' && (report.failureKind === 'internal' || report.failureKind === 'canceled') ? [] : files(outputs),
        logs: files(logs),
        cache: report.cache,
        durationMs: report.durationMs,
      });
    } catch (err) {
      if (err instanceof ApiCallError && isAttemptOver(err)) {
        deps.log(`job ${job.executionId} attempt ${job.attempt}: completion refused (${err.message})`);
        return;
      }
      throw err;
    }
  }

  /** True (after saying so, or giving the lease back) when this attempt must not be reported. */
  private async gaveUp(): Promise<boolean> {
    const { job, deps } = this;
    const reason = this.abandonedReason;
    if (reason === 'stale' || reason === 'lease_lost') {
      deps.log(`job ${job.executionId} attempt ${job.attempt}: attempt taken away (${reason}); not reporting`);
      return true;
    }
    if (reason === 'shutdown') {
      await deps.api.release(job.executionId, this.ref).catch(() => undefined);
      return true;
    }
    return false;
  }

  /**
   * Uploads outputs or logs (text gzip-compressed, large files in parts). Returns the file refs to
   * report, or an error: a failed upload fails the attempt cleanly, with nothing recorded.
   */
  private async uploadAll(
    files: { path: string; localPath: string; size: number; sha256: string }[],
    kind: 'output' | 'log',
    signal: AbortSignal,
  ): Promise<{ ok: true; files: { path: string; sha256: string; size: number; contentType: string; encoding: 'identity' | 'gzip' }[] } | { ok: false; error: string }> {
    if (!files.length) return { ok: true, files: [] };
    const { job, deps } = this;
    const log = (line: string) => deps.log(`${job.executionId}: ${line}`);
    const tmp = join(this.dir, 'upload');
    await mkdir(tmp, { recursive: true });
    try {
      const refs = [];
      for (const [i, f] of files.entries()) {
        const contentType = contentTypeFor(f.path);
        const sha256 = f.sha256 || (await sha256File(f.localPath));
        let stored = { storedPath: f.localPath, storedSize: f.size, encoding: 'identity' as 'identity' | 'gzip' };
        if (shouldCompress(contentType, f.size)) {
          const gz = join(tmp, `${kind}-${i}.gz`);
          const storedSize = await gzipFile(f.localPath, gz);
          if (storedSize < f.size) stored = { storedPath: gz, storedSize, encoding: 'gzip' };
        }
        refs.push({ path: f.path, size: f.size, sha256, contentType, ...stored });
      }
      for (let i = 0; i < refs.length; i += 1000) {
        const part = refs.slice(i, i + 1000);
        const { uploads } = await withRetry(
          () => deps.api.presignOutputs(job.executionId, { ...this.ref, files: part.map((r) => ({ path: r.path, sha256: r.sha256, size: r.size, contentType: r.contentType, encoding: r.encoding })) }, signal),
          { budgetMs: 60_000, signal },
        );
        const bySha = new Map(part.map((r) => [r.sha256, r]));
        await parallel(uploads, 4, async (u) => {
          const f = bySha.get(u.sha256)!;
          const stored = { ...f, label: f.path };
          if (isMultipart(f.storedSize)) await uploadMultipart(deps.api, job.executionId, this.ref, stored, log, signal);
          else await uploadSingle(stored, u, log, signal);
        });
      }
      return { ok: true, files: refs.map(({ path, sha256, size, contentType, encoding }) => ({ path, sha256, size, contentType, encoding })) };
    } catch (err) {
      if (isAttemptOver(err)) throw err;
      return { ok: false, error: (err as Error).message };
    }
  }
}

async function parallel<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  });
  await Promise.all(workers);
}
