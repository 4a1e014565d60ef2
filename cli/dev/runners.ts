/**
 * Runner processes of the local stack. Each runs `node bin/rgrid-runner.mjs …` in its own process
 * group, so that stopping it reaches everything it started, and so that the terminal's Ctrl+C
 * reaches only `rgrid dev`, which then stops the runners in order. The runner drains on its first
 * SIGTERM and stops at once on the second (running jobs killed, containers removed, leases
 * released so the jobs requeue); we send both a moment apart, because a local stack should stop
 * now, and SIGKILL the group only if it is still there after a grace period.
 * Their pids are recorded in the data dir: if `rgrid dev` itself was killed (no chance to clean
 * up), the next start reaps what it left.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { PACKAGE_ROOT, RUNNER_BIN } from '../paths.js';

export { RUNNER_BIN };
const PIDS_FILE = 'runner-pids.json';

export interface RunnerSpec {
  index: number;
  apiUrl: string;
  registrationToken: string;
  pool: string;
  slots: number;
  workDir: string;
  pipIndexUrl?: string;
  logFile: string;
  /** Extra environment (RGRID_RUNNER_*), on top of this process's. */
  env?: Record<string, string>;
  /** Each output line, e.g. to echo it prefixed in `rgrid dev`. */
  onLine?: (line: string) => void;
}

export interface RunnerProcess {
  index: number;
  pid: number;
  child: ChildProcess;
  /** Resolves with the exit code (or the signal's name) once the process is gone. */
  exited: Promise<number | string>;
  logFile: string;
}

export function runnerArgs(spec: RunnerSpec): string[] {
  return [
    RUNNER_BIN,
    '--api-url', spec.apiUrl,
    '--registration-token', spec.registrationToken,
    '--pool', spec.pool,
    '--slots', String(spec.slots),
    '--work-dir', spec.workDir,
    ...(spec.pipIndexUrl ? ['--pip-index-url', spec.pipIndexUrl] : []),
  ];
}

export async function spawnRunner(spec: RunnerSpec): Promise<RunnerProcess> {
  await mkdir(spec.workDir, { recursive: true });
  const logStream = createWriteStream(spec.logFile, { flags: 'a' });
  const child = spawn(process.execPath, runnerArgs(spec), {
    cwd: PACKAGE_ROOT,
    env: { ...process.env, ...spec.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // own process group: see the file comment
  });
  for (const stream of [child.stdout!, child.stderr!]) {
    stream.pipe(logStream, { end: false });
    if (spec.onLine) createInterface({ input: stream }).on('line', spec.onLine);
  }
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      resolve(code ?? signal ?? 'unknown');
    });
    child.once('error', (err) => resolve(err.message));
  });
  void exited.then(() => logStream.end());
  if (child.pid === undefined) {
    const reason = await exited;
    throw new Error(`could not start the runner: ${reason}`);
  }
  return { index: spec.index, pid: child.pid, child, exited, logFile: spec.logFile };
}

/** Signals the runner's whole process group (it is the group's leader: spawned detached). */
function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is gone
  }
}

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * SIGTERM (drain), SIGTERM again after `drainMs` (stop now), SIGKILL the group after `graceMs`.
 * Resolves when all are gone.
 */
export async function stopRunners(runners: RunnerProcess[], opts: { drainMs?: number; graceMs?: number } = {}): Promise<{ killed: number[] }> {
  const killed: number[] = [];
  await Promise.all(
    runners.map(async (r) => {
      const gone = (ms: number) => Promise.race([r.exited.then(() => true), delay(ms).then(() => false)]);
      if (r.child.exitCode === null && r.child.signalCode === null) {
        signalGroup(r.pid, 'SIGTERM');
        if (!(await gone(opts.drainMs ?? 1000))) {
          signalGroup(r.pid, 'SIGTERM');
          if (!(await gone(opts.graceMs ?? 5_000))) killed.push(r.index);
        }
      }
      // Whatever is left in its group (normally nothing) goes too.
      signalGroup(r.pid, 'SIGKILL');
      await r.exited;
    }),
  );
  return { killed };
}

export async function recordPids(dataDir: string, runners: RunnerProcess[]): Promise<void> {
  await writeFile(join(dataDir, PIDS_FILE), JSON.stringify(runners.map((r) => r.pid)) + '\n');
}

export async function clearPids(dataDir: string): Promise<void> {
  await rm(join(dataDir, PIDS_FILE), { force: true });
}

/** Whether `pid` is still a runner working in this data dir (pids get reused). */
function isOurRunner(pid: number, dataDir: string): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes('rgrid-runner') && cmdline.includes(join(dataDir, 'runners'));
  } catch {
    return false;
  }
}

/** Kills runners a previous `rgrid dev` on this data dir left behind; returns how many. */
export async function reapStaleRunners(dataDir: string): Promise<number> {
  const path = join(dataDir, PIDS_FILE);
  if (!existsSync(path)) return 0;
  let pids: number[] = [];
  try {
    pids = JSON.parse(await readFile(path, 'utf8')) as number[];
  } catch {
    // unreadable: nothing to reap
  }
  let reaped = 0;
  for (const pid of pids) {
    if (!Number.isInteger(pid) || !isOurRunner(pid, dataDir)) continue;
    signalGroup(pid, 'SIGTERM');
    signalGroup(pid, 'SIGTERM'); // the runner stops at once on its second signal
    for (let i = 0; i < 50 && isOurRunner(pid, dataDir); i++) await delay(100);
    signalGroup(pid, 'SIGKILL');
    reaped++;
  }
  await clearPids(dataDir);
  return reaped;
}
