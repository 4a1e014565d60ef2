/**
 * `npm run bench`: every benchmark, one after the other, each in its own process (each starts
 * and stops its own local stack), then the header of docs/benchmarks.md with this machine's
 * details. Every bench writes its own section of docs/benchmarks.md when it runs at full size.
 *
 *   npm run bench                                   # everything, full size (takes a while)
 *   BENCH_ONLY=dispatch,submission npm run bench    # some of them
 *   BENCH_ITEMS=100 BENCH_JOBS=1000 BENCH_FILES=100 npm run bench   # quick check (docs untouched)
 *   BENCH_HEADER_ONLY=1 npm run bench               # only refresh the header's machine details
 *
 * The benches: throughput.ts, dispatch.ts, submission.ts (this suite), and every other
 * `bench/*.ts` file (e.g. the caching and files benches), run between throughput and dispatch,
 * in name order. Files starting with `_` and bench/lib/ are not benches.
 */
import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { ROOT, writeHeader } from './lib/doc.js';
import { machineInfo, machineTable } from './lib/machine.js';
import { shouldWriteDocs } from './lib/env.js';

const OWN_FIRST = ['throughput'];
const OWN_LAST = ['dispatch', 'submission'];

async function benches(): Promise<string[]> {
  const dir = join(ROOT, 'bench');
  const all = (await readdir(dir)).filter((f) => /\.(ts|mjs)$/.test(f) && !f.startsWith('_') && !f.endsWith('.test.ts') && f !== 'run-all.ts').map((f) => f.replace(/\.(ts|mjs)$/, ''));
  const others = all.filter((b) => !OWN_FIRST.includes(b) && !OWN_LAST.includes(b)).sort();
  const ordered = [...OWN_FIRST.filter((b) => all.includes(b)), ...others, ...OWN_LAST.filter((b) => all.includes(b))];
  const only = process.env.BENCH_ONLY?.split(',').map((s) => s.trim()).filter(Boolean);
  if (!only) return ordered;
  const unknown = only.filter((o) => !ordered.includes(o));
  if (unknown.length) throw new Error(`BENCH_ONLY names unknown benches: ${unknown.join(', ')} (known: ${ordered.join(', ')})`);
  return ordered.filter((b) => only.includes(b));
}

function fileOf(name: string): string {
  return join(ROOT, 'bench', `${name}.ts`);
}

function runBench(name: string): Promise<number> {
  return new Promise((resolve) => {
    const file = fileOf(name);
    const child = spawn(process.execPath, ['--import', 'tsx', file], { cwd: ROOT, stdio: 'inherit', env: process.env });
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
    child.once('error', () => resolve(1));
  });
}

/** Header of docs/benchmarks.md (owned by this suite): what, where, how to reproduce. */
function header(machine: Awaited<ReturnType<typeof machineInfo>>, ran: string[], together: boolean): string {
  return [
    '# Benchmarks',
    '',
    'RGrid measured against what a user would otherwise do, on the same machine and in the same run. Every comparison is a ratio of contenders interleaved in one run ' +
      '(A B C, B C A, …), because the machines these numbers come from are shared and noisy; absolute numbers are given with the load average at the time. No test asserts a timing.',
    '',
    '### Machine',
    '',
    together
      ? `Last full run of \`npm run bench\` (${ran.join(', ')}): ${machine.date}. Each section also states when it was measured and the load at that time.`
      : `The sections were measured one bench at a time, each at its full size with the command in its section; each states when it was measured and the load at that time. Machine details as of ${machine.date}.`,
    '',
    machineTable(machine),
    '',
    '### How to reproduce',
    '',
    '```sh',
    'bash bench/setup.sh      # once: GNU parallel (apt-get), checks Docker, python:3.11-slim and the pip index',
    'npm run bench            # every table below (each bench writes its own section at full size)',
    'npx tsx bench/throughput.ts    # one bench; each accepts smaller sizes for a quick check, e.g. BENCH_ITEMS=100',
    '```',
    '',
    'Quick checks (smaller sizes than the published ones) print their tables but leave this file alone unless `BENCH_WRITE_DOCS=1`. ' +
      'Each bench starts its own local stack (`startStack` from cli/dev/stack.ts: the control plane in Miniflare, the S3 store, runners as `rgrid dev` starts them) in a temporary directory on free loopback ports and stops it at the end. ' +
      'Everything stays on 127.0.0.1; job containers run with `--network none`; the base image is `python:3.11-slim` (on this machine built by `.ci/base-images.sh` from Debian bookworm, Python 3.11.2).',
    '',
    'Sections: [Batch throughput](#batch-throughput) · [Caching](#caching) · [Files](#files) · [Dispatch](#dispatch) · [Submission](#submission).',
    '',
    '### Where RGrid lost, why, and what was done',
    '',
    '- **Batch throughput.** The first full run (2026-11-28, load average ~20) had RGrid at 76 jobs/min, 0.80× `parallel` + `docker run`. The per-job profile showed why: ' +
      'a runner slot stayed idle while its finished job uploaded outputs and logs and reported (four control-plane calls, ~1.4 s per job under that load), and every `rgrid` start spent ~1.4 s of CPU compiling the CLI\'s TypeScript with tsx. ' +
      'Fixed: a slot claims its next job as soon as the container is gone, while the previous job finishes (runner-agent/src/agent.ts), and the CLI and the runner start from a cached esbuild bundle of the sources (bin/_load.mjs, ~0.5 s of CPU). The table below is after those changes.',
    '- **Files.** Downloads through the CLI run at about half of curl\'s speed on the same URL: the CLI computes sha256 while it writes a temporary file and links it into place only when it matches; curl does neither. Kept: a verified download is the point. Uploads match curl. Memory stays under the 200 MB target for both the CLI and the runner at 1 GiB.',
    '- **Dispatch.** The control plane\'s CPU per job (workerd: claim, heartbeat, complete) bounds claims per second on 2 shared cores; claiming 4 jobs per request is 1.30× faster than 1 (on a quiet machine; 1.72× under load). The runner still claims one job per free slot, so a long job never holds back others it claimed; the bench shows the headroom.',
    '- **Submission.** One execution per file is ~9× slower than the batch API for 1,000 files; `rgrid run --batch` uses the batch API.',
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  const list = await benches();
  if (process.env.BENCH_HEADER_ONLY === '1') {
    // Refresh only the header (machine details), e.g. after running the benches one by one.
    await writeHeader(header(await machineInfo(), list, false));
    process.stderr.write('[bench] docs/benchmarks.md: header updated\n');
    return;
  }
  process.stderr.write(`[bench] running: ${list.join(', ')}\n`);
  const failed: string[] = [];
  for (const b of list) {
    process.stderr.write(`\n[bench] ===== ${b} =====\n`);
    const t0 = performance.now();
    const code = await runBench(b);
    process.stderr.write(`[bench] ${b}: ${code === 0 ? 'ok' : `FAILED (exit ${code})`} in ${((performance.now() - t0) / 60_000).toFixed(1)} min\n`);
    if (code !== 0) failed.push(b);
  }
  // Any size setting (BENCH_ITEMS, BENCH_JOBS, BENCH_FILE_MB, …) makes this a quick check.
  const notSizes = new Set(['BENCH_ONLY', 'BENCH_WRITE_DOCS', 'BENCH_KEEP_DIR', 'BENCH_PYTHON', 'BENCH_RGRID_VIA', 'BENCH_HEADER_ONLY']);
  const quick = Object.keys(process.env).some((v) => v.startsWith('BENCH_') && !notSizes.has(v) && process.env[v] !== '');
  if (shouldWriteDocs(!quick)) {
    await writeHeader(header(await machineInfo(), list.map((b) => basename(b)), true));
    process.stderr.write('[bench] docs/benchmarks.md: header updated\n');
  }
  if (failed.length) {
    process.stderr.write(`[bench] failed: ${failed.join(', ')}\n`);
    process.exit(1);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
