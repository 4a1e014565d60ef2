/**
 * The runner's one config schema (STYLE.md #7): flags > RGRID_RUNNER_* env > defaults, every
 * setting commented, coerced and checked. `loadRunnerConfig` is pure: it takes its sources.
 */
import { cpus } from 'node:os';
import { resolve } from 'node:path';
import { z } from 'zod';
import { DEFAULTS, RUNTIMES, type RuntimeName } from '../../shared/limits.js';

const defaultImages = Object.fromEntries(Object.entries(RUNTIMES).map(([k, v]) => [k, v.image])) as Record<RuntimeName, string>;

const bool = z.union([z.boolean(), z.enum(['true', 'false', '1', '0', 'yes', 'no']).transform((v) => ['true', '1', 'yes'].includes(v))]);

export const RunnerConfigSchema = z
  .object({
    /** Control plane base URL, e.g. https://rgrid.example.com or http://127.0.0.1:8787. */
    apiUrl: z.string().url('--api-url must be a URL like http://127.0.0.1:8787'),
    /** Registration token, needed on first start; the runner token is then kept in <workDir>/runner.json. */
    registrationToken: z.string().min(10).optional(),
    /** Pool the runner serves; informational here (the registration token decides), checked at start. */
    pool: z.string().min(1).default(DEFAULTS.pool),
    /** Concurrent jobs. */
    slots: z.coerce.number().int().min(1).max(256).default(Math.max(1, cpus().length)),
    /** Where job directories and the runner's identity file live. */
    workDir: z.string().min(1).transform((p) => resolve(p)),
    /** Name reported to the control plane. */
    name: z.string().min(1).default(`runner-${process.pid}`),
    /** Package index the environment builds use (host network); e.g. http://127.0.0.1:3141/simple/. */
    pipIndexUrl: z.string().url().default('https://pypi.org/simple/'),
    extraIndexUrls: z.array(z.string().url()).default([]),
    /** Runtime → base image. */
    images: z.record(z.string(), z.string()).default(defaultImages),
    /** Pull a base image that is missing locally (reaches a registry). */
    pullImages: bool.default(false),
    /** Limits every job gets at most (a job asking for more is clamped). */
    maxMemoryMb: z.coerce.number().int().min(16).default(64 * 1024),
    pidsLimit: z.coerce.number().int().min(16).default(256),
    /** Long-poll wait per claim; also the longest a graceful drain waits for open polls. */
    claimWaitSeconds: z.coerce.number().min(0).max(25).default(20),
    /** Streamed log cap per attempt; the full log is still kept as an artifact. */
    maxStreamedLogBytes: z.coerce.number().int().min(1024).default(10 * 1024 * 1024),
    /** Extra CA certificates (PEM file) trusted when fetching remote inputs (private https sources). */
    remoteCaFile: z.string().optional(),
    /** Labels reported at registration (the autoscaler sets rgrid.server). */
    labels: z.record(z.string(), z.string()).default({}),
  })
;

export type RunnerConfig = z.output<typeof RunnerConfigSchema>;

/** Flag name → config key; each flag also reads RGRID_RUNNER_<UPPER_SNAKE>. */
export const FLAGS = {
  'api-url': 'apiUrl',
  'registration-token': 'registrationToken',
  pool: 'pool',
  slots: 'slots',
  'work-dir': 'workDir',
  name: 'name',
  'pip-index-url': 'pipIndexUrl',
  'pull-images': 'pullImages',
  'pids-limit': 'pidsLimit',
  'claim-wait': 'claimWaitSeconds',
  'remote-ca-file': 'remoteCaFile',
} as const;

export interface ConfigSources {
  flags: Record<string, string | boolean | undefined>;
  env: Record<string, string | undefined>;
}

export function loadRunnerConfig({ flags, env }: ConfigSources) {
  const raw: Record<string, unknown> = { workDir: '/var/lib/rgrid-runner' };
  for (const [flag, key] of Object.entries(FLAGS)) {
    const envName = `RGRID_RUNNER_${flag.toUpperCase().replace(/-/g, '_')}`;
    const value = flags[flag] ?? env[envName];
    if (value !== undefined && value !== '') raw[key] = value;
  }
  if (env.RGRID_RUNNER_EXTRA_INDEX_URLS) raw.extraIndexUrls = env.RGRID_RUNNER_EXTRA_INDEX_URLS.split(/\s+/).filter(Boolean);
  // RGRID_RUNNER_IMAGE_<RUNTIME>=image overrides one runtime's base image, e.g. RGRID_RUNNER_IMAGE_PYTHON3_11.
  const images: Record<string, string> = { ...defaultImages };
  for (const runtime of Object.keys(RUNTIMES)) {
    const v = env[`RGRID_RUNNER_IMAGE_${runtime.toUpperCase().replace(/\./g, '_')}`];
    if (v) images[runtime] = v;
  }
  raw.images = images;
  if (env.RGRID_RUNNER_LABELS) {
    raw.labels = Object.fromEntries(env.RGRID_RUNNER_LABELS.split(',').filter(Boolean).map((kv) => kv.split('=', 2) as [string, string]));
  }
  return RunnerConfigSchema.safeParse(raw);
}
