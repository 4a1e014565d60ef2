/** Child processes for the benches: run to completion, timed, output captured (bounded). */
import { spawn } from 'node:child_process';

export interface RunResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  ms: number;
}

const KEEP = 64 * 1024;

export function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => {
      if (stdout.length < KEEP) stdout += b.toString('utf8');
    });
    child.stderr.on('data', (b: Buffer) => {
      if (stderr.length < KEEP) stderr += b.toString('utf8');
    });
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr, ms: performance.now() - t0 }));
  });
}

export async function runOk(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code ?? r.signal}: ${r.stderr.slice(-2000)}`);
  return r;
}

/** Shell-quotes one argument for the commands printed in reports. */
export function sq(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** Like run(), and calls `onLine` with each stdout/stderr line and the time it arrived. */
export function runLines(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv }, onLine: (line: string, at: number) => void): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out = { stdout: '', stderr: '' };
    for (const name of ['stdout', 'stderr'] as const) {
      let partial = '';
      child[name].on('data', (b: Buffer) => {
        const at = performance.now();
        const text = b.toString('utf8');
        if (out[name].length < KEEP) out[name] += text;
        partial += text;
        let nl;
        while ((nl = partial.search(/[\r\n]/)) >= 0) {
          const line = partial.slice(0, nl);
          partial = partial.slice(nl + 1);
          if (line.trim()) onLine(line, at);
        }
      });
    }
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout: out.stdout, stderr: out.stderr, ms: performance.now() - t0 }));
  });
}
