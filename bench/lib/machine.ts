/** What the numbers were measured on: recorded with every report. */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { cpus, release } from 'node:os';
import { promisify } from 'node:util';

const run = promisify(execFile);

async function out(cmd: string, args: string[]): Promise<string> {
  try {
    return (await run(cmd, args, { timeout: 10_000 })).stdout.trim();
  } catch (err) {
    return `unavailable (${(err as Error).message.split('\n')[0]})`;
  }
}

export interface MachineInfo {
  date: string;
  nproc: string;
  memory: string;
  cpuModel: string;
  docker: string;
  node: string;
  kernel: string;
  parallel: string;
  python: string;
}

export async function machineInfo(): Promise<MachineInfo> {
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? cpus()[0]?.model ?? 'unknown';
  const free = await out('free', ['-h']);
  const memLine = free.split('\n').find((l) => l.startsWith('Mem:'));
  const mem = memLine ? memLine.split(/\s+/).slice(1, 2).join(' ') : free;
  return {
    date: new Date().toISOString(),
    nproc: await out('nproc', []),
    memory: mem ? `${mem} total (free -h)` : 'unknown',
    cpuModel: model.trim(),
    docker: await out('docker', ['version', '--format', 'client {{.Client.Version}}, server {{.Server.Version}}']),
    node: process.version,
    kernel: release(),
    parallel: (await out('parallel', ['--version'])).split('\n')[0] ?? 'missing',
    python: await out('python3', ['--version']),
  };
}

export function machineTable(m: MachineInfo): string {
  return [
    '| | |',
    '|---|---|',
    `| CPU | ${m.cpuModel}, \`nproc\` = ${m.nproc} |`,
    `| memory | ${m.memory} |`,
    `| kernel | ${m.kernel} |`,
    `| Docker | ${m.docker} |`,
    `| Node | ${m.node} |`,
    `| GNU parallel | ${m.parallel} |`,
    `| host Python | ${m.python} |`,
  ].join('\n');
}

/** The 1, 5 and 15 minute load averages, as /proc/loadavg has them. */
export async function loadAverage(): Promise<string> {
  const s = await readFile('/proc/loadavg', 'utf8').catch(() => '');
  return s.split(' ').slice(0, 3).join(' ') || 'unknown';
}

/** Samples the 1-minute load average every few seconds while a bench runs. */
export class LoadSampler {
  private readonly samples: number[] = [];
  private readonly timer: NodeJS.Timeout;
  constructor(everyMs = 5000) {
    const take = () =>
      void readFile('/proc/loadavg', 'utf8')
        .then((s) => this.samples.push(Number(s.split(' ')[0])))
        .catch(() => undefined);
    take();
    this.timer = setInterval(take, everyMs);
    this.timer.unref();
  }
  stop(): { min: number; mean: number; max: number; n: number } {
    clearInterval(this.timer);
    const s = this.samples;
    return { min: Math.min(...s), mean: s.reduce((a, b) => a + b, 0) / (s.length || 1), max: Math.max(...s), n: s.length };
  }
}
