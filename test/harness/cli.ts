/**
 * The CLI as a user runs it: `node bin/rgrid.mjs …` as a child process, with its own temp HOME,
 * config dir and working directory, so no test ever reads or writes the developer's config.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeConfigFile } from '../../cli/config.js';
import { RGRID_BIN } from '../../cli/paths.js';

export interface Workspace {
  root: string;
  home: string;
  configDir: string;
  /** The working directory commands run in. */
  cwd: string;
  env: NodeJS.ProcessEnv;
  cleanup(): Promise<void>;
}

/** A clean environment: the test runner's, minus anything that would point the CLI elsewhere. */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('RGRID_') || k === 'XDG_CONFIG_HOME' || k === 'FORCE_COLOR') delete env[k];
  return { ...env, NO_COLOR: '1', ...extra };
}

/** Temp HOME/config/cwd; with `api`, the config file points at that control plane. */
export async function workspace(api?: { apiUrl: string; apiKey: string }): Promise<Workspace> {
  const root = await realpath(await mkdtemp(join(tmpdir(), 'rgrid-e2e-')));
  const home = join(root, 'home');
  const configDir = join(root, 'config');
  const cwd = join(root, 'work');
  await mkdir(home);
  await mkdir(cwd);
  if (api) await writeConfigFile(configDir, { apiUrl: api.apiUrl, apiKey: api.apiKey });
  return {
    root,
    home,
    configDir,
    cwd,
    env: cleanEnv({ HOME: home, RGRID_CONFIG_DIR: configDir }),
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves once `pattern` appears in the stream (rejects after timeoutMs or on exit). */
  waitFor(pattern: RegExp, stream?: 'stdout' | 'stderr', timeoutMs?: number): Promise<RegExpMatchArray>;
  done: Promise<CliResult>;
}

export function spawnCli(args: string[], ws: Pick<Workspace, 'cwd' | 'env'>, extraEnv: NodeJS.ProcessEnv = {}): CliProcess {
  const child = spawn(process.execPath, [RGRID_BIN, ...args], { cwd: ws.cwd, env: { ...ws.env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const done = new Promise<CliResult>((resolve) => {
    child.once('close', (code, signal) => resolve({ code, signal, stdout: out, stderr: err }));
  });
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    done,
    waitFor(pattern, stream = 'stderr', timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const text = () => (stream === 'stdout' ? out : err);
        const timer = setTimeout(() => finish(new Error(`timed out after ${timeoutMs} ms waiting for ${pattern} on ${stream}; stdout:\n${out}\nstderr:\n${err}`)), timeoutMs);
        const check = () => {
          const m = text().match(pattern);
          if (m) finish(undefined, m);
        };
        const onExit = () => setTimeout(() => finish(new Error(`exited before ${pattern} appeared on ${stream}; stdout:\n${out}\nstderr:\n${err}`)), 50);
        function finish(e?: Error, m?: RegExpMatchArray) {
          clearTimeout(timer);
          child.stdout!.off('data', check);
          child.stderr!.off('data', check);
          child.off('close', onExit);
          if (m) resolve(m);
          else {
            const again = text().match(pattern);
            if (again) resolve(again);
            else reject(e);
          }
        }
        child.stdout!.on('data', check);
        child.stderr!.on('data', check);
        child.once('close', onExit);
        check();
      });
    },
  };
}

export async function runCli(args: string[], ws: Pick<Workspace, 'cwd' | 'env'>, extraEnv: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return spawnCli(args, ws, extraEnv).done;
}

/** A readable failure message for expect(): the command and what it printed. */
export function show(args: string[], r: CliResult): string {
  return `rgrid ${args.join(' ')} → exit ${r.code}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;
}
