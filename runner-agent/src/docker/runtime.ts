/**
 * The runner's view of a container engine: run one job in a locked-down container, clean up
 * orphans, check images. Everything else in the runner talks to `ContainerRuntime`; dockerode is
 * used only here (and in build.ts for image builds).
 */
import { readdir, lchown, chown, chmod, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import Docker from 'dockerode';

export interface RunJobSpec {
  image: string;
  cmd: string[];
  /** Host directory mounted read-write at /work (the container's working directory). */
  workDir: string;
  /** Host path of the user's script, mounted read-only at scriptContainerPath. */
  scriptHostPath: string;
  scriptContainerPath: string;
  env: Record<string, string>;
  memoryBytes: number;
  nanoCpus: number;
  pidsLimit: number;
  timeoutMs: number;
  labels: Record<string, string>;
  onStdout(chunk: Buffer): void;
  onStderr(chunk: Buffer): void;
  /** Abort = cancel: the container is killed and the result has canceled: true. */
  signal?: AbortSignal;
}

export interface RunJobResult {
  /** Exit status of the container's main process; null when it never started (canceled first). */
  exitCode: number | null;
  timedOut: boolean;
  /** The kernel OOM killer hit a process of the container (maybe only a child). */
  oomKilled: boolean;
  canceled: boolean;
  /** From start to exit (or to the cancel, when it never started). */
  durationMs: number;
}

export interface ContainerRuntime {
  /** Throws when the engine is unreachable. */
  ping(): Promise<void>;
  imageExists(tag: string): Promise<boolean>;
  /** Runs one job to completion. Throws only for engine errors (missing image, daemon gone). */
  runJob(spec: RunJobSpec): Promise<RunJobResult>;
  /** Force-removes every container (running or not) carrying `label` ("key" or "key=value"). Returns how many. */
  removeContainersByLabel(label: string): Promise<number>;
}

/** The image a job asked for is not present locally. */
export class ImageMissingError extends Error {
  constructor(
    readonly image: string,
    detail?: string,
  ) {
    super(`image ${image} is not available on this runner${detail ? `: ${detail}` : ''}`);
    this.name = 'ImageMissingError';
  }
}

export const RUNNER_LABEL = 'rgrid.runner';

/**
 * Jobs run as nobody:nogroup. 65534 exists in Debian's base-passwd, so in our debootstrapped base
 * images and in the official python/node images alike, whereas uid 1000 is missing from the
 * official python image. The job dir is chowned to it (see prepareWorkDir).
 */
export const DEFAULT_JOB_USER = { uid: 65534, gid: 65534 };

export interface DockerRuntimeOptions {
  /** Goes into the `rgrid.runner` label of every container, for orphan cleanup. */
  runnerId: string;
  docker?: Docker;
  user?: { uid: number; gid: number };
  /** Size of the writable tmpfs at /tmp (the root filesystem is read-only). Default 64 MiB. */
  tmpfsBytes?: number;
}

const isStatus = (err: unknown, code: number): boolean =>
  typeof err === 'object' && err !== null && (err as { statusCode?: unknown }).statusCode === code;

export class DockerRuntime implements ContainerRuntime {
  readonly docker: Docker;
  private readonly runnerId: string;
  private readonly user: { uid: number; gid: number };
  private readonly tmpfsBytes: number;

  constructor(opts: DockerRuntimeOptions) {
    // new Docker() honours DOCKER_HOST and defaults to /var/run/docker.sock.
    this.docker = opts.docker ?? new Docker();
    this.runnerId = opts.runnerId;
    this.user = opts.user ?? DEFAULT_JOB_USER;
    this.tmpfsBytes = opts.tmpfsBytes ?? 64 * 1024 * 1024;
  }

  async ping(): Promise<void> {
    await this.docker.ping();
  }

  async imageExists(tag: string): Promise<boolean> {
    return imageExists(this.docker, tag);
  }

  async removeContainersByLabel(label: string): Promise<number> {
    const list = await this.docker.listContainers({ all: true, filters: { label: [label] } });
    let removed = 0;
    for (const c of list) {
      try {
        await this.docker.getContainer(c.Id).remove({ force: true, v: true });
        removed++;
      } catch (err) {
        // 404: already gone; 409: removal already in progress. Both end where we want.
        if (!isStatus(err, 404) && !isStatus(err, 409)) throw err;
      }
    }
    return removed;
  }

  async runJob(spec: RunJobSpec): Promise<RunJobResult> {
    const t0 = Date.now();
    if (spec.signal?.aborted) {
      return { exitCode: null, timedOut: false, oomKilled: false, canceled: true, durationMs: 0 };
    }
    await this.prepareWorkDir(spec);

    let container: Docker.Container | undefined;
    let timer: NodeJS.Timeout | undefined;
    let attachStream: NodeJS.ReadableStream | undefined;
    let timedOut = false;
    let canceled = false;
    let started = false;
    const kill = (): void => {
      // Until start() returned there is nothing to kill; the started-check after start covers it.
      if (!container || !started) return;
      container.kill().catch(() => undefined); // 404/409: already exited or removed
    };
    const onAbort = (): void => {
      canceled = true;
      kill();
    };
    spec.signal?.addEventListener('abort', onAbort, { once: true });

    try {
      try {
        container = await this.docker.createContainer(this.containerConfig(spec));
      } catch (err) {
        if (isStatus(err, 404)) throw new ImageMissingError(spec.image, errMessage(err));
        throw err;
      }

      // Attach before start so not even the first byte of output is lost. The streams are
      // multiplexed (Tty false); demuxStream splits them into stdout and stderr.
      attachStream = await container.attach({ stream: true, stdout: true, stderr: true });
      const outputDone = streamDone(attachStream);
      container.modem.demuxStream(attachStream, sink(spec.onStdout), sink(spec.onStderr));

      if (canceled) {
        return { exitCode: null, timedOut: false, oomKilled: false, canceled: true, durationMs: Date.now() - t0 };
      }
      const startedAt = Date.now();
      await container.start();
      started = true;
      if (canceled) kill(); // aborted while start() was in flight
      timer = setTimeout(() => {
        timedOut = true;
        kill();
      }, spec.timeoutMs);

      const waited = (await container.wait()) as { StatusCode: number };
      const durationMs = Date.now() - startedAt;
      clearTimeout(timer);
      // The attach stream ends once the container's stdio is drained; wait for it (bounded) so
      // the caller has every byte before we report completion.
      await Promise.race([outputDone, sleep(5_000)]);
      const info = await container.inspect();
      return {
        exitCode: waited.StatusCode,
        // A job that finished on its own just as the timer fired is not a timeout.
        timedOut: timedOut && !canceled,
        oomKilled: info.State.OOMKilled === true,
        canceled,
        durationMs,
      };
    } finally {
      clearTimeout(timer);
      spec.signal?.removeEventListener('abort', onAbort);
      (attachStream as unknown as { destroy?: () => void } | undefined)?.destroy?.();
      if (container) {
        // Always remove, whatever happened above (STYLE.md #5); force also kills a survivor.
        await container.remove({ force: true, v: true }).catch((err: unknown) => {
          if (!isStatus(err, 404) && !isStatus(err, 409)) throw err;
        });
      }
    }
  }

  private containerConfig(spec: RunJobSpec): Docker.ContainerCreateOptions {
    const env = { HOME: '/tmp', ...spec.env };
    return {
      Image: spec.image,
      Cmd: spec.cmd,
      Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
      User: `${this.user.uid}:${this.user.gid}`,
      WorkingDir: '/work',
      Labels: { ...spec.labels, [RUNNER_LABEL]: this.runnerId },
      Tty: false,
      OpenStdin: false,
      AttachStdout: true,
      AttachStderr: true,
      // NetworkDisabled skips creating a network namespace setup entirely (~2x faster start
      // than NetworkMode none alone); NetworkMode none is kept as the belt to those braces.
      NetworkDisabled: true,
      HostConfig: {
        NetworkMode: 'none',
        ReadonlyRootfs: true,
        Mounts: [
          { Type: 'bind', Source: spec.workDir, Target: '/work', ReadOnly: false },
          { Type: 'bind', Source: spec.scriptHostPath, Target: spec.scriptContainerPath, ReadOnly: true },
          { Type: 'tmpfs', Source: '', Target: '/tmp', TmpfsOptions: { SizeBytes: this.tmpfsBytes, Mode: 0o1777 } },
        ],
        CapDrop: ['ALL'],
        SecurityOpt: ['no-new-privileges'],
        PidsLimit: spec.pidsLimit,
        Memory: spec.memoryBytes,
        // Equal to Memory: no swap, so a memory hog is OOM-killed instead of thrashing.
        MemorySwap: spec.memoryBytes,
        NanoCpus: spec.nanoCpus,
        // Output goes to the attach stream; a json-file log would duplicate it on disk.
        LogConfig: { Type: 'none', Config: {} },
      },
    };
  }

  /**
   * The job runs as an unprivileged uid, while the runner (root) created the files: hand the
   * job dir over to that uid and make the script readable, or the job cannot write outputs.
   */
  private async prepareWorkDir(spec: RunJobSpec): Promise<void> {
    const { uid, gid } = this.user;
    await chown(spec.workDir, uid, gid);
    await chmod(spec.workDir, 0o755);
    const entries = await readdir(spec.workDir, { recursive: true });
    for (const rel of entries) await lchown(join(spec.workDir, rel), uid, gid);
    const st = await stat(spec.scriptHostPath);
    if ((st.mode & 0o004) === 0) await chmod(spec.scriptHostPath, (st.mode & 0o777) | 0o444);
  }
}

export async function imageExists(docker: Docker, tag: string): Promise<boolean> {
  try {
    await docker.getImage(tag).inspect();
    return true;
  } catch (err) {
    if (isStatus(err, 404)) return false;
    throw err;
  }
}

function sink(fn: (chunk: Buffer) => void): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      try {
        fn(chunk);
        cb();
      } catch (err) {
        cb(err as Error);
      }
    },
  });
}

function streamDone(stream: NodeJS.ReadableStream): Promise<void> {
  return new Promise((resolve) => {
    stream.once('end', () => resolve());
    stream.once('close', () => resolve());
    // on, not once: a second 'error' without a listener would crash the process.
    stream.on('error', () => resolve());
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms).unref());

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
