/** Limits and defaults shared by the control plane, the runner and the CLI. */

export const LIMITS = {
  /** Largest JSON request body the API accepts. */
  maxJsonBodyBytes: 1024 * 1024,
  /** Input files per execution. */
  maxInputsPerExecution: 1000,
  /** Arguments per execution and their size. */
  maxArgs: 1000,
  maxArgBytes: 8192,
  /** Environment variables per execution. */
  maxEnvVars: 200,
  maxEnvValueBytes: 32 * 1024,
  /** Metadata pairs per execution. */
  maxMetadataPairs: 50,
  maxMetadataValueBytes: 1024,
  /** Relative path of an input or output inside /work. */
  maxPathBytes: 1024,
  /** Largest single file (input or output). */
  maxFileBytes: 50 * 1024 ** 3,
  /** Outputs per execution. */
  maxOutputsPerExecution: 10_000,
  /** One log chunk, and all the log one attempt may stream to the control plane. */
  maxLogChunkBytes: 64 * 1024,
  maxLogChunksPerRequest: 100,
  maxStreamedLogBytes: 10 * 1024 * 1024,
  /** Long-poll claim wait. */
  maxClaimWaitSeconds: 25,
  maxClaimJobs: 32,
  /** Execution resource limits. */
  maxTimeoutSeconds: 24 * 3600,
  maxMemoryMb: 64 * 1024,
  maxCpus: 64,
  /** List page size. */
  maxPageSize: 200,
} as const;

export const DEFAULTS = {
  runtime: 'python3.11',
  pool: 'default',
  timeoutSeconds: 3600,
  memoryMb: 2048,
  cpus: 1,
  /** A lease lasts this long without a heartbeat before the job is requeued. */
  leaseSeconds: 60,
  /** Runners heartbeat this often while a job runs. */
  heartbeatSeconds: 10,
  /** A job is tried this many times before it fails as runner_lost. */
  maxAttempts: 3,
  /** Presigned URLs expire after this many seconds. */
  presignSeconds: 3600,
  pageSize: 50,
  artifactRetentionDays: 30,
} as const;

/** Runtimes RGrid knows, and the base image each uses unless a runner is configured otherwise. */
export const RUNTIMES = {
  'python3.11': { image: 'python:3.11-slim', command: ['python'] },
  'python3.12': { image: 'python:3.12-slim', command: ['python'] },
  'python3.10': { image: 'python:3.10-slim', command: ['python'] },
  node20: { image: 'node:20-slim', command: ['node'] },
} as const;

export type RuntimeName = keyof typeof RUNTIMES;
export const RUNTIME_NAMES = Object.keys(RUNTIMES) as [RuntimeName, ...RuntimeName[]];
