/**
 * Caching: how close a cache hit gets to starting a container yourself, and what a numpy
 * environment costs on a miss vs a hit. Writes the "Caching" section of docs/benchmarks.md (at
 * full size).
 *
 * 1. Submit-to-script-start on a cache hit: `rgrid run ts.py` (script, inputs and environment all
 *    cached) vs a bare `docker run --rm --network none IMAGE python -c …` of the same image, where
 *    script-start is a timestamp the script prints first thing. With numpy requirements (the
 *    environment image) and without (the base image), the four interleaved, the order rotating.
 * 2. A numpy environment: miss (new requirements: an environment key never built), miss
 *    (--no-cache: rebuilt from scratch) and hit, interleaved; wall time of `rgrid run`.
 *
 *   npx tsx bench/caching.ts                                                 # 10 + 3 rounds
 *   BENCH_CACHE_ROUNDS=2 BENCH_CACHE_BUILDS=1 npx tsx bench/caching.ts        # quick check
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { envImageTag } from '../shared/hashing.js';
import { writeConfigFile } from '../cli/config.js';
import { RGRID_BIN } from '../cli/paths.js';
import { publish, runBench } from './lib/doc.js';
import { BASE_IMAGE, intEnv } from './lib/env.js';
import { LoadSampler, loadAverage, machineInfo } from './lib/machine.js';
import { run, runOk } from './lib/proc.js';
import { startBenchStack } from './lib/stack.js';
import { fmt, fmtMs, median, table } from './lib/stats.js';

const ROUNDS = intEnv('BENCH_CACHE_ROUNDS', 10);
const BUILDS = intEnv('BENCH_CACHE_BUILDS', 3);
const FULL = ROUNDS === 10 && BUILDS === 3;
const NUMPY = 'numpy==1.26.4';
const log = (m: string) => process.stderr.write(`[caching] ${m}\n`);

/** First thing the script does: print the time (the container and host share the clock). */
const STAMP = `import time; print(f"start {time.time():.6f}", flush=True)`;

function startOf(stdout: string): number {
  const m = /start (\d+\.\d+)/.exec(stdout);
  if (!m) throw new Error(`no start timestamp in:\n${stdout}`);
  return Number(m[1]) * 1000;
}

type Contender = 'rgrid-env' | 'docker-env' | 'rgrid-base' | 'docker-base';
const LABEL: Record<Contender, string> = {
  'rgrid-env': '`rgrid run` (numpy environment, cache hit)',
  'docker-env': '`docker run` of the same environment image',
  'rgrid-base': '`rgrid run` (no requirements: base image)',
  'docker-base': `\`docker run\` of ${BASE_IMAGE}`,
};

async function main(): Promise<string | undefined> {
  const t0 = performance.now();
  const machine = await machineInfo();
  const startedAt = new Date().toISOString();
  const loadStart = await loadAverage();
  const sampler = new LoadSampler();
  const work = await mkdtemp(join(tmpdir(), 'rgrid-bench-caching-'));
  const bench = await startBenchStack({ log });
  const builtImages = new Set<string>();
  let output = '';
  try {
    await bench.addRunner({ slots: 1 });
    const { stack } = bench;
    const configDir = join(work, 'config');
    await writeConfigFile(configDir, { apiUrl: stack.apiUrl, apiKey: stack.apiKey });
    const env: NodeJS.ProcessEnv = { ...process.env, RGRID_CONFIG_DIR: configDir, NO_COLOR: '1' };
    for (const k of ['RGRID_API_URL', 'RGRID_API_KEY', 'FORCE_COLOR']) delete env[k];
    const envDir = join(work, 'env');
    const baseDir = join(work, 'base');
    await mkdir(envDir);
    await mkdir(baseDir);
    await writeFile(join(envDir, 'ts.py'), `${STAMP}\nimport numpy\nprint("numpy", numpy.__version__)\n`);
    await writeFile(join(envDir, 'requirements.txt'), `${NUMPY}\n`);
    await writeFile(join(baseDir, 'ts.py'), `${STAMP}\n`);

    /** `rgrid run` in `dir`; resolves with the timings and the execution. */
    const rgrid = async (dir: string, args: string[]) => {
      const spawnAt = Date.now();
      const r = await runOk(process.execPath, [RGRID_BIN, 'run', ...args, '--remote-only'], { cwd: dir, env });
      const id = /(exec_[a-z2-7]{24})/.exec(r.stderr)?.[1];
      if (!id) throw new Error(`no execution id in:\n${r.stderr}`);
      const { execution } = await bench.api.get<{ execution: { envKey: string; submittedAt: string; cache: { envHit: boolean | null; buildSeconds: number | null } } }>(`/executions/${id}`);
      return { spawnAt, wallMs: r.ms, startAt: startOf(r.stdout), submittedAt: Date.parse(execution.submittedAt), execution, stderr: r.stderr };
    };

    // Warm up: build the numpy environment and store both scripts.
    log('warm-up: building the numpy environment');
    const warm = await rgrid(envDir, ['ts.py']);
    await rgrid(baseDir, ['ts.py']);
    const envImage = envImageTag(warm.execution.envKey);

    // 1. Latency to script start.
    const docker = async (image: string) => {
      const spawnAt = Date.now();
      const r = await runOk('docker', ['run', '--rm', '--network', 'none', image, 'python', '-c', STAMP]);
      return { spawnAt, wallMs: r.ms, startAt: startOf(r.stdout) };
    };
    const contenders: Contender[] = ['rgrid-env', 'docker-env', 'rgrid-base', 'docker-base'];
    const lat: { round: number; who: Contender; fromSpawn: number; fromSubmit?: number; cliMs?: number }[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const order = contenders.map((_, i) => contenders[(i + r) % contenders.length]!);
      for (const who of order) {
        if (who.startsWith('rgrid')) {
          const x = await rgrid(who === 'rgrid-env' ? envDir : baseDir, ['ts.py']);
          if (!/✓ Using cached script/.test(x.stderr)) throw new Error(`expected a cache hit:\n${x.stderr}`);
          lat.push({ round: r + 1, who, fromSpawn: x.startAt - x.spawnAt, fromSubmit: x.startAt - x.submittedAt, cliMs: x.submittedAt - x.spawnAt });
        } else {
          const x = await docker(who === 'docker-env' ? envImage : BASE_IMAGE);
          lat.push({ round: r + 1, who, fromSpawn: x.startAt - x.spawnAt });
        }
        log(`round ${r + 1} ${who}: ${fmtMs(lat.at(-1)!.fromSpawn)} to script start (load ${await loadAverage()})`);
      }
    }

    // 2. numpy environment: miss vs hit.
    const failures: string[] = [];
    const builds: { round: number; kind: 'new' | 'nocache' | 'hit'; wallMs: number; buildSeconds: number | null; envHit: boolean | null; toStart: number }[] = [];
    for (let r = 0; r < BUILDS; r++) {
      const kinds = (['new', 'nocache', 'hit'] as const).map((_, i, a) => a[(i + r) % a.length]!);
      for (const kind of kinds) {
        const dir = join(work, `build-${r}-${kind}`);
        await mkdir(dir);
        await writeFile(join(dir, 'ts.py'), `${STAMP}\nimport numpy\nprint("numpy", numpy.__version__)\n`);
        // A specifier no earlier run used: a new environment key, so a real build (pip's own
        // download cache on the runner stays warm, as it would on a runner that built before).
        const reqs = kind === 'new' ? `${NUMPY},!=0.0.${Date.now()}\n` : `${NUMPY}\n`;
        await writeFile(join(dir, 'requirements.txt'), reqs);
        const args = kind === 'nocache' ? ['ts.py', '--no-cache'] : ['ts.py'];
        // A failed run (the runner's build aborted, say) is reported and repeated once, so one
        // hiccup on a shared machine does not throw away the rounds before it.
        const x = await rgrid(dir, args).catch(async (err: Error) => {
          failures.push(`build round ${r + 1} ${kind}: ${err.message.split('\n').find((l) => /Failed:|Error:/.test(l)) ?? err.message.split('\n')[0]}`);
          log(`build round ${r + 1} ${kind} failed; repeating it once: ${failures.at(-1)}`);
          return rgrid(dir, args);
        });
        if (kind === 'new') builtImages.add(envImageTag(x.execution.envKey));
        builds.push({ round: r + 1, kind, wallMs: x.wallMs, buildSeconds: x.execution.cache.buildSeconds, envHit: x.execution.cache.envHit, toStart: x.startAt - x.spawnAt });
        log(`build round ${r + 1} ${kind}: ${fmtMs(x.wallMs)} (build ${x.execution.cache.buildSeconds ?? '–'} s, envHit ${x.execution.cache.envHit})`);
      }
    }

    const loadEnd = await loadAverage();
    const load = sampler.stop();
    const medLat = (who: Contender, f: (x: (typeof lat)[number]) => number | undefined) => median(lat.filter((x) => x.who === who).map((x) => f(x) ?? NaN));
    const medB = (kind: 'new' | 'nocache' | 'hit', f: (x: (typeof builds)[number]) => number) => median(builds.filter((x) => x.kind === kind).map(f));

    const L: string[] = [];
    L.push('## Caching', '');
    L.push(
      'How fast a fully cached run starts compared with starting the same container yourself, and what a numpy environment costs when it must be built. ' +
        'Local stack with one runner (1 slot) on this machine; job containers are hardened and have no network, like `--network none`. ' +
        `Script start is a timestamp the script prints first thing (\`${STAMP}\`); container and host share the clock.`,
      '',
    );
    if (!FULL) L.push(`> **Quick check, not the published size** (BENCH_CACHE_ROUNDS=${ROUNDS}, BENCH_CACHE_BUILDS=${BUILDS}).`, '');
    L.push(
      `Measured ${startedAt} (${fmt((performance.now() - t0) / 60_000, 1)} min) on ${machine.nproc} cores (${machine.cpuModel}); load average ${loadStart} at the start, ${loadEnd} at the end; ` +
        `1-minute load sampled every 5 s: min ${fmt(load.min, 2)}, mean ${fmt(load.mean, 2)}, max ${fmt(load.max, 2)}. The machine is shared: other people's tests and benches ran at the same time.`,
      '',
    );
    L.push('### Cache hit: to script start', '');
    const dockerFor: Record<string, Contender> = { 'rgrid-env': 'docker-env', 'rgrid-base': 'docker-base' };
    L.push(
      table(
        ['how', 'command start → script start', 'vs docker run', 'submitted → script start', 'CLI start → submitted'],
        contenders.map((who) => {
          const v = medLat(who, (x) => x.fromSpawn);
          const d = dockerFor[who];
          return [
            LABEL[who],
            fmtMs(v),
            d ? `${fmt(v / medLat(d, (x) => x.fromSpawn), 2)}× (${v - medLat(d, (x) => x.fromSpawn) >= 0 ? '+' : ''}${fmtMs(v - medLat(d, (x) => x.fromSpawn))})` : '1×',
            who.startsWith('rgrid') ? fmtMs(medLat(who, (x) => x.fromSubmit)) : '–',
            who.startsWith('rgrid') ? fmtMs(medLat(who, (x) => x.cliMs)) : '–',
          ];
        }),
      ),
      '',
    );
    L.push(
      `Medians of ${ROUNDS} rounds; each round runs the four in a rotated order. "command start" is when the benchmark spawned \`node bin/rgrid.mjs run ts.py --remote-only\` or \`docker run\`; ` +
        '"submitted" is the execution\'s `submittedAt` (the control plane\'s clock: the CLI hashed the files, created the execution and, everything being stored, it was queued at once). ' +
        'From there to script start: the runner\'s long-poll claim wakes, it downloads and verifies the script, checks the image, creates and starts the hardened container, and Python starts. ' +
        '"CLI start → submitted" is Node starting, loading the CLI (from its cached bundle, bin/_load.mjs), hashing the script and the create request.',
      '',
    );
    const overhead = Math.max(...(['rgrid-env', 'rgrid-base'] as const).map((w) => medLat(w, (x) => x.fromSpawn) - medLat(dockerFor[w]!, (x) => x.fromSpawn)));
    L.push(`Target: under 1 s of overhead end to end on a cache hit — **${overhead < 1000 ? 'met' : 'missed'}** (at most +${fmtMs(overhead)} over \`docker run\` of the same image, medians).`, '');
    L.push('Per round (command start → script start):', '');
    L.push(table(['round', ...contenders], Array.from({ length: ROUNDS }, (_, r) => [r + 1, ...contenders.map((w) => fmtMs(lat.find((x) => x.round === r + 1 && x.who === w)?.fromSpawn ?? NaN))])), '');
    L.push('### numpy environment: miss vs hit', '');
    L.push(
      table(
        ['run', '`rgrid run` wall time', 'environment build (runner)', 'command start → script start', 'vs hit'],
        (
          [
            ['new', 'miss: new requirements (an environment key never built)'],
            ['nocache', 'miss: `--no-cache` (rebuilt from scratch)'],
            ['hit', 'hit: the environment image is reused'],
          ] as const
        ).map(([k, label]) => [
          label,
          fmtMs(medB(k, (x) => x.wallMs)),
          k === 'hit' ? 'none (image reused)' : `${fmt(medB(k, (x) => x.buildSeconds ?? NaN))} s`,
          fmtMs(medB(k, (x) => x.toStart)),
          `${fmt(medB(k, (x) => x.wallMs) / medB('hit', (x) => x.wallMs), 2)}×`,
        ]),
      ),
      '',
    );
    L.push(
      `\`${NUMPY}\` from the package index on 127.0.0.1 (requirements.txt next to the script). Medians of ${BUILDS} rounds, the three kinds in a rotated order each round. ` +
        'A miss builds `python -m venv` + `pip install` with BuildKit; the runner keeps pip\'s download cache in a BuildKit cache mount, so a miss on a runner that has built before does not download numpy again (the wheel is 18 MB here, on loopback). ' +
        'The wall time includes the CLI\'s start, the upload-free create (everything is stored), the build, the container and the script.',
      '',
    );
    if (failures.length) L.push(`Runs that failed and were repeated once: ${failures.map((f) => `\`${f}\``).join('; ')}.`, '');
    L.push('### How to reproduce', '');
    L.push('```sh');
    L.push('npx tsx bench/caching.ts                                              # 10 latency rounds, 3 build rounds (writes this section)');
    L.push('BENCH_CACHE_ROUNDS=2 BENCH_CACHE_BUILDS=1 npx tsx bench/caching.ts    # quick check');
    L.push('```', '');
    L.push('Each latency round, in rotated order (IMAGE = `rgrid-env:<env key>` that the runner built for `numpy==1.26.4`):', '');
    L.push('```sh');
    L.push('node bin/rgrid.mjs run ts.py --remote-only          # in a folder with requirements.txt: numpy==1.26.4');
    L.push(`docker run --rm --network none IMAGE python -c '${STAMP}'`);
    L.push('node bin/rgrid.mjs run ts.py --remote-only          # in a folder without requirements');
    L.push(`docker run --rm --network none ${BASE_IMAGE} python -c '${STAMP}'`);
    L.push('```', '');
    L.push('Each build round: `rgrid run ts.py --remote-only` with requirements `numpy==1.26.4,!=0.0.<unique>` (miss, new key), with `--no-cache` (miss, rebuild), and plain (hit).', '');
    const md = L.join('\n');
    output = md;
    await publish({ bench: 'caching', section: 'Caching', md, raw: { settings: { ROUNDS, BUILDS }, machine, lat, builds, envImage }, full: FULL, log });
  } finally {
    sampler.stop();
    await bench.stop();
    // Images of requirements no one else will ask for.
    for (const image of builtImages) await run('docker', ['rmi', '-f', image]).catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  }
  return output;
}

runBench(main);
