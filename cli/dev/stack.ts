/**
 * The local stack, as a library: `rgrid dev`, `rgrid demo` and the end-to-end tests all use it.
 *
 * Start order, and why:
 *   1. lock the data dir (two stacks on one D1 file would corrupt it), reap runners a killed
 *      predecessor left behind;
 *   2. check Docker when runners are wanted: fail in a second with a fix, not after a minute;
 *   3. the S3 store first: the Worker's bindings need its endpoint;
 *   4. the control plane in Miniflare (control-plane/local: bundled with esbuild, D1 + Durable
 *      Objects persisted in the data dir, migrations applied before the first request);
 *   5. bootstrap (account, API key, pool, registration token) through the admin API, reusing what
 *      an earlier start made;
 *   6. write the CLI config and the registration token, then start the runners last: they
 *      register at once and need all of the above.
 * stop() undoes it in reverse; runners first, so they can finish talking to the control plane.
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { constants as osConstants } from 'node:os';
import { join, resolve } from 'node:path';
import { Http, ApiError } from '../api/http.js';
import * as account from '../api/account.js';
import * as admin from '../api/admin.js';
import { readConfigFile, writeConfigFile, CONFIG_FILE } from '../config.js';
import { CLI_EXIT, CliError } from '../errors.js';
import { startS3Store, type S3Store } from './s3-store.js';
import { startLocalControlPlane } from '../../control-plane/local/miniflare.js';

/** The control plane's log file in `<data dir>/logs/`. */
export const CONTROL_PLANE_LOG = 'control-plane.log';
import { RUNNER_BIN } from '../paths.js';
import { loadState, saveState, writePrivate, TOKEN_FILE, type DevState } from './state.js';
import { dockerStatus, removeRunnerContainers } from './docker.js';
import { clearPids, reapStaleRunners, recordPids, spawnRunner, stopRunners, type RunnerProcess } from './runners.js';

export const DEFAULT_PORT = 8787;
export const DEFAULT_POOL = 'default';
const BUCKET = 'rgrid';
const REGION = 'us-east-1';

export interface StackOptions {
  /** Directory for all state (D1, Durable Objects, objects, secrets, runner work dirs). */
  dataDir: string;
  /** Control plane port on 127.0.0.1; 0 picks a free one. Default 8787. */
  port?: number;
  /** Object store port on 127.0.0.1; default 0 (any free port). */
  s3Port?: number;
  /** Runner processes to start (0: none; tests without Docker). Default 1. */
  runners?: number;
  /** Job slots per runner. Default 2. */
  slots?: number;
  /** Package index the runners build environments from (else the runner's default). */
  pipIndexUrl?: string;
  /** Write the CLI config (API URL + key) into this directory. */
  cliConfigDir?: string;
  /** Progress messages ("Starting control plane…"). */
  onMessage?: (line: string) => void;
  /** Each runner output line, with the runner's index. */
  onRunnerLine?: (index: number, line: string) => void;
  /** Extra environment for runner processes. */
  runnerEnv?: Record<string, string>;
  /** Extra Worker vars (e.g. LEASE_SECONDS for tests). */
  workerVars?: Record<string, string>;
  /**
   * On SIGINT/SIGTERM/SIGHUP, stop every stack of this process, then exit 128+signal (default
   * true). Set false when the caller handles signals itself and calls stop() (`rgrid dev`).
   */
  handleSignals?: boolean;
}

export interface Stack {
  apiUrl: string;
  apiKey: string;
  accountId: string;
  adminSecret: string;
  registrationToken: string;
  pool: string;
  dataDir: string;
  s3: S3Store;
  runners: RunnerProcess[];
  /** Stops everything this stack started. Safe to call twice. */
  stop(): Promise<void>;
}

/** Data dirs held by stacks of this process (the pid in the lock file cannot tell them apart). */
const held = new Set<string>();

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
  const path = join(dataDir, 'dev.lock');
  const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
  const busy = pid === process.pid ? held.has(dataDir) : Number.isInteger(pid) && pid > 0 && processAlive(pid);
  if (busy) {
    throw new CliError(`Another local stack (pid ${pid}) is using ${dataDir}`, {
      hint: 'Stop it first (Ctrl+C in its terminal), or use another --data-dir.',
    });
  }
  held.add(dataDir);
  await writeFile(path, `${process.pid}\n`);
  return async () => {
    held.delete(dataDir);
    await rm(path, { force: true });
  };
}

async function assertPortFree(port: number): Promise<void> {
  if (port === 0) return;
  await new Promise<void>((resolvePort, reject) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        err.code === 'EADDRINUSE'
          ? new CliError(`Port ${port} on 127.0.0.1 is already in use`, { hint: 'Is another `rgrid dev` running? Stop it, or pick another port with --port.' })
          : err,
      );
    });
    server.listen(port, '127.0.0.1', () => server.close(() => resolvePort()));
  });
}

export async function assertDocker(): Promise<void> {
  const status = await dockerStatus();
  if (status.ok) return;
  throw new CliError(`Cannot reach a Docker daemon at ${status.target} (${status.reason})`, {
    hint:
      'Runners run each job in a Docker container. Start Docker (on this project\'s CI machines: `bash .ci/docker-up.sh`; elsewhere: start Docker Desktop or `sudo systemctl start docker`), ' +
      'or start the stack without runners: `rgrid dev --runners 0`.',
    exitCode: CLI_EXIT.unavailable,
  });
}

function assertRunnerInstalled(): void {
  if (existsSync(RUNNER_BIN)) return;
  throw new CliError(`The runner agent is not installed (${RUNNER_BIN} is missing)`, {
    hint: 'Start the stack without runners (`rgrid dev --runners 0`) and connect a runner from elsewhere.',
  });
}

/** Makes (or reuses) the account, API key, pool and registration token. */
async function bootstrap(apiUrl: string, state: DevState): Promise<Required<Pick<DevState, 'accountId' | 'apiKey' | 'registrationToken'>>> {
  if (state.apiKey && state.accountId && state.registrationToken) {
    try {
      await account.whoami(new Http({ baseUrl: apiUrl, token: state.apiKey }));
      return { accountId: state.accountId, apiKey: state.apiKey, registrationToken: state.registrationToken };
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 401)) throw err;
      // The database was reset under a kept state file: make everything again.
    }
  }
  const http = new Http({ baseUrl: apiUrl, token: state.adminSecret });
  const { account: acct } = await admin.createAccount(http, 'local');
  const { key } = await admin.createApiKey(http, acct.id, 'rgrid dev');
  await admin.createPool(http, DEFAULT_POOL);
  const { token } = await admin.createRegistrationToken(http, DEFAULT_POOL);
  return { accountId: acct.id, apiKey: key, registrationToken: token };
}

/** Points the CLI at this stack; a config that pointed elsewhere is kept as config.json.bak. */
async function configureCli(dir: string, apiUrl: string, apiKey: string): Promise<{ path: string; backup?: string }> {
  const existing = await readConfigFile(dir).catch(() => undefined);
  let backup: string | undefined;
  if (existing && typeof existing === 'object' && 'apiUrl' in existing && (existing as { apiUrl: unknown }).apiUrl !== apiUrl) {
    await mkdir(dir, { recursive: true });
    backup = join(dir, `${CONFIG_FILE}.bak`);
    await copyFile(join(dir, CONFIG_FILE), backup);
  }
  const path = await writeConfigFile(dir, { apiUrl, apiKey });
  return { path, ...(backup ? { backup } : {}) };
}

/** stop() of every running stack of this process, for the signal handler below. */
const running = new Set<() => Promise<void>>();
let signalsInstalled = false;

function installSignalHandlers(): void {
  if (signalsInstalled) return;
  signalsInstalled = true;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      void Promise.allSettled([...running].map((stop) => stop())).then(() => process.exit(128 + osConstants.signals[sig]));
    });
  }
}

/**
 * Miniflare installs SIGINT/SIGTERM listeners that exit the process at once. That would kill
 * the control plane while runners still need it to release their jobs, and skip every other
 * cleanup; so the ones it adds are removed here, and stop() (called from our own handlers)
 * disposes Miniflare in its turn. Its 'exit' listener stays: on a plain exit it still takes
 * workerd down.
 */
async function withoutMiniflareSignalExit<T>(start: () => Promise<T>): Promise<T> {
  const before = { SIGINT: new Set(process.listeners('SIGINT')), SIGTERM: new Set(process.listeners('SIGTERM')) };
  try {
    return await start();
  } finally {
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      for (const l of process.listeners(sig)) if (!before[sig].has(l)) process.off(sig, l);
    }
  }
}

export async function startStack(opts: StackOptions): Promise<Stack> {
  const dataDir = resolve(opts.dataDir);
  const say = opts.onMessage ?? (() => {});
  const runnersWanted = opts.runners ?? 1;
  const cleanups: (() => Promise<unknown>)[] = [];
  const undo = async () => {
    for (const fn of cleanups.reverse()) await fn().catch(() => undefined);
    cleanups.length = 0;
  };

  try {
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    cleanups.push(await lockDataDir(dataDir));
    const reaped = await reapStaleRunners(dataDir);
    if (reaped) say(`Stopped ${reaped} runner${reaped === 1 ? '' : 's'} left over from an earlier run.`);
    if (runnersWanted > 0) {
      assertRunnerInstalled();
      await assertDocker();
    }
    const port = opts.port ?? DEFAULT_PORT;
    await assertPortFree(port);
    const state = await loadState(dataDir);

    const s3 = await startS3Store({ port: opts.s3Port ?? 0, dataDir: join(dataDir, 's3'), bucket: BUCKET, region: REGION, ...state.s3 });
    cleanups.push(() => s3.close());

    // No request.cf download from the internet: everything stays on loopback.
    process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= 'false';
    // The control plane's own log lines (cache decisions, retention sweeps, warnings) go to a file:
    // the terminal is the user's, for their script's output and RGrid's messages to them.
    await mkdir(join(dataDir, 'logs'), { recursive: true });
    const cp = await withoutMiniflareSignalExit(() => startLocalControlPlane({
      port,
      dataDir: join(dataDir, 'control-plane'),
      logFile: join(dataDir, 'logs', CONTROL_PLANE_LOG),
      persist: true,
      bindings: {
        ADMIN_SECRET: state.adminSecret,
        S3_ENDPOINT: s3.endpoint,
        S3_BUCKET: BUCKET,
        S3_REGION: REGION,
        S3_ACCESS_KEY_ID: state.s3.accessKeyId,
        S3_SECRET_ACCESS_KEY: state.s3.secretAccessKey,
        ...opts.workerVars,
      },
    }));
    cleanups.push(() => cp.dispose());
    const apiUrl = cp.url;
    const db = await cp.mf.getD1Database('DB');

    const boot = await bootstrap(apiUrl, state);
    if (boot.apiKey !== state.apiKey) await saveState(dataDir, { ...state, ...boot });
    await writePrivate(join(dataDir, TOKEN_FILE), boot.registrationToken + '\n');
    if (opts.cliConfigDir) {
      const cfg = await configureCli(opts.cliConfigDir, apiUrl, boot.apiKey);
      say(`CLI configured: ${cfg.path}${cfg.backup ? ` (the previous config is saved as ${cfg.backup})` : ''}`);
    }

    // Containers of runners that died without cleaning up (their ids are in this stack's D1).
    const knownRunnerIds = async () => (await db.prepare('SELECT id FROM runners').all<{ id: string }>()).results.map((r: { id: string }) => r.id);
    if (runnersWanted > 0) await removeRunnerContainers(await knownRunnerIds());

    const runners: RunnerProcess[] = [];
    for (let i = 1; i <= runnersWanted; i++) {
      runners.push(
        await spawnRunner({
          index: i,
          apiUrl,
          registrationToken: boot.registrationToken,
          pool: DEFAULT_POOL,
          slots: opts.slots ?? 2,
          workDir: join(dataDir, 'runners', String(i)),
          ...(opts.pipIndexUrl ? { pipIndexUrl: opts.pipIndexUrl } : {}),
          logFile: join(dataDir, 'logs', `runner-${i}.log`),
          // A short long-poll keeps Ctrl+C snappy (a draining runner waits for its open claim);
          // pulling a missing base image lets a fresh machine with Docker run jobs at once (CI and
          // the tests set RGRID_RUNNER_PULL_IMAGES=false: nothing may leave this machine there).
          env: { RGRID_RUNNER_CLAIM_WAIT: '5', RGRID_RUNNER_NAME: `dev-${i}`, RGRID_RUNNER_PULL_IMAGES: process.env.RGRID_RUNNER_PULL_IMAGES ?? 'true', ...opts.runnerEnv },
          ...(opts.onRunnerLine ? { onLine: (line: string) => opts.onRunnerLine!(i, line) } : {}),
        }),
      );
    }
    if (runners.length) {
      await recordPids(dataDir, runners);
      cleanups.push(async () => {
        const { killed } = await stopRunners(runners);
        for (const i of killed) say(`Runner ${i} did not stop within 5s after SIGTERM; killed it.`);
        const removed = await removeRunnerContainers(await knownRunnerIds().catch(() => []));
        if (removed) say(`Removed ${removed} job container${removed === 1 ? '' : 's'} a runner left behind.`);
        await clearPids(dataDir);
      });
    }

    let stopped: Promise<void> | undefined;
    const stop = () => (stopped ??= undo().finally(() => running.delete(stop)));
    running.add(stop);
    if (opts.handleSignals !== false) installSignalHandlers();
    return {
      apiUrl,
      apiKey: boot.apiKey,
      accountId: boot.accountId,
      adminSecret: state.adminSecret,
      registrationToken: boot.registrationToken,
      pool: DEFAULT_POOL,
      dataDir,
      s3,
      runners,
      stop,
    };
  } catch (err) {
    await undo();
    throw err;
  }
}
