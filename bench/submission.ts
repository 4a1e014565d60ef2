/**
 * Submission: the time to create and upload a 1,000-file batch, end to end (hash every file,
 * create the batch, upload the inputs the control plane lacks, submit), on the local stack with no
 * runners (nothing runs; only submission is measured). Interleaved in rounds against:
 *
 *   - the same with 16 uploads in flight instead of the CLI's 4;
 *   - one execution per file (create + PUT + submit per file, 8 files at a time: what submitting
 *     without the batch API costs, e.g. a loop around `rgrid run`'s API calls);
 *   - the batch API again on files the account already stored (the input cache: no uploads).
 *
 * Every round uses fresh file contents, so every upload is real (except in the cached case).
 *
 *   npx tsx bench/submission.ts                 # 1,000 files, 3 rounds
 *   BENCH_FILES=100 npx tsx bench/submission.ts # quick check
 *
 * Settings: BENCH_FILES (1000), BENCH_SUBMIT_ROUNDS (3), BENCH_FILE_BYTES (approximate size of
 * each file; default: the ~0.5 KB CSVs of the throughput bench).
 */
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { intEnv } from './lib/env.js';
import { LoadSampler, loadAverage, machineInfo } from './lib/machine.js';
import { startBenchStack, type BenchStack } from './lib/stack.js';
import { csvContent, itemName, writeScript, SCRIPT_NAME } from './lib/fixtures.js';
import { hashFiles, submitBatch, type LocalFile, type SubmitTimings } from './lib/batch.js';
import { uploadBlobs } from '../cli/transfer/upload.js';
import type { BlobUpload } from '../shared/api/common.js';
import { fmt, fmtMs, mapLimit, median, table } from './lib/stats.js';
import { publish, runBench } from './lib/doc.js';

const FILES = intEnv('BENCH_FILES', 1000);
const ROUNDS = intEnv('BENCH_SUBMIT_ROUNDS', 3);
const FILE_BYTES = intEnv('BENCH_FILE_BYTES', 0, 0);
const FULL = FILES === 1000 && ROUNDS === 3 && FILE_BYTES === 0;

const log = (line: string) => process.stderr.write(`[submission] ${line}\n`);

type Variant = 'batch' | 'batch16' | 'single' | 'cached';
const VARIANTS: Variant[] = ['batch', 'batch16', 'single', 'cached'];
const LABEL: Record<Variant, string> = {
  batch: 'batch API, CLI transfer code (4 uploads in flight)',
  batch16: 'batch API, 16 uploads in flight',
  single: 'one execution per file (create + PUT + submit, 8 files at a time)',
  cached: 'batch API, inputs already stored (no uploads)',
};

async function writeFiles(dir: string, salt: string): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const names: string[] = [];
  for (let i = 1; i <= FILES; i++) {
    let text = csvContent(i, salt);
    while (FILE_BYTES && text.length < FILE_BYTES) text += text;
    if (FILE_BYTES) text = text.slice(0, FILE_BYTES);
    names.push(itemName(i));
    await writeFile(join(dir, itemName(i)), text);
  }
  return names;
}

/** Per file: POST /executions, PUT what it asks for, POST …/submit (no batch). */
async function submitOneByOne(bench: BenchStack, dir: string, names: string[], script: LocalFile): Promise<SubmitTimings> {
  const t0 = performance.now();
  const files = await hashFiles(dir, names);
  const t1 = performance.now();
  let uploads = 0;
  let requests = 0;
  await mapLimit(files, 8, async (f) => {
    const created = await bench.api.post<{ execution: { id: string }; uploads: BlobUpload[] }>('/executions', {
      runtime: 'python3.11',
      script: { name: script.name, sha256: script.sha256, size: script.size },
      args: [f.name],
      inputs: [{ path: f.name, sha256: f.sha256, size: f.size, arg: 0 }],
    });
    const blobs = new Map([
      [script.sha256, script],
      [f.sha256, f],
    ]);
    if (created.uploads.length) {
      const sent = await uploadBlobs(created.uploads, blobs, { concurrency: 4 });
      uploads += sent.files;
    }
    await bench.api.post(`/executions/${created.execution.id}/submit`);
    requests += 2;
  });
  const t2 = performance.now();
  // Create, upload and submit overlap per file here: the phases are not separable.
  return { hashMs: t1 - t0, createMs: NaN, uploadMs: NaN, submitMs: NaN, totalMs: t2 - t0, requests, uploads };
}

async function main(): Promise<string | undefined> {
  // Printed after the stack is stopped: workerd's own log lines go to this process's stdout.
  let output: string | undefined;
  const startedAt = new Date().toISOString();
  const t0 = performance.now();
  const machine = await machineInfo();
  const loadStart = await loadAverage();
  const sampler = new LoadSampler();
  const work = await mkdtemp(join(tmpdir(), 'rgrid-bench-submission-'));
  const bench = await startBenchStack({ log });
  const results: { variant: Variant; round: number; t: SubmitTimings }[] = [];
  try {
    await writeScript(work);
    const [script] = await hashFiles(work, [SCRIPT_NAME]);
    // Warm-up: the first requests of a fresh stack compile and cache; not measured.
    {
      const dir = join(work, 'warm');
      const names = (await writeFiles(dir, 'warm')).slice(0, 50);
      await submitBatch(bench.api, { dir, names, script: script!, name: 'warm-up' });
    }
    for (let r = 0; r < ROUNDS; r++) {
      const order = VARIANTS.map((_, i) => VARIANTS[(i + r) % VARIANTS.length]!);
      // The cached variant re-submits the files of this round's plain batch: it needs them stored.
      const batchDir = join(work, `r${r}-batch`);
      const batchNames = await writeFiles(batchDir, `r${r}-batch`);
      let batchDone = false;
      for (const v of order) {
        let t: SubmitTimings;
        if (v === 'cached') {
          if (!batchDone) {
            // Store the files first (not measured) so that this variant finds them.
            await submitBatch(bench.api, { dir: batchDir, names: batchNames, script: script!, name: 'prime' });
            batchDone = true;
          }
          t = (await submitBatch(bench.api, { dir: batchDir, names: batchNames, script: script!, name: `cached r${r}` })).timings;
          if (t.uploads !== 0) throw new Error(`cached variant uploaded ${t.uploads} files`);
        } else if (v === 'batch') {
          // Fresh contents when the cached variant already stored these files.
          const dir = batchDone ? join(work, `r${r}-batch-fresh`) : batchDir;
          const names = batchDone ? await writeFiles(dir, `r${r}-batch-fresh`) : batchNames;
          t = (await submitBatch(bench.api, { dir, names, script: script!, name: `batch r${r}` })).timings;
          batchDone = true;
          if (t.uploads < FILES) throw new Error(`batch variant uploaded only ${t.uploads} files`);
        } else if (v === 'batch16') {
          const dir = join(work, `r${r}-batch16`);
          const names = await writeFiles(dir, `r${r}-batch16`);
          t = (await submitBatch(bench.api, { dir, names, script: script!, name: `batch16 r${r}`, uploadConcurrency: 16 })).timings;
        } else {
          const dir = join(work, `r${r}-single`);
          const names = await writeFiles(dir, `r${r}-single`);
          t = await submitOneByOne(bench, dir, names, script!);
        }
        results.push({ variant: v, round: r + 1, t });
        log(`round ${r + 1}/${ROUNDS} ${v}: ${FILES} files in ${fmtMs(t.totalMs)} (${t.uploads} uploads, ${t.requests} API requests; load ${await loadAverage()})`);
      }
    }
    const sampled = sampler.stop();
    const loadEnd = await loadAverage();

    const med = (v: Variant, f: (t: SubmitTimings) => number) => median(results.filter((r) => r.variant === v).map((r) => f(r.t)));
    const L: string[] = [];
    L.push('## Submission', '');
    L.push(
      `Time to create and upload a ${FILES.toLocaleString('en-US')}-file batch, end to end: hash every file (streaming sha256, 4 at a time, as the CLI does), create the batch (one request per 1,000 items), ` +
        'upload each input the control plane asks for through its presigned PUT (the CLI\'s own upload code: streamed from disk, re-hashed on the way, retried), and submit. ' +
        `Local stack without runners; the object store is the local S3 store on loopback, so this measures RGrid's own costs, not a network. Files: the throughput bench's ~0.5 KB CSVs${FILE_BYTES ? ` padded to ${FILE_BYTES} bytes` : ''}, fresh contents in every round. ` +
        `${ROUNDS} rounds, the variants interleaved with the order rotating each round; medians of the rounds.`,
      '',
    );
    if (!FULL) L.push(`> **Quick check, not the published size** (BENCH_FILES=${FILES}, BENCH_SUBMIT_ROUNDS=${ROUNDS}).`, '');
    L.push(`Measured ${startedAt} (${fmt((performance.now() - t0) / 60_000, 1)} min); load average ${loadStart} at the start, ${loadEnd} at the end; 1-minute load sampled every 5 s: min ${fmt(sampled.min, 2)}, mean ${fmt(sampled.mean, 2)}, max ${fmt(sampled.max, 2)} on ${machine.nproc} cores.`, '');
    L.push(
      table(
        ['how', 'total', 'files/s', 'hash', 'create', 'upload', 'submit', 'uploads', 'API requests', 'vs batch API'],
        VARIANTS.map((v) => {
          const total = med(v, (t) => t.totalMs);
          return [
            LABEL[v],
            fmtMs(total),
            fmt((FILES / total) * 1000, 0),
            fmtMs(med(v, (t) => t.hashMs)),
            fmtMs(med(v, (t) => t.createMs)),
            fmtMs(med(v, (t) => t.uploadMs)),
            fmtMs(med(v, (t) => t.submitMs)),
            fmt(med(v, (t) => t.uploads), 0),
            fmt(med(v, (t) => t.requests), 0),
            `${fmt(total / med('batch', (t) => t.totalMs), 2)}× the time`,
          ];
        }),
      ),
      '',
    );
    L.push('Per round (total time):', '');
    L.push(
      table(
        ['round', ...VARIANTS.map((v) => v)],
        Array.from({ length: ROUNDS }, (_, r) => [r + 1, ...VARIANTS.map((v) => fmtMs(results.find((x) => x.round === r + 1 && x.variant === v)?.t.totalMs ?? NaN))]),
      ),
      '',
    );
    L.push('### How to reproduce', '');
    L.push('```sh');
    L.push(`npx tsx bench/submission.ts          # BENCH_FILES=${FILES} BENCH_SUBMIT_ROUNDS=${ROUNDS}`);
    L.push('BENCH_FILES=100 BENCH_SUBMIT_ROUNDS=1 npx tsx bench/submission.ts   # quick check');
    L.push('```', '');
    L.push(
      'The batch path is bench/lib/batch.ts `submitBatch`: `POST /api/v1/batches` (template: python3.11 + the script; one item per file with the file as its input and argument), `PUT` each presigned upload with cli/transfer/upload.ts `uploadBlobs`, `POST /api/v1/batches/ID/submit`. ' +
        'The one-by-one path is `POST /api/v1/executions`, the PUTs, `POST /api/v1/executions/ID/submit` per file.',
      '',
    );
    const md = L.join('\n');
    output = md;
    await publish({ bench: 'submission', section: 'Submission', md, raw: { settings: { FILES, ROUNDS, FILE_BYTES }, machine, results }, full: FULL, log });
  } finally {
    sampler.stop();
    await bench.stop();
    await rm(work, { recursive: true, force: true });
  }
  return output;
}

runBench(main);
