/**
 * The local stack for benches: `startStack` from cli/dev/stack.ts (the same code `rgrid dev`
 * runs: control plane in Miniflare/workerd, signature-verifying S3 store on loopback, bootstrap
 * through the admin API) in a throwaway data dir on a free port, with runner processes started by
 * the bench itself through the same `spawnRunner` `rgrid dev` uses, so a bench can point a runner
 * at a counting proxy or restart it between phases.
 */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startStack, type Stack } from '../../cli/dev/stack.js';
import { runnerArgs, spawnRunner, stopRunners, type RunnerProcess, type RunnerSpec } from '../../cli/dev/runners.js';
import { PACKAGE_ROOT } from '../../cli/paths.js';
import { PIP_INDEX_URL } from './env.js';
import { Api } from './api.js';

export interface BenchStack {
  stack: Stack;
  api: Api;
  dir: string;
  runners: RunnerProcess[];
  /**
   * Starts a runner process with `slots` slots, talking to `apiUrl` (default: the control plane),
   * and resolves once it has registered and started claiming.
   */
  addRunner(opts: { slots: number; apiUrl?: string; env?: Record<string, string>; bin?: string }): Promise<RunnerProcess>;
  /** Stops every runner this stack started (drain, then stop now). */
  stopRunners(): Promise<void>;
  stop(): Promise<void>;
}

export async function startBenchStack(opts: { workerVars?: Record<string, string>; log?: (line: string) => void } = {}): Promise<BenchStack> {
  const dir = await mkdtemp(join(tmpdir(), 'rgrid-bench-'));
  process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= 'false';
  const stack = await startStack({
    dataDir: join(dir, 'stack'),
    port: 0,
    runners: 0,
    ...(opts.workerVars ? { workerVars: opts.workerVars } : {}),
    onMessage: (l) => opts.log?.(l),
  });
  const runners: RunnerProcess[] = [];
  let n = 0;
  const bench: BenchStack = {
    stack,
    api: new Api(stack.apiUrl, stack.apiKey),
    dir,
    runners,
    async addRunner(r) {
      n++;
      let ready!: () => void;
      const serving = new Promise<void>((r) => (ready = r));
      const proc = await (r.bin ? spawnRunnerFrom(r.bin) : spawnRunner)({
        index: n,
        apiUrl: r.apiUrl ?? stack.apiUrl,
        registrationToken: stack.registrationToken,
        pool: stack.pool,
        slots: r.slots,
        workDir: join(dir, 'runners', String(n)),
        pipIndexUrl: PIP_INDEX_URL,
        logFile: join(dir, `runner-${n}.log`),
        // As `rgrid dev` starts them, except that nothing may be pulled from a registry here.
        env: { RGRID_RUNNER_CLAIM_WAIT: '5', RGRID_RUNNER_NAME: `bench-${n}`, RGRID_RUNNER_PULL_IMAGES: 'false', ...r.env },
        onLine: (line) => {
          if (line.includes('serving pool')) ready();
        },
      });
      runners.push(proc);
      const exited = proc.exited.then((code) => {
        throw new Error(`runner ${n} exited (${code}) before it started serving; see ${join(dir, `runner-${n}.log`)}`);
      });
      const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`runner ${n} did not start within 60 s`)), 60_000).unref());
      await Promise.race([serving, exited, timeout]);
      return proc;
    },
    async stopRunners() {
      const live = runners.splice(0);
      if (live.length) await stopRunners(live);
    },
    async stop() {
      await bench.stopRunners().catch(() => undefined);
      await stack.stop();
      if (process.env.BENCH_KEEP_DIR !== '1') await rm(dir, { recursive: true, force: true });
    },
  };
  return bench;
}

/**
 * spawnRunner with another entry point than bin/rgrid-runner.mjs (e.g. a modified copy of the
 * runner, to measure a change against the stock runner in the same run).
 */
function spawnRunnerFrom(bin: string): (spec: RunnerSpec) => Promise<RunnerProcess> {
  return async (spec) => {
    await mkdir(spec.workDir, { recursive: true });
    const logStream = createWriteStream(spec.logFile, { flags: 'a' });
    const child = spawn(process.execPath, [bin, ...runnerArgs(spec).slice(1)], { cwd: PACKAGE_ROOT, env: { ...process.env, ...spec.env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    for (const stream of [child.stdout!, child.stderr!]) {
      stream.pipe(logStream, { end: false });
      if (spec.onLine) createInterface({ input: stream }).on('line', spec.onLine);
    }
    const exited = new Promise<number | string>((resolve) => {
      child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
      child.once('error', (err) => resolve(err.message));
    });
    void exited.then(() => logStream.end());
    if (child.pid === undefined) throw new Error(`could not start the runner: ${await exited}`);
    return { index: spec.index, pid: child.pid, child, exited, logFile: spec.logFile };
  };
}
