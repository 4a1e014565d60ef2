/**
 * Where the CPU went during a measured interval, from /proc and the Docker cgroup (no tracing,
 * no changes to the code under test). On a 2-core machine everything competes for the same
 * cores, so CPU-seconds per job by component is the profile that explains throughput.
 *
 * Groups: the control plane (workerd), the runner agents (node), this bench process (the local
 * S3 store and the client run here), the children this process waited for (GNU parallel, the
 * docker CLI, host Python), dockerd, containerd, the processes inside job containers (the
 * `docker` cpuacct cgroup, cgroup v1), and the rest of the machine (shims, runc, kernel, and
 * whatever else runs: other people's tests included).
 */
import { readFile, readdir } from 'node:fs/promises';

const TICK_MS = 10; // CLK_TCK = 100 on Linux
const DOCKER_CGROUP = ['/sys/fs/cgroup/cpuacct/docker/cpuacct.usage', '/sys/fs/cgroup/cpu,cpuacct/docker/cpuacct.usage'];

interface ProcStat {
  pid: number;
  comm: string;
  ppid: number;
  /** utime + stime, ms */
  self: number;
  /** cutime + cstime (waited-for children), ms */
  children: number;
}

async function procStat(pid: number): Promise<ProcStat | undefined> {
  const s = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (!s) return undefined;
  const close = s.lastIndexOf(')');
  const comm = s.slice(s.indexOf('(') + 1, close);
  const f = s.slice(close + 2).split(' ');
  // f[0] is field 3 (state); utime is field 14 → f[11].
  const n = (i: number) => Number(f[i]);
  return { pid, comm, ppid: n(1), self: (n(11) + n(12)) * TICK_MS, children: (n(13) + n(14)) * TICK_MS };
}

async function allProcs(): Promise<ProcStat[]> {
  const pids = (await readdir('/proc')).filter((d) => /^\d+$/.test(d)).map(Number);
  return (await Promise.all(pids.map(procStat))).filter((p): p is ProcStat => !!p);
}

async function machineBusyMs(): Promise<number> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!;
  const v = line.split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  const busy = v[0]! + v[1]! + v[2]! + v[5]! + v[6]! + v[7]!;
  return busy * TICK_MS;
}

async function dockerCgroupMs(): Promise<number> {
  for (const p of DOCKER_CGROUP) {
    const s = await readFile(p, 'utf8').catch(() => undefined);
    if (s) return Number(s.trim()) / 1e6;
  }
  return NaN;
}

export interface CpuSnapshot {
  machine: number;
  containers: number;
  byPid: Map<number, ProcStat>;
}

export async function cpuSnapshot(): Promise<CpuSnapshot> {
  const [machine, containers, procs] = await Promise.all([machineBusyMs(), dockerCgroupMs(), allProcs()]);
  return { machine, containers, byPid: new Map(procs.map((p) => [p.pid, p])) };
}

export interface CpuGroups {
  /** Which pids are the runner agents (their descendants count too). */
  runnerPids: number[];
}

export type CpuBreakdown = Record<'control plane (workerd)' | 'runner agent' | 'bench process (S3 store + client)' | 'child processes (rgrid CLI; parallel, docker CLI, host python)' | 'dockerd' | 'containerd' | 'inside containers' | 'rest of machine' | 'machine total', number>;

function descendants(byPid: Map<number, ProcStat>, roots: number[]): Set<number> {
  const out = new Set(roots);
  let grew = true;
  while (grew) {
    grew = false;
    for (const p of byPid.values()) if (!out.has(p.pid) && out.has(p.ppid)) (out.add(p.pid), (grew = true));
  }
  return out;
}

/** CPU milliseconds per group between two snapshots (processes alive in `b`). */
export function cpuDelta(a: CpuSnapshot, b: CpuSnapshot, groups: CpuGroups): CpuBreakdown {
  const used = (p: ProcStat, children = false) => {
    const before = a.byPid.get(p.pid);
    const same = before && before.comm === p.comm;
    return children ? p.children - (same ? before.children : 0) : p.self - (same ? before.self : 0);
  };
  const me = process.pid;
  const runners = descendants(b.byPid, groups.runnerPids);
  let workerd = 0;
  let runner = 0;
  let dockerd = 0;
  let containerd = 0;
  const mine = descendants(b.byPid, [me]);
  for (const p of b.byPid.values()) {
    if (runners.has(p.pid)) runner += used(p);
    else if (p.comm === 'workerd' && mine.has(p.pid)) workerd += used(p);
    else if (p.comm === 'dockerd') dockerd += used(p);
    else if (p.comm === 'containerd') containerd += used(p);
  }
  const self = b.byPid.get(me);
  const bench = self ? used(self) : 0;
  const kids = self ? used(self, true) : 0;
  const containers = b.containers - a.containers;
  const machine = b.machine - a.machine;
  const known = workerd + runner + bench + kids + dockerd + containerd + (Number.isFinite(containers) ? containers : 0);
  return {
    'control plane (workerd)': workerd,
    'runner agent': runner,
    'bench process (S3 store + client)': bench,
    'child processes (rgrid CLI; parallel, docker CLI, host python)': kids,
    dockerd,
    containerd,
    'inside containers': containers,
    'rest of machine': Math.max(0, machine - known),
    'machine total': machine,
  };
}

export function addBreakdown(into: Partial<CpuBreakdown>, d: CpuBreakdown): void {
  for (const [k, v] of Object.entries(d) as [keyof CpuBreakdown, number][]) into[k] = (into[k] ?? 0) + v;
}
