/**
 * Submitting and collecting a batch through the batch API, with the CLI's own transfer code
 * (cli/transfer: streaming sha256, presigned PUTs with retries, verified downloads that never
 * overwrite). This is the path `rgrid run … --batch` takes: hash every file, create the batch
 * with up to 1,000 items per request (append the rest), upload what the control plane lacks,
 * submit once; then follow the items and download each one's outputs as soon as it is final.
 */
import { join } from 'node:path';
import { sha256File } from '../../cli/transfer/hash.js';
import { uploadBlobs, type LocalBlob } from '../../cli/transfer/upload.js';
import { downloadArtifact } from '../../cli/transfer/download.js';
import type { Artifact } from '../../shared/api/executions.js';
import type { BlobUpload } from '../../shared/api/common.js';
import { MAX_BATCH_ITEMS_PER_REQUEST } from '../../shared/api/batches.js';
import { isFinal, type ExecutionState } from '../../shared/lifecycle.js';
import type { Api } from './api.js';
import { mapLimit, sleep } from './stats.js';

export interface LocalFile extends LocalBlob {
  name: string;
}

/** The CLI hashes 4 files at a time (cli/run/prepare.ts). */
export async function hashFiles(dir: string, names: string[], concurrency = 4): Promise<LocalFile[]> {
  return mapLimit(names, concurrency, async (name) => {
    const path = join(dir, name);
    const d = await sha256File(path);
    return { name, path, label: name, sha256: d.sha256, size: d.size };
  });
}

export interface SubmitTimings {
  hashMs: number;
  createMs: number;
  uploadMs: number;
  submitMs: number;
  totalMs: number;
  requests: number;
  uploads: number;
}

export interface SubmittedBatch {
  batchId: string;
  items: { executionId: string; inputName: string }[];
  timings: SubmitTimings;
}

/**
 * hash → create (+ append) → upload → submit. Each item runs `script <input>` with the input in
 * /work under its own name.
 */
export async function submitBatch(
  api: Api,
  opts: { dir: string; names: string[]; script: LocalFile; name: string; uploadConcurrency?: number; parallel?: number },
): Promise<SubmittedBatch> {
  const t0 = performance.now();
  const files = await hashFiles(opts.dir, opts.names);
  const t1 = performance.now();
  const items = files.map((f) => ({ inputName: f.name, args: [f.name], inputs: [{ path: f.name, sha256: f.sha256, size: f.size, arg: 0 }] }));
  const template = { runtime: 'python3.11', script: { name: opts.script.name, sha256: opts.script.sha256, size: opts.script.size } };
  const first = items.slice(0, MAX_BATCH_ITEMS_PER_REQUEST);
  const created = await api.post<{ batch: { id: string }; items: SubmittedBatch['items']; uploads: BlobUpload[] }>('/batches', {
    name: opts.name,
    template,
    items: first,
    ...(opts.parallel ? { parallel: opts.parallel } : {}),
  });
  let requests = 1;
  const refs = [...created.items];
  const uploads = [...created.uploads];
  for (let i = first.length; i < items.length; i += MAX_BATCH_ITEMS_PER_REQUEST) {
    const more = await api.post<{ items: SubmittedBatch['items']; uploads: BlobUpload[] }>(`/batches/${created.batch.id}/items`, { items: items.slice(i, i + MAX_BATCH_ITEMS_PER_REQUEST) });
    requests++;
    refs.push(...more.items);
    uploads.push(...more.uploads);
  }
  const t2 = performance.now();
  const blobs = new Map<string, LocalBlob>([[opts.script.sha256, opts.script], ...files.map((f) => [f.sha256, f] as [string, LocalBlob])]);
  const sent = await uploadBlobs(uploads, blobs, { concurrency: opts.uploadConcurrency ?? 4 });
  const t3 = performance.now();
  await api.post(`/batches/${created.batch.id}/submit`);
  requests++;
  const t4 = performance.now();
  return {
    batchId: created.batch.id,
    items: refs,
    timings: { hashMs: t1 - t0, createMs: t2 - t1, uploadMs: t3 - t2, submitMs: t4 - t3, totalMs: t4 - t0, requests, uploads: sent.files },
  };
}

export interface CollectResult {
  /** When the last item became final (performance.now()). */
  allFinalAt: number;
  /** When the last output was on disk. */
  doneAt: number;
  states: Record<string, number>;
  outputs: number;
  failures: { executionId: string; inputName: string; status: ExecutionState }[];
}

/**
 * Follows the batch's items (polling every `pollMs`) and downloads each item's outputs into
 * `outDir` as soon as it is final, `concurrency` items at a time.
 */
export async function collectBatch(api: Api, batchId: string, outDir: string, opts: { pollMs?: number; concurrency?: number; download?: boolean } = {}): Promise<CollectResult> {
  const seen = new Set<string>();
  const queue: { executionId: string; inputName: string; status: ExecutionState }[] = [];
  const states: Record<string, number> = {};
  const failures: CollectResult['failures'] = [];
  let outputs = 0;
  let allFinalAt = 0;
  let finished = false;
  let error: unknown;
  const download = opts.download ?? true;

  const workers = Array.from({ length: opts.concurrency ?? 8 }, async () => {
    while (!error) {
      const item = queue.shift();
      if (!item) {
        if (finished) return;
        await sleep(20);
        continue;
      }
      if (!download || item.status !== 'succeeded') continue;
      try {
        const { artifacts } = await api.get<{ artifacts: Artifact[] }>(`/executions/${item.executionId}/artifacts`);
        for (const a of artifacts.filter((x) => x.kind === 'output')) {
          await downloadArtifact(a, outDir);
          outputs++;
        }
      } catch (err) {
        error = err;
      }
    }
  });

  try {
    for (;;) {
      const { items } = await api.get<{ items: { executionId: string; inputName: string; status: ExecutionState }[] }>(`/batches/${batchId}/items`);
      for (const it of items) {
        if (!isFinal(it.status) || seen.has(it.executionId)) continue;
        seen.add(it.executionId);
        states[it.status] = (states[it.status] ?? 0) + 1;
        if (it.status !== 'succeeded') failures.push(it);
        queue.push(it);
      }
      if (error) throw error;
      if (items.length > 0 && seen.size === items.length) {
        allFinalAt = performance.now();
        break;
      }
      await sleep(opts.pollMs ?? 250);
    }
  } finally {
    finished = true;
    await Promise.all(workers);
  }
  if (error) throw error;
  return { allFinalAt, doneAt: performance.now(), states, outputs, failures };
}
