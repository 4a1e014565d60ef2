/**
 * Environment images: a base image plus a venv with the job's requirements, built once per
 * (base, requirements) and then reused by tag.
 *
 * Builds go through BuildKit (`version: '2'`) so pip's download cache lives in a cache mount
 * shared by all builds on this daemon, and with host networking so pip reaches a package index
 * served on 127.0.0.1 (job containers themselves never get a network).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { BuildProgress } from './buildkit-progress.js';
import { ImageMissingError, imageExists } from './runtime.js';

export interface EnsureEnvImageOptions {
  baseImage: string;
  /** Contents of requirements.txt; blank means "venv only". */
  requirementsText: string;
  /** Tag of the resulting image: shared/hashing.ts envImageTag(env key). */
  tag: string;
  /** PEP 503 simple index reachable from the build (host network), e.g. http://127.0.0.1:3141/simple/ */
  pipIndexUrl: string;
  extraIndexUrls?: string[];
  /** Build output, one line at a time (pip's output, step names, errors). */
  onLog?(line: string): void;
  /**
   * Abort the build. Callers that joined the same in-flight build (same tag) see the abort too.
   */
  signal?: AbortSignal;
  /**
   * Try `docker pull` when baseImage is missing locally. Default false: a pull reaches a
   * registry, which production runners allow (`--pull-images`) and tests and CI never do; without
   * it the error comes at once, naming the image.
   */
  pullBaseImage?: boolean;
  /** Rebuild even when the tag exists, without BuildKit's layer cache (`rgrid run --no-cache`). */
  force?: boolean;
  /** Extra image labels (the runner records the env key so it can list what it holds after a restart). */
  labels?: Record<string, string>;
  docker?: Docker;
}

export interface EnsureEnvImageResult {
  /** True when the tag already existed and nothing was built. */
  cacheHit: boolean;
  buildSeconds: number;
  tag: string;
}

/** The build ran and failed; `message` carries pip's own error lines. */
export class EnvBuildError extends Error {
  constructor(
    message: string,
    readonly tag: string,
    /** Last lines of build output, oldest first. */
    readonly logTail: string[],
  ) {
    super(message);
    this.name = 'EnvBuildError';
  }
}

// Concurrent jobs needing the same environment must share one build: the second caller awaits
// the first caller's promise instead of starting a parallel (and racing) build of the same tag.
const inFlight = new Map<string, Promise<EnsureEnvImageResult>>();

export function ensureEnvImage(opts: EnsureEnvImageOptions): Promise<EnsureEnvImageResult> {
  const running = inFlight.get(opts.tag);
  if (running) return running;
  const p = ensureUncached(opts).finally(() => inFlight.delete(opts.tag));
  inFlight.set(opts.tag, p);
  return p;
}

async function ensureUncached(opts: EnsureEnvImageOptions): Promise<EnsureEnvImageResult> {
  const docker = opts.docker ?? new Docker();
  if (!opts.force && (await imageExists(docker, opts.tag))) return { cacheHit: true, buildSeconds: 0, tag: opts.tag };

  const t0 = Date.now();
  await ensureBaseImage(docker, opts.baseImage, opts.pullBaseImage ?? false, opts.onLog);
  const ctxDir = await mkdtemp(join(tmpdir(), 'rgrid-envbuild-'));
  try {
    const hasReqs = opts.requirementsText.trim() !== '';
    await writeFile(join(ctxDir, 'Dockerfile'), dockerfile(opts, hasReqs));
    await writeFile(join(ctxDir, 'requirements.txt'), opts.requirementsText);
    await runBuild(docker, ctxDir, opts);
  } finally {
    await rm(ctxDir, { recursive: true, force: true });
  }
  if (!(await imageExists(docker, opts.tag))) {
    throw new EnvBuildError(`build of ${opts.tag} reported success but the image is missing`, opts.tag, []);
  }
  return { cacheHit: false, buildSeconds: (Date.now() - t0) / 1000, tag: opts.tag };
}

function dockerfile(opts: EnsureEnvImageOptions, hasReqs: boolean): string {
  const idx = [`--index-url ${shellQuote(opts.pipIndexUrl)}`]
    .concat((opts.extraIndexUrls ?? []).map((u) => `--extra-index-url ${shellQuote(u)}`))
    .join(' ');
  // No "# syntax=" line: that would make BuildKit pull a frontend image from a registry. The
  // daemon's built-in Dockerfile frontend already supports RUN --mount.
  return [
    `FROM ${opts.baseImage}`,
    // A venv, because Debian's (and the official images') pip refuses system-wide installs (PEP 668).
    'RUN python3 -m venv /opt/venv',
    ...(hasReqs
      ? [
          // requirements.txt is bind-mounted rather than COPYed: it stays out of the image layers.
          // The cache mount keeps downloaded wheels across builds of different environments.
          'RUN --mount=type=cache,target=/root/.cache/pip --mount=type=bind,source=requirements.txt,target=/tmp/rgrid-requirements.txt \\',
          `    /opt/venv/bin/pip install --disable-pip-version-check --no-input --progress-bar off ${idx} -r /tmp/rgrid-requirements.txt`,
        ]
      : []),
    'ENV VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    '',
  ].join('\n');
}

async function runBuild(docker: Docker, ctxDir: string, opts: EnsureEnvImageOptions): Promise<void> {
  const progress = new BuildProgress((line) => opts.onLog?.(line));
  const stream = await docker.buildImage(
    { context: ctxDir, src: ['Dockerfile', 'requirements.txt'] },
    {
      t: opts.tag,
      version: '2',
      networkmode: 'host',
      ...(opts.force ? { nocache: true } : {}),
      labels: { ...opts.labels, 'rgrid.env': '1', 'rgrid.base': opts.baseImage },
      ...(opts.signal ? { abortSignal: opts.signal } : {}),
    },
  );
  await new Promise<void>((resolve, reject) => {
    stream.on('data', (chunk: Buffer) => progress.push(chunk));
    stream.once('end', resolve);
    stream.once('error', reject);
  });
  progress.end();
  if (progress.error === undefined) return;

  // The daemon's error is generic ("... did not complete successfully: exit code: 1"); the
  // cause is in pip's output. pip prefixes its own failures with "ERROR:".
  const tail = progress.lastLines();
  const pipErrors = tail.filter((l) => /^\s*ERROR:/.test(l));
  const detail = pipErrors.length > 0 ? pipErrors : tail.slice(-15);
  throw new EnvBuildError(
    `building environment image ${opts.tag} from ${opts.baseImage} failed: ${progress.error}\n${detail.join('\n')}`,
    opts.tag,
    tail,
  );
}

/**
 * BuildKit would try to pull a missing FROM image itself, with a less clear error. We check
 * first, try one pull, and name the image when it cannot be had.
 */
async function ensureBaseImage(
  docker: Docker,
  image: string,
  pull: boolean,
  onLog?: (line: string) => void,
): Promise<void> {
  if (await imageExists(docker, image)) return;
  if (!pull) throw new ImageMissingError(image, 'not present locally (pulling disabled)');
  onLog?.(`base image ${image} not present, trying to pull it`);
  try {
    const stream = await docker.pull(image);
    await new Promise<void>((resolve, reject) => {
      docker.modem.followProgress(stream, (err: Error | null) => (err ? reject(err) : resolve()));
    });
  } catch (err) {
    throw new ImageMissingError(image, `not present locally and pull failed (${err instanceof Error ? err.message : String(err)})`);
  }
  if (!(await imageExists(docker, image))) throw new ImageMissingError(image, 'not present locally and pull produced nothing');
}

const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
