/**
 * Files at scale: 1 GB through the CLI's transfer code and through the whole system, and what it
 * costs in memory. Writes the "Files" section of docs/benchmarks.md (at full size).
 *
 * 1. Raw transfer speed on the same presigned URL of the local stack's S3 store: the CLI's code
 *    (cli/transfer/upload.ts one PUT streamed and re-hashed; cli/transfer/download.ts to a temp
 *    file, sha256-verified, then linked into place) in a child process vs `curl -T` / `curl -o`,
 *    interleaved in each round with the order alternating. Peak RSS of both from /usr/bin/time -v.
 * 2. The whole path: `rgrid run copy.py big.bin` where the script reads the 1 GB input and writes
 *    a 1 GB copy: the CLI uploads in parts, the runner downloads and verifies, the runner uploads
 *    the output in parts, the CLI downloads and verifies it. Peak RSS of the CLI process
 *    (/usr/bin/time -v) and of the runner process (VmHWM/VmRSS from /proc, sampled).
 * 3. A 1 GB CSV: compressed to a temp file by the CLI, stored gzip, decompressed by the runner.
 *
 *   npx tsx bench/files.ts                                   # 1024 MiB, 3 rounds
 *   BENCH_FILE_MB=100 BENCH_FILE_ROUNDS=1 npx tsx bench/files.ts   # quick check (docs untouched)
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { blobKey, ObjectStore } from '../control-plane/src/storage/s3.js';
import { writeConfigFile } from '../cli/config.js';
import { loadState } from '../cli/dev/state.js';
import { RGRID_BIN } from '../cli/paths.js';
import { sha256File } from '../cli/transfer/hash.js';
import { publish, runBench } from './lib/doc.js';
import { intEnv } from './lib/env.js';
import { LoadSampler, loadAverage, machineInfo } from './lib/machine.js';
import { run, type RunResult } from './lib/proc.js';
import { startBenchStack } from './lib/stack.js';
import { fmt, fmtMs, median, table } from './lib/stats.js';
import { randomFile } from '../test/harness/files.js';

const MiB = 1024 * 1024;
const SIZE_MB = intEnv('BENCH_FILE_MB', 1024);
const ROUNDS = intEnv('BENCH_FILE_ROUNDS', 3);
const GZIP = process.env.BENCH_FILE_GZIP !== '0';
const FULL = SIZE_MB === 1024 && ROUNDS === 3 && GZIP;
const TIME = '/usr/bin/time';
const CHILD = new URL('./_files-child.ts', import.meta.url).pathname;
const log = (m: string) => process.stderr.write(`[files] ${m}\n`);

/** Runs a command under `/usr/bin/time -v`; returns its result and its peak RSS in MiB. */
async function timed(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv }, work: string): Promise<RunResult & { rssMb: number }> {
  const out = join(work, `time-${process.hrtime.bigint()}.txt`);
  const r = await run(TIME, ['-v', '-o', out, cmd, ...args], opts);
  const report = await readFile(out, 'utf8').catch(() => '');
  await rm(out, { force: true });
  const kb = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(report)?.[1] ?? NaN);
  if (r.code !== 0) throw new Error(`${cmd} ${args.slice(0, 4).join(' ')} … exited ${r.code}: ${r.stderr.slice(-3000)}`);
  return { ...r, rssMb: kb / 1024 };
}

/** Samples a process's VmRSS (and reads VmHWM, its peak since start) from /proc. */
class RssSampler {
  peakRss = 0;
  private readonly timer: NodeJS.Timeout;
  constructor(private readonly pid: number) {
    this.timer = setInterval(() => void this.sample(), 100);
  }
  static async read(pid: number): Promise<{ rss: number; hwm: number }> {
    const s = await readFile(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
    return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
  }
  private async sample() {
    const r = await RssSampler.read(this.pid).catch(() => undefined);
    if (r) this.peakRss = Math.max(this.peakRss, r.rss);
  }
  async stop(): Promise<{ peakRss: number; hwm: number }> {
    clearInterval(this.timer);
    await this.sample();
    return { peakRss: this.peakRss, hwm: (await RssSampler.read(this.pid)).hwm };
  }
}

/** A CSV of `mib` MiB: realistic rows (ids, names, numbers), compresses about as real data does. */
async function csvFile(path: string, mib: number): Promise<void> {
  const f = await open(path, 'w');
  let written = 0;
  let id = 0;
  await f.write('id,city,amount,ratio,flag\n');
  while (written < mib * MiB) {
    let chunk = '';
    while (chunk.length < MiB) {
      id++;
      chunk += `${id},city-${(id * 7919) % 997},${((id * 2654435761) % 1_000_000) / 100},${(((id * 40503) % 10_000) / 10_000).toFixed(4)},${id % 3 === 0}\n`;
    }
    await f.write(chunk);
    written += chunk.length;
  }
  await f.close();
}

function mbps(bytes: number, ms: number): number {
  return bytes / MiB / (ms / 1000);
}

/** "Uploaded 1.0 GB in 21s (48.6 MB/s)" → the MB/s figure. */
function summaryRate(stderr: string, verb: string): number {
  return Number(new RegExp(`${verb} [\\d.]+ \\w+ in [^(]+\\(([\\d.]+) MB/s\\)`).exec(stderr)?.[1] ?? NaN);
}

async function main(): Promise<string | undefined> {
  const t0 = performance.now();
  const machine = await machineInfo();
  const startedAt = new Date().toISOString();
  const loadStart = await loadAverage();
  const sampler = new LoadSampler();
  const work = await mkdtemp(join(tmpdir(), 'rgrid-bench-files-'));
  log(`${SIZE_MB} MiB, ${ROUNDS} rounds; work dir ${work}`);
  const bench = await startBenchStack({ log });
  let output = '';
  try {
    const runner = await bench.addRunner({ slots: 1 });
    const { stack } = bench;
    const { s3 } = await loadState(stack.dataDir);
    const store = new ObjectStore({ endpoint: stack.s3.endpoint, bucket: stack.s3.bucket, region: 'us-east-1', ...s3 });
    const configDir = join(work, 'config');
    await writeConfigFile(configDir, { apiUrl: stack.apiUrl, apiKey: stack.apiKey });
    const env: NodeJS.ProcessEnv = { ...process.env, RGRID_CONFIG_DIR: configDir, NO_COLOR: '1' };
    for (const k of ['RGRID_API_URL', 'RGRID_API_KEY', 'FORCE_COLOR']) delete env[k];
    const bytes = SIZE_MB * MiB;

    log(`writing ${SIZE_MB} MiB of random bytes`);
    const big = join(work, 'big.bin');
    const bigSha = await randomFile(big, SIZE_MB);

    // 1. The same presigned URLs, the CLI's code vs curl.
    type Raw = { round: number; who: 'cli' | 'curl'; op: 'PUT' | 'GET'; ms: number; rssMb: number };
    const raw: Raw[] = [];
    for (let r = 1; r <= ROUNDS; r++) {
      const key = `bench/raw-${r}`;
      const put = await store.presign('PUT', key, { expiresSeconds: 3600 });
      const order: ('cli' | 'curl')[] = r % 2 ? ['cli', 'curl'] : ['curl', 'cli'];
      for (const who of order) {
        if (who === 'cli') {
          const c = await timed(process.execPath, ['--import', 'tsx', CHILD, 'put', put.url, big, bigSha, String(bytes)], { env }, work);
          raw.push({ round: r, who, op: 'PUT', ms: JSON.parse(c.stdout).ms, rssMb: c.rssMb });
        } else {
          const c = await timed('curl', ['-sS', '-f', '-T', big, '-o', '/dev/null', '-w', '%{time_total}', put.url], {}, work);
          raw.push({ round: r, who, op: 'PUT', ms: Number(c.stdout) * 1000, rssMb: c.rssMb });
        }
        log(`round ${r}: ${who} PUT ${fmt(mbps(bytes, raw.at(-1)!.ms))} MB/s, ${fmt(raw.at(-1)!.rssMb, 0)} MB RSS (load ${await loadAverage()})`);
      }
      const get = await store.presign('GET', key, { expiresSeconds: 3600 });
      for (const who of [...order].reverse()) {
        const dir = join(work, `get-${who}-${r}`);
        await mkdir(dir);
        if (who === 'cli') {
          const c = await timed(process.execPath, ['--import', 'tsx', CHILD, 'get', get.url, dir, bigSha, String(bytes)], { env }, work);
          raw.push({ round: r, who, op: 'GET', ms: JSON.parse(c.stdout).ms, rssMb: c.rssMb });
        } else {
          const c = await timed('curl', ['-sS', '-f', '-o', join(dir, 'big.bin'), '-w', '%{time_total}', get.url], {}, work);
          raw.push({ round: r, who, op: 'GET', ms: Number(c.stdout) * 1000, rssMb: c.rssMb });
        }
        if ((await sha256File(join(dir, 'big.bin'))).sha256 !== bigSha) throw new Error(`${who} GET: content differs`);
        await rm(dir, { recursive: true, force: true });
        log(`round ${r}: ${who} GET ${fmt(mbps(bytes, raw.at(-1)!.ms))} MB/s, ${fmt(raw.at(-1)!.rssMb, 0)} MB RSS`);
      }
      await store.delete(key);
    }

    // 2. The whole path through `rgrid run`.
    await writeFile(
      join(work, 'copy.py'),
      `import hashlib, sys
h = hashlib.sha256()
with open(sys.argv[1], 'rb') as src, open('copy.bin', 'wb') as dst:
    for chunk in iter(lambda: src.read(1 << 20), b''):
        h.update(chunk)
        dst.write(chunk)
print('input sha256', h.hexdigest())
`,
    );
    const idle = await RssSampler.read(runner.pid);
    const rs = new RssSampler(runner.pid);
    const cliArgs = [RGRID_BIN, 'run', 'copy.py', 'big.bin', '--output-dir', 'out', '--memory', '512m'];
    log(`rgrid run copy.py big.bin (${SIZE_MB} MiB in, ${SIZE_MB} MiB out)`);
    const tRun = performance.now();
    const full = await timed(process.execPath, cliArgs, { cwd: work, env }, work);
    const runMs = performance.now() - tRun;
    const runnerMem = await rs.stop();
    if (!full.stdout.includes(`input sha256 ${bigSha}`)) throw new Error(`the script saw other content:\n${full.stdout}\n${full.stderr}`);
    if ((await sha256File(join(work, 'out', 'copy.bin'))).sha256 !== bigSha) throw new Error('the downloaded output differs');
    await rm(join(work, 'out'), { recursive: true, force: true });
    const execution = /(exec_[a-z2-7]{24})/.exec(full.stderr)?.[1];
    const fullRow = { upload: summaryRate(full.stderr, 'Uploaded'), download: summaryRate(full.stderr, 'Downloaded'), cliRss: full.rssMb, runnerPeak: runnerMem.peakRss, runnerHwm: runnerMem.hwm, idle, ms: runMs, execution };
    log(`full path: ${fmtMs(runMs)}, CLI ${fmt(full.rssMb, 0)} MB, runner peak ${fmt(runnerMem.peakRss, 0)} MB (HWM ${fmt(runnerMem.hwm, 0)} MB)`);

    // 3. A CSV of the same size: gzip to a temp file, stored compressed, decompressed by the runner.
    let gz: undefined | { compress: string; upload: number; stored: number; cliRss: number; runnerPeak: number; ms: number };
    if (GZIP) {
      log(`writing a ${SIZE_MB} MiB CSV`);
      const csv = join(work, 'big.csv');
      await csvFile(csv, SIZE_MB);
      const csvInfo = await sha256File(csv);
      await writeFile(join(work, 'lines.py'), "import sys\nn = 0\nwith open(sys.argv[1], 'rb') as f:\n    for _ in f:\n        n += 1\nprint('lines', n)\n");
      const rs2 = new RssSampler(runner.pid);
      const t = performance.now();
      const g = await timed(process.execPath, [RGRID_BIN, 'run', 'lines.py', 'big.csv', '--remote-only', '--memory', '512m'], { cwd: work, env }, work);
      const ms = performance.now() - t;
      const mem2 = await rs2.stop();
      const stored = (await store.head(blobKey(stack.accountId, csvInfo.sha256)))?.size ?? NaN;
      gz = { compress: /Compressed [\d.]+ \w+ in ([^(]+)\(/.exec(g.stderr)?.[1]?.trim() ?? '?', upload: summaryRate(g.stderr, 'Uploaded'), stored, cliRss: g.rssMb, runnerPeak: mem2.peakRss, ms };
      log(`CSV: compressed in ${gz.compress}, stored ${fmt(stored / MiB, 0)} MiB of ${fmt(csvInfo.size / MiB, 0)}, CLI ${fmt(g.rssMb, 0)} MB, runner peak ${fmt(mem2.peakRss, 0)} MB`);
      await rm(csv, { force: true });
    }
    const version = await timed(process.execPath, [RGRID_BIN, '--version'], { env }, work);

    const loadEnd = await loadAverage();
    const load = sampler.stop();
    const med = (who: 'cli' | 'curl', op: 'PUT' | 'GET', f: (x: Raw) => number) => median(raw.filter((x) => x.who === who && x.op === op).map(f));
    const rate = (who: 'cli' | 'curl', op: 'PUT' | 'GET') => mbps(bytes, med(who, op, (x) => x.ms));
    const peak = (who: 'cli' | 'curl', op: 'PUT' | 'GET') => Math.max(...raw.filter((x) => x.who === who && x.op === op).map((x) => x.rssMb));

    const L: string[] = [];
    L.push('## Files', '');
    L.push(
      `Moving a ${SIZE_MB >= 1024 ? `${SIZE_MB / 1024} GiB` : `${SIZE_MB} MiB`} file, and what it costs in memory. Everything runs on this machine against the local stack's S3 store ` +
        '(the dev store from cli/dev/s3-store.ts, which verifies every SigV4 signature and writes to disk), so the speeds are loopback speeds limited by CPU and disk, not a network: ' +
        'what matters is the ratio to curl on the same URL, and the memory, which must not grow with the file (target: peak RSS under 200 MB for the CLI and the runner).',
      '',
    );
    if (!FULL) L.push(`> **Quick check, not the published size** (BENCH_FILE_MB=${SIZE_MB}, BENCH_FILE_ROUNDS=${ROUNDS}${GZIP ? '' : ', BENCH_FILE_GZIP=0'}).`, '');
    L.push(
      `Measured ${startedAt} (${fmt((performance.now() - t0) / 60_000, 1)} min) on ${machine.nproc} cores (${machine.cpuModel}), ${machine.memory}; load average ${loadStart} at the start, ${loadEnd} at the end; ` +
        `1-minute load sampled every 5 s: min ${fmt(load.min, 2)}, mean ${fmt(load.mean, 2)}, max ${fmt(load.max, 2)}. The machine is shared: other people's tests and benches ran at the same time.`,
      '',
    );
    L.push('### Memory (peak RSS)', '');
    L.push(
      table(
        ['process', 'what it did', 'peak RSS', 'target'],
        [
          ['`rgrid run` (CLI)', `uploaded ${SIZE_MB} MiB in parts, waited, downloaded the ${SIZE_MB} MiB output (sha256-verified)`, `${fmt(fullRow.cliRss, 0)} MB`, '< 200 MB'],
          ['runner agent', `downloaded the ${SIZE_MB} MiB input (verified), collected and uploaded the ${SIZE_MB} MiB output in parts`, `${fmt(fullRow.runnerPeak, 0)} MB (VmHWM since start ${fmt(fullRow.runnerHwm, 0)} MB; idle ${fmt(fullRow.idle.rss, 0)} MB)`, '< 200 MB'],
          ...(gz
            ? [
                ['`rgrid run` (CLI)', `gzip-compressed a ${SIZE_MB} MiB CSV to a temp file, uploaded it in parts`, `${fmt(gz.cliRss, 0)} MB`, '< 200 MB'],
                ['runner agent', `downloaded the gzip-stored CSV, decompressing and verifying as it went`, `${fmt(gz.runnerPeak, 0)} MB`, '< 200 MB'],
              ]
            : []),
          ['CLI, one PUT (transfer/upload.ts)', `${SIZE_MB} MiB, streamed and re-hashed`, `${fmt(peak('cli', 'PUT'), 0)} MB`, ''],
          ['CLI, one GET (transfer/download.ts)', `${SIZE_MB} MiB to a temp file, sha256, link`, `${fmt(peak('cli', 'GET'), 0)} MB`, ''],
          ['curl -T / curl -o', 'the same URLs', `${fmt(peak('curl', 'PUT'), 0)} / ${fmt(peak('curl', 'GET'), 0)} MB`, ''],
          ['`rgrid --version`', 'nothing: Node + tsx + the CLI loaded', `${fmt(version.rssMb, 0)} MB`, ''],
        ],
      ),
      '',
    );
    L.push(
      'CLI and curl figures are "Maximum resident set size" from `/usr/bin/time -v`; the runner (a long-lived process) was sampled from /proc/PID/status (VmRSS every 100 ms) during the run. ' +
        'Most of the CLI\'s memory is Node itself and tsx compiling the TypeScript sources at start (`rgrid --version` row); the transfers add little, and nothing grows with the file size: ' +
        'files stream from disk in 256 KiB reads, parts are byte ranges of the file (4 in flight), hashing reuses one buffer, downloads stream to a temp file.',
      '',
    );
    L.push('### Speed: the CLI\'s transfer code vs curl on the same presigned URL', '');
    L.push(
      table(
        ['', 'CLI MB/s', 'curl MB/s', 'CLI / curl'],
        (['PUT', 'GET'] as const).map((op) => [op === 'PUT' ? `upload (one PUT of ${SIZE_MB} MiB)` : `download (one GET of ${SIZE_MB} MiB)`, fmt(rate('cli', op)), fmt(rate('curl', op)), `${fmt(rate('cli', op) / rate('curl', op), 2)}×`]),
      ),
      '',
    );
    L.push(
      `Medians of ${ROUNDS} rounds; in each round the CLI and curl alternate who goes first. The CLI's upload re-hashes the file while it streams (a file that changed since it was hashed is never stored under the old address), ` +
        'and its download computes sha256 while writing a temp file that is linked into place only when it matches: curl does neither. CLI times are the transfer itself (measured inside the child process); curl\'s are its `time_total`.',
      '',
    );
    L.push('Per round (MB/s):', '');
    L.push(
      table(
        ['round', 'CLI PUT', 'curl PUT', 'CLI GET', 'curl GET'],
        Array.from({ length: ROUNDS }, (_, i) => {
          const v = (who: 'cli' | 'curl', op: 'PUT' | 'GET') => fmt(mbps(bytes, raw.find((x) => x.round === i + 1 && x.who === who && x.op === op)!.ms));
          return [i + 1, v('cli', 'PUT'), v('curl', 'PUT'), v('cli', 'GET'), v('curl', 'GET')];
        }),
      ),
      '',
    );
    L.push('### The whole path', '');
    L.push(
      table(
        ['run', 'wall time', 'CLI upload', 'CLI download', 'notes'],
        [
          [`\`rgrid run copy.py big.bin\` (${SIZE_MB} MiB in, ${SIZE_MB} MiB out)`, fmtMs(fullRow.ms), `${fmt(fullRow.upload)} MB/s (multipart)`, `${fmt(fullRow.download)} MB/s`, 'CLI uploads in 16 MiB parts, 4 at a time; runner downloads, the script copies, runner hashes /work and uploads the copy in parts; CLI downloads and verifies'],
          ...(gz ? [[`\`rgrid run lines.py big.csv --remote-only\` (${SIZE_MB} MiB CSV)`, fmtMs(gz.ms), `${fmt(gz.upload)} MB/s of gzip`, '–', `compressed in ${gz.compress}; stored ${fmt(gz.stored / MiB, 0)} MiB (${fmt((gz.stored / bytes) * 100, 0)}% of the original); the runner decompresses while it downloads`]] : []),
        ],
      ),
      '',
    );
    L.push('### How to reproduce', '');
    L.push('```sh');
    L.push('npx tsx bench/files.ts                                        # 1 GiB, 3 rounds (writes this section)');
    L.push('BENCH_FILE_MB=100 BENCH_FILE_ROUNDS=1 npx tsx bench/files.ts   # quick check');
    L.push('```', '');
    L.push('Per round, on a presigned PUT URL (and then a GET URL) of the stack\'s store, in alternating order:', '');
    L.push('```sh');
    L.push('/usr/bin/time -v node --import tsx bench/_files-child.ts put "$PUT_URL" big.bin $SHA256 $SIZE   # uploadBlobs, one PUT');
    L.push('/usr/bin/time -v curl -sS -f -T big.bin -o /dev/null -w \'%{time_total}\' "$PUT_URL"');
    L.push('/usr/bin/time -v node --import tsx bench/_files-child.ts get "$GET_URL" outdir $SHA256 $SIZE  # downloadArtifact');
    L.push('/usr/bin/time -v curl -sS -f -o outdir/big.bin -w \'%{time_total}\' "$GET_URL"');
    L.push('```', '');
    L.push('The whole path, with a runner of the same stack (its RSS sampled from /proc/RUNNER_PID/status):', '');
    L.push('```sh');
    L.push('/usr/bin/time -v node bin/rgrid.mjs run copy.py big.bin --output-dir out --memory 512m');
    if (gz) L.push('/usr/bin/time -v node bin/rgrid.mjs run lines.py big.csv --remote-only --memory 512m');
    L.push('```', '');
    const md = L.join('\n');
    output = md;
    await publish({ bench: 'files', section: 'Files', md, raw: { settings: { SIZE_MB, ROUNDS, GZIP }, machine, raw, full: fullRow, gz, version: version.rssMb }, full: FULL, log });
  } finally {
    sampler.stop();
    await bench.stop();
    if (existsSync(work)) await rm(work, { recursive: true, force: true });
  }
  return output;
}

runBench(main);
