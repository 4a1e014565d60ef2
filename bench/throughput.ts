/**
 * Batch throughput: the same trivial Python items (read a small CSV, write a small JSON) through
 *
 *   A. RGrid: the local stack (control plane in workerd, S3 store, runner agents with the Docker
 *      executor, N slots in total), submitted as one batch per round, outputs downloaded;
 *   B. `parallel -jN docker run --rm --network none python:3.11-slim python summarize.py {}`;
 *   C. `parallel -jN python3 summarize.py {}` on the host;
 *
 * interleaved in rounds (A B C, B C A, C A B, …) on disjoint slices of the same files, because
 * the machine is shared and noisy. Then a profile of where RGrid's time goes: CPU by component
 * for every round, a container micro-benchmark (docker run vs the runner's hardened container),
 * and one RGrid round behind a counting proxy with Docker's event stream (per-job timeline and
 * control-plane calls per job).
 *
 *   npx tsx bench/throughput.ts                      # full size: 1,000 items, N = 4, 5 rounds
 *   BENCH_ITEMS=100 BENCH_ROUNDS=2 npx tsx bench/throughput.ts   # quick check
 *
 * Settings: BENCH_ITEMS (1000), BENCH_SLOTS (N, 4), BENCH_RUNNERS (1; slots are split among
 * them), BENCH_ROUNDS (5), BENCH_PROFILE_ITEMS (100; 0 skips the profile),
 * BENCH_CONTAINER_SAMPLES (10; 0 skips the container micro-benchmark), BENCH_CONTENDERS
 * (rgrid,docker,python), BENCH_PYTHON (host interpreter; default: the real binary behind
 * `python3`), BENCH_WRITE_DOCS (see lib/env.ts).
 */
import { link, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { DockerRuntime } from '../runner-agent/src/docker/runtime.js';
import { imageExists } from '../runner-agent/src/docker/runtime.js';
import { BASE_IMAGE, intEnv, strEnv } from './lib/env.js';
import { LoadSampler, loadAverage, machineInfo } from './lib/machine.js';
import { cpuDelta, cpuSnapshot, type CpuBreakdown } from './lib/cpu.js';
import { startBenchStack, type BenchStack } from './lib/stack.js';
import { writeCsvFiles, writeScript, SCRIPT_NAME } from './lib/fixtures.js';
import { collectBatch, hashFiles, submitBatch, type LocalFile } from './lib/batch.js';
import { run, runLines, runOk, sq } from './lib/proc.js';
import { RGRID_BIN } from '../cli/paths.js';
import { startCountingProxy, type ProxyRecord } from './lib/proxy.js';
import { recordContainerEvents, type ContainerTimeline } from './lib/docker-events.js';
import { fmt, fmtMs, median, summarize, table, sleep } from './lib/stats.js';
import { publish, runBench } from './lib/doc.js';

const ITEMS = intEnv('BENCH_ITEMS', 1000);
const SLOTS = intEnv('BENCH_SLOTS', 4);
const RUNNERS = intEnv('BENCH_RUNNERS', 1);
const ROUNDS = intEnv('BENCH_ROUNDS', 5);
const PROFILE_ITEMS = intEnv('BENCH_PROFILE_ITEMS', 100, 0);
const CONTAINER_SAMPLES = intEnv('BENCH_CONTAINER_SAMPLES', 10, 0);
const FULL = ITEMS === 1000 && SLOTS === 4 && ROUNDS === 5;
/**
 * How RGrid is driven: `cli` runs `rgrid run summarize.py --batch 'DIR/*.csv' --flat` (the user's
 * command); `api` submits through the batch API from this process (bench/lib/batch.ts). Default:
 * cli when this checkout's `rgrid run` has --batch.
 */
let VIA: 'cli' | 'api' = 'api';

type ContenderId = 'rgrid' | 'docker' | 'python' | 'rgrid-b';
/**
 * BENCH_RUNNER_B_BIN: the entry point of a modified runner (like bin/rgrid-runner.mjs); adds the
 * contender `rgrid-b`, RGrid with that runner, to measure a runner change against the stock one
 * in the same run. The two never run at once: the runners are swapped between rounds.
 */
const RUNNER_B_BIN = process.env.BENCH_RUNNER_B_BIN || undefined;
const CONTENDERS = strEnv('BENCH_CONTENDERS', `rgrid,docker,python${RUNNER_B_BIN ? ',rgrid-b' : ''}`).split(',').map((s) => s.trim()) as ContenderId[];
for (const c of CONTENDERS) if (!['rgrid', 'docker', 'python', 'rgrid-b'].includes(c)) throw new Error(`unknown contender ${c}`);
if (CONTENDERS.includes('rgrid-b') && !RUNNER_B_BIN) throw new Error('contender rgrid-b needs BENCH_RUNNER_B_BIN');
const LABEL: Record<ContenderId, string> = {
  rgrid: 'RGrid (`rgrid run --batch`, local stack)',
  docker: '`parallel` + `docker run`',
  python: '`parallel` + host `python3`',
  'rgrid-b': 'RGrid with the modified runner',
};
const isRgrid = (c: ContenderId) => c === 'rgrid' || c === 'rgrid-b';

const log = (line: string) => process.stderr.write(`[throughput] ${line}\n`);

interface RoundResult {
  contender: ContenderId;
  round: number;
  position: number;
  items: number;
  ms: number;
  cpu: CpuBreakdown;
  /** RGrid through the API. */
  phases?: { hashMs: number; createMs: number; uploadMs: number; submitMs: number; runMs: number; tailMs: number; submitToFinalMs: number };
  /** RGrid through the CLI: when its messages appeared, ms from its start. */
  cliPhases?: { createdMs: number; submittedMs: number; finishedMs: number; exitMs: number };
}

interface Ctx {
  work: string;
  inDir: string;
  scriptFile: LocalFile;
  python: string;
  bench: BenchStack;
  runnerPids: () => number[];
  /** Makes the stock runner(s) (`a`) or the modified ones (`b`) the only ones serving. */
  useRunners: (kind: 'a' | 'b') => Promise<void>;
}

async function resolvePython(): Promise<string> {
  if (process.env.BENCH_PYTHON) return process.env.BENCH_PYTHON;
  // `python3` may be a pyenv shim (a shell script that costs ~50 ms per start): measure Python.
  const r = await runOk('python3', ['-c', 'import sys; print(sys.executable)']);
  return r.stdout.trim();
}

async function preflight(): Promise<void> {
  const docker = new Docker();
  try {
    await docker.ping();
  } catch (err) {
    throw new Error(`Docker is not reachable (${(err as Error).message}); start it (bash .ci/docker-up.sh) first`);
  }
  if (!(await imageExists(docker, BASE_IMAGE))) throw new Error(`image ${BASE_IMAGE} is missing: bash .ci/base-images.sh`);
  const p = await run('parallel', ['--version']).catch(() => undefined);
  if (!p || p.code !== 0) throw new Error('GNU parallel is missing: bash bench/setup.sh (apt-get install -y parallel)');
}

async function countOutputs(dir: string): Promise<number> {
  return (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.summary.json')).length;
}

function parallelArgs(listFile: string, tail: string[], extra: string[] = []): string[] {
  return ['--will-cite', `-j${SLOTS}`, '--halt', 'now,fail=1', ...extra, ...tail, '::::', listFile];
}

function dockerTail(inDir: string, outDir: string, labels = false): string[] {
  return ['docker', 'run', '--rm', '--network', 'none', ...(labels ? ['--label', 'rgrid.bench.item={}'] : []), '-v', `${inDir}:/in:ro`, '-v', `${outDir}:/work`, '-w', '/work', BASE_IMAGE, 'python', `/in/${SCRIPT_NAME}`, '/in/{}'];
}

function pythonTail(python: string, inDir: string): string[] {
  return [python, join(inDir, SCRIPT_NAME), join(inDir, '{}')];
}

async function runContender(ctx: Ctx, contender: ContenderId, names: string[], tag: string): Promise<Omit<RoundResult, 'round' | 'position' | 'cpu'>> {
  const outDir = join(ctx.work, 'out', contender, tag);
  await mkdir(outDir, { recursive: true });
  if (isRgrid(contender)) await ctx.useRunners(contender === 'rgrid-b' ? 'b' : 'a');
  if (isRgrid(contender) && VIA === 'cli') return { ...(await runCli(ctx, names, tag, outDir)), contender };
  if (isRgrid(contender)) {
    const t0 = performance.now();
    const sub = await submitBatch(ctx.bench.api, { dir: ctx.inDir, names, script: ctx.scriptFile, name: `throughput ${tag}` });
    const t1 = performance.now();
    const col = await collectBatch(ctx.bench.api, sub.batchId, outDir);
    const ms = col.doneAt - t0;
    if (col.failures.length) throw new Error(`RGrid: ${col.failures.length} item(s) did not succeed, e.g. ${JSON.stringify(col.failures[0])}`);
    const got = await countOutputs(outDir);
    if (got !== names.length) throw new Error(`RGrid: ${got} outputs for ${names.length} items`);
    const t = sub.timings;
    return {
      contender,
      items: names.length,
      ms,
      phases: { hashMs: t.hashMs, createMs: t.createMs, uploadMs: t.uploadMs, submitMs: t.submitMs, runMs: col.allFinalAt - t1, tailMs: col.doneAt - col.allFinalAt, submitToFinalMs: col.allFinalAt - t1 },
    };
  }
  const list = join(ctx.work, `list-${contender}-${tag}.txt`);
  await writeFile(list, names.join('\n') + '\n');
  const tail = contender === 'docker' ? dockerTail(ctx.inDir, outDir) : pythonTail(ctx.python, ctx.inDir);
  const r = await run('parallel', parallelArgs(list, tail), { cwd: outDir });
  if (r.code !== 0) throw new Error(`${contender}: parallel exited ${r.code}: ${r.stderr.slice(-1500)}`);
  const got = await countOutputs(outDir);
  if (got !== names.length) throw new Error(`${contender}: ${got} outputs for ${names.length} items`);
  return { contender, items: names.length, ms: r.ms };
}

/** The round's files, hard-linked into a folder of their own, so that one glob matches exactly them. */
async function roundDir(ctx: Ctx, names: string[], tag: string): Promise<string> {
  const dir = join(ctx.work, 'rounds', tag);
  await mkdir(dir, { recursive: true });
  for (const n of names) await link(join(ctx.inDir, n), join(dir, n));
  return dir;
}

function cliArgs(scriptPath: string, dir: string, outDir: string): string[] {
  return [RGRID_BIN, 'run', scriptPath, '--batch', join(dir, '*.csv'), '--output-dir', outDir, '--flat'];
}

async function runCli(ctx: Ctx, names: string[], tag: string, outDir: string): Promise<Omit<RoundResult, 'round' | 'position' | 'cpu'>> {
  const dir = await roundDir(ctx, names, tag);
  const at: Partial<Record<'created' | 'submitted' | 'finished', number>> = {};
  const t0 = performance.now();
  const env = { ...process.env, RGRID_API_URL: ctx.bench.stack.apiUrl, RGRID_API_KEY: ctx.bench.stack.apiKey, RGRID_CONFIG_DIR: join(ctx.work, 'cli-config'), NO_COLOR: '1' };
  const r = await runLines(process.execPath, cliArgs(join(ctx.inDir, SCRIPT_NAME), dir, outDir), { cwd: ctx.work, env }, (line, t) => {
    if (line.startsWith('Created batch_')) at.created ??= t - t0;
    else if (line.startsWith('Submitted batch_')) at.submitted ??= t - t0;
    else if (/finished in/.test(line)) at.finished ??= t - t0;
  });
  if (r.code !== 0) throw new Error(`rgrid run --batch exited ${r.code}: ${r.stderr.slice(-2000)}`);
  const got = await countOutputs(outDir);
  if (got !== names.length) throw new Error(`RGrid: ${got} outputs for ${names.length} items; CLI said: ${r.stderr.slice(-1500)}`);
  return { contender: 'rgrid', items: names.length, ms: r.ms, cliPhases: { createdMs: at.created ?? NaN, submittedMs: at.submitted ?? NaN, finishedMs: at.finished ?? NaN, exitMs: r.ms } };
}

/** Rounds: contender order rotates each round (A B C, B C A, C A B, …). */
async function rounds(ctx: Ctx, names: string[]): Promise<RoundResult[]> {
  const per = Math.ceil(names.length / ROUNDS);
  const results: RoundResult[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const slice = names.slice(r * per, (r + 1) * per);
    if (!slice.length) break;
    const order = CONTENDERS.map((_, i) => CONTENDERS[(i + r) % CONTENDERS.length]!);
    for (const [position, contender] of order.entries()) {
      if (isRgrid(contender)) await ctx.useRunners(contender === 'rgrid-b' ? 'b' : 'a'); // not timed
      const load = await loadAverage();
      const a = await cpuSnapshot();
      const res = await runContender(ctx, contender, slice, `round-${r + 1}`);
      const b = await cpuSnapshot();
      const cpu = cpuDelta(a, b, { runnerPids: ctx.runnerPids() });
      results.push({ ...res, round: r + 1, position, cpu });
      log(`round ${r + 1}/${ROUNDS} ${contender}: ${slice.length} items in ${(res.ms / 1000).toFixed(1)} s = ${fmt((slice.length / res.ms) * 60_000, 0)} jobs/min (load ${load})`);
    }
  }
  return results;
}

// ---------------------------------------------------------------------------------------------
// Container micro-benchmark: one container at a time, interleaved.

interface ContainerSample {
  kind: 'docker run' | 'docker run + hardening flags' | 'runner DockerRuntime.runJob';
  ms: number;
}

const HARDENING = ['--user', '65534:65534', '--read-only', '--tmpfs', '/tmp:size=64m,mode=1777', '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges', '--pids-limit', '256', '--memory', '2g', '--memory-swap', '2g', '--cpus', '1', '--log-driver', 'none'];

async function containerBench(ctx: Ctx): Promise<ContainerSample[]> {
  const dir = join(ctx.work, 'containers');
  await mkdir(dir, { recursive: true });
  const noop = join(dir, 'noop.py');
  await writeFile(noop, 'pass\n');
  const runtime = new DockerRuntime({ runnerId: 'rnr_bench0000000000000000000000' });
  const samples: ContainerSample[] = [];
  const kinds: ContainerSample['kind'][] = ['docker run', 'docker run + hardening flags', 'runner DockerRuntime.runJob'];
  for (let i = 0; i < CONTAINER_SAMPLES; i++) {
    for (let k = 0; k < kinds.length; k++) {
      const order = kinds[(k + i) % kinds.length]!;
      const workDir = join(dir, `w-${i}-${k}`);
      await mkdir(workDir, { recursive: true });
      let ms: number;
      if (order === 'runner DockerRuntime.runJob') {
        const t0 = performance.now();
        const res = await runtime.runJob({
          image: BASE_IMAGE,
          cmd: ['python', '/opt/rgrid/noop.py'],
          workDir,
          scriptHostPath: noop,
          scriptContainerPath: '/opt/rgrid/noop.py',
          env: {},
          memoryBytes: 2048 * 1024 * 1024,
          nanoCpus: 1e9,
          pidsLimit: 256,
          timeoutMs: 60_000,
          labels: {},
          onStdout: () => undefined,
          onStderr: () => undefined,
        });
        ms = performance.now() - t0;
        if (res.exitCode !== 0) throw new Error(`runJob exited ${res.exitCode}`);
      } else {
        const flags = order === 'docker run' ? [] : HARDENING;
        const r = await runOk('docker', ['run', '--rm', '--network', 'none', ...flags, '-v', `${dir}:/in:ro`, '-v', `${workDir}:/work`, '-w', '/work', BASE_IMAGE, 'python', '/in/noop.py']);
        ms = r.ms;
      }
      samples.push({ kind: order, ms });
    }
  }
  return samples;
}

// ---------------------------------------------------------------------------------------------
// Profile: one RGrid round behind a counting proxy, with Docker's events; one `docker run` round
// with labels and a job log.

interface Profile {
  items: number;
  wallMs: number;
  /** First claim answered → last completion answered. */
  runnerWindowMs: number;
  slots: number;
  phases: { name: string; values: number[] }[];
  calls: { route: string; perJob: number; p50: number; p99: number; msPerJob: number; failed: number }[];
  s3PerJob: number;
  docker?: { items: number; wallMs: number; phases: { name: string; values: number[] }[] };
}

async function profile(ctx: Ctx, names: string[], profileDir: string): Promise<Profile> {
  await ctx.bench.stopRunners();
  const proxy = await startCountingProxy(ctx.bench.stack.apiUrl);
  const events = await recordContainerEvents('rgrid.execution');
  try {
    const per = Math.floor(SLOTS / RUNNERS);
    for (let i = 0; i < RUNNERS; i++) await ctx.bench.addRunner({ slots: per + (i < SLOTS % RUNNERS ? 1 : 0), apiUrl: proxy.url });
    await sleep(500);
    proxy.records.length = 0;
    const s3Before = ctx.bench.stack.s3.stats().requests;
    const outDir = join(ctx.work, 'out', 'profile-rgrid');
    await mkdir(outDir, { recursive: true });
    const t0 = performance.now();
    let submittedAt: number;
    let wallMs: number;
    let executionIds: string[];
    if (VIA === 'cli') {
      const res = await runCli({ ...ctx, inDir: profileDir }, names, 'profile', outDir);
      submittedAt = t0 + res.cliPhases!.submittedMs;
      wallMs = res.ms;
      executionIds = [...new Set(proxy.records.flatMap((r) => r.claimed ?? []))];
    } else {
      const sub = await submitBatch(ctx.bench.api, { dir: profileDir, names, script: ctx.scriptFile, name: 'throughput profile' });
      submittedAt = performance.now();
      const col = await collectBatch(ctx.bench.api, sub.batchId, outDir);
      wallMs = col.doneAt - t0;
      executionIds = sub.items.map((i) => i.executionId);
    }
    const s3Requests = ctx.bench.stack.s3.stats().requests - s3Before;
    await sleep(300);
    events.stop();

    const claimedAt = new Map<string, number>();
    const byExec = new Map<string, ProxyRecord[]>();
    for (const r of proxy.records) {
      for (const id of r.claimed ?? []) claimedAt.set(id, r.end);
      if (r.executionId) {
        let l = byExec.get(r.executionId);
        if (!l) byExec.set(r.executionId, (l = []));
        l.push(r);
      }
    }
    const phases: Record<string, number[]> = {};
    const add = (name: string, v: number | undefined) => {
      if (v === undefined || !Number.isFinite(v)) return;
      (phases[name] ??= []).push(v);
    };
    for (const id of executionIds) {
      const tl: ContainerTimeline | undefined = events.timelines.get(id);
      const calls = byExec.get(id) ?? [];
      const complete = calls.find((c) => c.route.endsWith('/complete'));
      const claimed = claimedAt.get(id);
      const at = tl?.at ?? {};
      add('claim answered → container created (downloads, image check, job dir)', at.create !== undefined && claimed !== undefined ? at.create - claimed : undefined);
      add('container created → started (attach, start)', at.start !== undefined && at.create !== undefined ? at.start - at.create : undefined);
      add('started → exited (Python runs the script)', at.die !== undefined && at.start !== undefined ? at.die - at.start : undefined);
      add('exited → removed (wait, inspect, remove)', at.destroy !== undefined && at.die !== undefined ? at.destroy - at.die : undefined);
      add('removed → completion sent (scan, presign, upload outputs and logs)', complete && at.destroy !== undefined ? complete.start - at.destroy : undefined);
      add('completion call', complete ? complete.end - complete.start : undefined);
      add('claim answered → completion answered (whole job in a slot)', complete && claimed !== undefined ? complete.end - claimed : undefined);
    }
    const routes = new Map<string, { ms: number[]; failed: number }>();
    for (const r of proxy.records) {
      let key = `${r.method} ${r.route}`;
      if (r.route.endsWith('/claim')) {
        // A claim parked before the submit, or an empty long-poll, measures waiting, not work.
        if (!r.claimed?.length) key += ' (empty: long-poll ran out)';
        else if (r.start < submittedAt) key += ' (parked before the submit)';
      }
      let l = routes.get(key);
      if (!l) routes.set(key, (l = { ms: [], failed: 0 }));
      l.ms.push(r.end - r.start);
      if (r.status >= 500 || r.status === 0) l.failed++;
    }
    const calls = [...routes.entries()]
      .map(([route, v]) => {
        const s = summarize(v.ms);
        return { route, perJob: v.ms.length / names.length, p50: s.p50, p99: s.p99, msPerJob: (s.mean * v.ms.length) / names.length, failed: v.failed };
      })
      .sort((a, b) => b.perJob - a.perJob);
    const firstClaim = Math.min(...[...claimedAt.values()]);
    const lastComplete = Math.max(...proxy.records.filter((r) => r.route.endsWith('/complete')).map((r) => r.end));
    const result: Profile = {
      items: names.length,
      wallMs,
      runnerWindowMs: lastComplete - firstClaim,
      slots: SLOTS,
      phases: Object.entries(phases).map(([name, values]) => ({ name, values })),
      calls,
      s3PerJob: s3Requests / names.length,
    };

    // The same items with `docker run`, labelled, for the container steps' cost there.
    if (CONTENDERS.includes('docker')) {
      const dEvents = await recordContainerEvents('rgrid.bench.item');
      const dOut = join(ctx.work, 'out', 'profile-docker');
      await mkdir(dOut, { recursive: true });
      const list = join(ctx.work, 'list-profile.txt');
      await writeFile(list, names.join('\n') + '\n');
      const joblog = join(ctx.work, 'profile-docker.joblog');
      const r = await run('parallel', parallelArgs(list, dockerTail(profileDir, dOut, true), ['--joblog', joblog]), { cwd: dOut });
      await sleep(300);
      dEvents.stop();
      if (r.code !== 0) throw new Error(`docker profile: parallel exited ${r.code}: ${r.stderr.slice(-1500)}`);
      const dPhases: Record<string, number[]> = {};
      const dAdd = (name: string, v: number | undefined) => v !== undefined && Number.isFinite(v) && (dPhases[name] ??= []).push(v);
      for (const tl of dEvents.timelines.values()) {
        dAdd('container created → started (attach, start)', tl.at.start !== undefined && tl.at.create !== undefined ? tl.at.start - tl.at.create : undefined);
        dAdd('started → exited (Python runs the script)', tl.at.die !== undefined && tl.at.start !== undefined ? tl.at.die - tl.at.start : undefined);
        dAdd('exited → removed (wait, inspect, remove)', tl.at.destroy !== undefined && tl.at.die !== undefined ? tl.at.destroy - tl.at.die : undefined);
      }
      const rows = (await readFile(joblog, 'utf8')).trim().split('\n').slice(1);
      for (const row of rows) {
        const runtime = Number(row.split('\t')[3]);
        if (Number.isFinite(runtime)) (dPhases['whole `docker run` command (one job in a slot)'] ??= []).push(runtime * 1000);
      }
      result.docker = { items: names.length, wallMs: r.ms, phases: Object.entries(dPhases).map(([name, values]) => ({ name, values })) };
    }
    return result;
  } finally {
    events.stop();
    await ctx.bench.stopRunners();
    await proxy.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Report.

const jpm = (items: number, ms: number) => (items / ms) * 60_000;

function report(opts: {
  machine: Awaited<ReturnType<typeof machineInfo>>;
  load: { start: string; end: string; sampled: { min: number; mean: number; max: number } };
  results: RoundResult[];
  containers: ContainerSample[];
  prof?: Profile;
  python: string;
  work: string;
  startedAt: string;
  durationMs: number;
}): string {
  const { results } = opts;
  const by = (c: ContenderId) => results.filter((r) => r.contender === c);
  const total = (c: ContenderId) => {
    const rs = by(c);
    const items = rs.reduce((a, r) => a + r.items, 0);
    const ms = rs.reduce((a, r) => a + r.ms, 0);
    return { items, ms, jpm: jpm(items, ms), perRound: rs.map((r) => jpm(r.items, r.ms)) };
  };
  const present = CONTENDERS.filter((c) => by(c).length);
  const T = Object.fromEntries(present.map((c) => [c, total(c)])) as Record<ContenderId, ReturnType<typeof total>>;
  // Ratio of each round's pair (same slice, same minutes of machine noise), then the median.
  const pairRatio = (a: ContenderId, b: ContenderId) => {
    const ra = by(a);
    const rb = by(b);
    const ratios = ra.map((x) => {
      const y = rb.find((z) => z.round === x.round);
      return y ? jpm(x.items, x.ms) / jpm(y.items, y.ms) : NaN;
    });
    return ratios.filter(Number.isFinite);
  };
  const lines: string[] = [];
  lines.push('## Batch throughput', '');
  lines.push(
    `${ITEMS.toLocaleString('en-US')} trivial Python items (read a ~0.5 KB CSV, write a ~150-byte JSON summary, print one line; standard library only, so no environment build) ` +
      `on ${SLOTS} slots in total, through RGrid's local stack and through GNU parallel with \`-j${SLOTS}\`, on the same files and the same \`${BASE_IMAGE}\` image. ` +
      `The contenders are interleaved in ${ROUNDS} rounds of ${Math.ceil(ITEMS / ROUNDS)} items (each round a different slice of the files, the same slice for every contender; the order rotates each round), ` +
      'so that the noise of this shared machine hits all of them alike.',
    '',
  );
  if (!FULL) lines.push(`> **Quick check, not the published size** (BENCH_ITEMS=${ITEMS}, BENCH_SLOTS=${SLOTS}, BENCH_ROUNDS=${ROUNDS}).`, '');
  lines.push(`Measured ${opts.startedAt} (${fmt(opts.durationMs / 60_000, 1)} min); load average (1/5/15 min) ${opts.load.start} at the start, ${opts.load.end} at the end; 1-minute load sampled every 5 s: min ${fmt(opts.load.sampled.min, 2)}, mean ${fmt(opts.load.sampled.mean, 2)}, max ${fmt(opts.load.sampled.max, 2)} on ${opts.machine.nproc} cores.`, '');

  const head = ['contender', 'items', 'seconds', 'jobs/min', 'jobs/min per round (min–max)'];
  const rows = present.map((c) => {
    const t = T[c];
    const pr = [...t.perRound].sort((a, b) => a - b);
    return [LABEL[c], t.items, fmt(t.ms / 1000, 1), fmt(t.jpm, 0), `${fmt(pr[0]!, 0)}–${fmt(pr[pr.length - 1]!, 0)}`];
  });
  lines.push(table(head, rows), '');

  const ratioRows: (string | number)[][] = [];
  const pairs: [ContenderId, ContenderId][] = [
    ['rgrid', 'docker'],
    ['rgrid', 'python'],
    ['docker', 'python'],
    ['rgrid-b', 'rgrid'],
    ['rgrid-b', 'docker'],
  ];
  for (const [a, b] of pairs) {
    if (!T[a] || !T[b]) continue;
    const rs = pairRatio(a, b).sort((x, y) => x - y);
    ratioRows.push([`${LABEL[a]} / ${LABEL[b]}`, `${fmt(T[a].jpm / T[b].jpm, 2)}×`, `${fmt(median(rs), 2)}×`, `${fmt(rs[0]!, 2)}–${fmt(rs[rs.length - 1]!, 2)}×`]);
  }
  lines.push(table(['ratio of jobs/min', 'overall', 'median of rounds', 'rounds (min–max)'], ratioRows), '');

  if (T['rgrid-b']) {
    lines.push(`"${LABEL['rgrid-b']}" is RGrid with the runner started from \`${RUNNER_B_BIN}\` instead of bin/rgrid-runner.mjs (an experiment, not the product); its rounds alternate with the stock runner's, never at the same time.`, '');
  }
  const targetRgrid = T.rgrid?.jpm;
  if (targetRgrid !== undefined) {
    const vsDocker = T.docker ? targetRgrid / T.docker.jpm : NaN;
    lines.push(
      `Targets: more than 100 jobs/min — **${targetRgrid > 100 ? 'met' : 'missed'}** (${fmt(targetRgrid, 0)}); RGrid at or above \`parallel\` + \`docker run\` — ` +
        (T.docker ? `**${vsDocker >= 1 ? 'met' : 'missed'}** (${fmt(vsDocker, 2)}×).` : 'not measured in this run.'),
      '',
    );
  }

  lines.push('Per round (jobs/min; the position is the contender\'s place in that round\'s order):', '');
  const roundNums = [...new Set(results.map((r) => r.round))];
  lines.push(
    table(
      ['round', ...present.map((c) => LABEL[c])],
      roundNums.map((n) => [n, ...present.map((c) => {
        const r = results.find((x) => x.round === n && x.contender === c);
        return r ? `${fmt(jpm(r.items, r.ms), 0)} (#${r.position + 1})` : '–';
      })]),
    ),
    '',
  );

  const rc = by('rgrid').filter((r) => r.cliPhases);
  if (rc.length) {
    const med = (f: (p: NonNullable<RoundResult['cliPhases']>) => number) => median(rc.map((r) => f(r.cliPhases!)));
    const per = Math.ceil(ITEMS / ROUNDS);
    lines.push(`Where an RGrid round's wall time goes, from the CLI's own messages (median of the ${rc.length} rounds of ${per} items):`, '');
    lines.push(
      table(
        ['phase', 'time'],
        [
          ['`rgrid` starts → "Created batch_…" (Node and CLI start-up, glob, hashing, create request)', fmtMs(med((p) => p.createdMs))],
          ['→ "Submitted batch_…" (uploads, submit)', fmtMs(med((p) => p.submittedMs - p.createdMs))],
          ['→ progress says "finished" (the runners work; outputs download meanwhile)', fmtMs(med((p) => p.finishedMs - p.submittedMs))],
          ['→ `rgrid` exits (last downloads, summary)', fmtMs(med((p) => p.exitMs - p.finishedMs))],
        ],
      ),
      '',
    );
  }
  const rg = by('rgrid').filter((r) => r.phases);
  if (rg.length) {
    const med = (f: (p: NonNullable<RoundResult['phases']>) => number) => median(rg.map((r) => f(r.phases!)));
    const per = Math.ceil(ITEMS / ROUNDS);
    lines.push(`Where an RGrid round's wall time goes (median of the ${rg.length} rounds of ${per} items):`, '');
    lines.push(
      table(
        ['phase', 'time'],
        [
          ['hash the files (CLI code, 4 at a time)', fmtMs(med((p) => p.hashMs))],
          ['create the batch (one request per 1,000 items)', fmtMs(med((p) => p.createMs))],
          ['upload the inputs (CLI code, 4 at a time)', fmtMs(med((p) => p.uploadMs))],
          ['submit', fmtMs(med((p) => p.submitMs))],
          ['submitted → last item final (the runners work)', fmtMs(med((p) => p.runMs))],
          ['last item final → last output downloaded', fmtMs(med((p) => p.tailMs))],
        ],
      ),
      '',
    );
  }

  // CPU per job.
  const groups = Object.keys(results[0]?.cpu ?? {}) as (keyof CpuBreakdown)[];
  if (groups.length) {
    lines.push('CPU time per job by component (ms of CPU per item, summed over the rounds; "rest of machine" includes container shims, runc, the kernel and everything else running on the machine, other people\'s tests included):', '');
    lines.push(
      table(
        ['component', ...present.map((c) => LABEL[c])],
        groups.map((g) => [g, ...present.map((c) => {
          const rs = by(c);
          const items = rs.reduce((a, r) => a + r.items, 0);
          return fmt(rs.reduce((a, r) => a + r.cpu[g], 0) / items, 0);
        })]),
      ),
      '',
    );
    const cores = Number(opts.machine.nproc) || 2;
    const per = (c: ContenderId, keys: (keyof CpuBreakdown)[]) => {
      const rs = by(c);
      const items = rs.reduce((a, r) => a + r.items, 0);
      return rs.reduce((a, r) => a + keys.reduce((b, k) => b + r.cpu[k], 0), 0) / items;
    };
    const own: (keyof CpuBreakdown)[] = ['control plane (workerd)', 'runner agent', 'bench process (S3 store + client)', 'child processes (rgrid CLI; parallel, docker CLI, host python)'];
    const containerPath: (keyof CpuBreakdown)[] = ['dockerd', 'containerd', 'inside containers'];
    const parts = present.filter((c) => c !== 'python').map((c) => `${LABEL[c]}: ${fmt(per(c, own), 0)} ms of its own processes and ${fmt(per(c, containerPath), 0)} ms of container path (dockerd, containerd, inside the containers) per job`);
    lines.push(
      `When every core is busy (load above ${cores}), "machine total" per job is just ${cores} cores × wall time / jobs, whoever used the CPU, so compare the named rows. ` +
        `${parts.join('; ')}. Container shims and runc are in "rest of machine", mixed with everyone else's work.`,
      '',
    );
  }

  if (opts.containers.length) {
    lines.push(`Container cost alone, one container at a time (${CONTAINER_SAMPLES} samples each, interleaved; \`python /in/noop.py\` with the same bind mounts):`, '');
    const kinds = [...new Set(opts.containers.map((c) => c.kind))];
    lines.push(
      table(
        ['how', 'p50', 'p90', 'mean'],
        kinds.map((k) => {
          const s = summarize(opts.containers.filter((c) => c.kind === k).map((c) => c.ms));
          return [k, fmtMs(s.p50), fmtMs(s.p90), fmtMs(s.mean)];
        }),
      ),
      '',
      'The hardening flags are those of the runner\'s container (user nobody, read-only root, tmpfs /tmp, no capabilities, no-new-privileges, pids/memory/CPU limits, no log driver); `DockerRuntime.runJob` is the runner\'s own code (create, attach, start, wait, inspect, remove through the Docker API, after chowning the job directory).',
      '',
    );
  }

  if (opts.prof) {
    const p = opts.prof;
    lines.push(`### Profile: one RGrid job, step by step`, '');
    lines.push(
      `One more RGrid round of ${p.items} fresh items, with the runner talking to the control plane through a counting proxy on loopback (one more hop per call) and the container steps timed by Docker's event stream: ` +
        `${fmt(jpm(p.items, p.wallMs), 0)} jobs/min in this round. Per job (ms):`,
      '',
    );
    const phaseRows = p.phases.map((ph) => {
      const s = summarize(ph.values);
      return [ph.name, fmt(s.p50, 0), fmt(s.p90, 0), fmt(s.mean, 0)];
    });
    phaseRows.push(['slot time per job (slots × runner busy window / jobs)', '', '', fmt((p.slots * p.runnerWindowMs) / p.items, 0)]);
    lines.push(table(['step', 'p50', 'p90', 'mean'], phaseRows), '');
    if (p.docker) {
      lines.push(`The same ${p.docker.items} items with \`parallel -j${SLOTS} docker run …\` (labelled, with \`--joblog\`): ${fmt(jpm(p.docker.items, p.docker.wallMs), 0)} jobs/min. Per job (ms):`, '');
      const dRows = p.docker.phases.map((ph) => {
        const s = summarize(ph.values);
        return [ph.name, fmt(s.p50, 0), fmt(s.p90, 0), fmt(s.mean, 0)];
      });
      dRows.push(['slot time per job (slots × wall time / jobs)', '', '', fmt((SLOTS * p.docker.wallMs) / p.docker.items, 0)]);
      lines.push(table(['step', 'p50', 'p90', 'mean'], dRows), '');
    }
    lines.push('Runner ↔ control plane calls per job (latency seen by the proxy):', '');
    lines.push(table(['call', 'per job', 'p50', 'p99', 'ms per job', 'failed (5xx, closed)'], p.calls.map((c) => [`\`${c.route}\``, fmt(c.perJob, 2), fmtMs(c.p50), fmtMs(c.p99), fmt(c.msPerJob, 1), c.failed])), '');
    lines.push(`Object store requests per job, all clients together (the bench's uploads and downloads, the runner's transfers, the control plane's existence checks): ${fmt(p.s3PerJob, 1)}.`, '');
  }

  lines.push('### How to reproduce', '');
  lines.push('```sh');
  lines.push('bash bench/setup.sh                 # GNU parallel, checks Docker, the base image and the pip index');
  lines.push(`npx tsx bench/throughput.ts         # BENCH_ITEMS=${ITEMS} BENCH_SLOTS=${SLOTS} BENCH_ROUNDS=${ROUNDS} BENCH_PROFILE_ITEMS=${PROFILE_ITEMS}`);
  lines.push('BENCH_ITEMS=100 BENCH_ROUNDS=2 npx tsx bench/throughput.ts   # quick check');
  lines.push('```', '');
  lines.push('What each contender runs for one round (`IN` holds the CSV files and `summarize.py`, `OUT` is empty, `round.txt` lists the round\'s file names):', '');
  lines.push('```sh');
  lines.push(`# RGrid: ${RUNNERS} runner process${RUNNERS > 1 ? 'es' : ''} (bin/rgrid-runner.mjs, ${SLOTS} slots in total) on the local stack of cli/dev/stack.ts, then`);
  if (VIA === 'cli') {
    lines.push('# (ROUND holds hard links to the round\'s files; RGRID_API_URL/RGRID_API_KEY point at the stack)');
    lines.push(`node bin/rgrid.mjs run IN/${SCRIPT_NAME} --batch 'ROUND/*.csv' --output-dir OUT --flat`);
  } else {
    lines.push('# the batch API from the bench process with the CLI\'s transfer code (bench/lib/batch.ts): hash,');
    lines.push('# POST /api/v1/batches (template: python3.11 + summarize.py; one item per file: args [FILE],');
    lines.push('# input FILE), PUT the inputs, POST …/submit, poll GET …/items, download each output when final.');
  }
  lines.push(`cd OUT && parallel ${parallelArgs('round.txt', dockerTail('IN', 'OUT')).map(sq).join(' ')}`);
  lines.push(`cd OUT && parallel ${parallelArgs('round.txt', pythonTail(opts.python, 'IN')).map(sq).join(' ')}`);
  lines.push('```', '');
  lines.push(
    `Each contender's time runs from its first step to the last output file on local disk. For RGrid that ${VIA === 'cli' ? 'is the whole `rgrid run --batch` command: start-up, hashing, the create request, the uploads, the submit, following the batch (WebSocket) and downloading every output as items finish' : 'includes hashing, the create request, the uploads, the submit and downloading every output (outputs are downloaded as items finish, 8 at a time)'}; the jobs run in the runner's hardened container (user nobody, read-only root, no network, limits). ` +
      `The host interpreter is \`${opts.python}\` (the binary behind \`python3\`, not the pyenv shim). Every item's output is checked to exist.`,
    '',
  );
  return lines.join('\n');
}

async function main(): Promise<string | undefined> {
  // Printed after the stack is stopped: workerd's own log lines go to this process's stdout.
  let output: string | undefined;
  const startedAt = new Date().toISOString();
  const t0 = performance.now();
  await preflight();
  const machine = await machineInfo();
  const python = await resolvePython();
  const forced = process.env.BENCH_RGRID_VIA;
  if (forced === 'cli' || forced === 'api') VIA = forced;
  else if (forced) throw new Error('BENCH_RGRID_VIA must be cli or api');
  else VIA = (await run(process.execPath, [RGRID_BIN, 'run', '--help'])).stdout.includes('--batch') ? 'cli' : 'api';
  if (VIA === 'api') LABEL.rgrid = 'RGrid (batch API, local stack)';
  log(`RGrid is driven through ${VIA === 'cli' ? 'the CLI (rgrid run --batch)' : 'the batch API'}`);
  const loadStart = await loadAverage();
  const sampler = new LoadSampler();
  const work = await mkdtemp(join(tmpdir(), 'rgrid-bench-throughput-'));
  const inDir = join(work, 'in');
  const warmDir = join(work, 'warm');
  const profileDir = join(work, 'profile');
  log(`work dir ${work}; ${ITEMS} items, ${SLOTS} slots, ${ROUNDS} rounds, contenders ${CONTENDERS.join(',')}`);

  const names = await writeCsvFiles(inDir, ITEMS);
  const scriptPath = await writeScript(inDir);
  const warmNames = await writeCsvFiles(warmDir, SLOTS * 2, '-warm');
  await writeScript(warmDir);
  const profileNames = PROFILE_ITEMS ? await writeCsvFiles(profileDir, PROFILE_ITEMS, '-profile') : [];
  if (PROFILE_ITEMS) await writeScript(profileDir);
  const [scriptFile] = await hashFiles(inDir, [SCRIPT_NAME]);
  void scriptPath;

  const bench = await startBenchStack({ log });
  try {
    const per = Math.floor(SLOTS / RUNNERS);
    let serving: 'a' | 'b' | undefined;
    const useRunners = async (kind: 'a' | 'b') => {
      if (serving === kind) return;
      await bench.stopRunners();
      for (let i = 0; i < RUNNERS; i++) await bench.addRunner({ slots: per + (i < SLOTS % RUNNERS ? 1 : 0), ...(kind === 'b' ? { bin: RUNNER_B_BIN! } : {}) });
      serving = kind;
    };
    await useRunners('a');
    const ctx: Ctx = { work, inDir, scriptFile: scriptFile!, python, bench, runnerPids: () => bench.runners.map((r) => r.pid), useRunners };

    log('warm-up (not measured)');
    for (const c of CONTENDERS) await runContender({ ...ctx, inDir: warmDir }, c, warmNames, 'warm');

    const results = await rounds(ctx, names);
    let containers: ContainerSample[] = [];
    if (CONTAINER_SAMPLES) {
      log('container micro-benchmark');
      containers = await containerBench(ctx);
    }
    let prof: Profile | undefined;
    if (PROFILE_ITEMS && CONTENDERS.includes('rgrid')) {
      log(`profile round (${PROFILE_ITEMS} items)`);
      prof = await profile(ctx, profileNames, profileDir);
    }
    const sampled = sampler.stop();
    const md = report({ machine, load: { start: loadStart, end: await loadAverage(), sampled }, results, containers, prof, python, work, startedAt, durationMs: performance.now() - t0 });
    output = md;
    await publish({ bench: 'throughput', section: 'Batch throughput', md, raw: { settings: { ITEMS, SLOTS, RUNNERS, ROUNDS, PROFILE_ITEMS, CONTENDERS }, machine, results, containers, prof }, full: FULL, log });
  } finally {
    sampler.stop();
    await bench.stop();
    if (process.env.BENCH_KEEP_DIR !== '1') await rm(work, { recursive: true, force: true });
  }
  return output;
}

runBench(main);
