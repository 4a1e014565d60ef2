/**
 * `rgrid run` after preparation: create → upload what the server lacks → submit → stream logs →
 * download outputs → exit with the script's code. The order matters: nothing is queued before
 * its inputs exist (two-phase submit), and outputs are fetched only once the execution is final.
 *
 * Ctrl+C never cancels a submitted execution: the CLI detaches and says how to follow it. Before
 * submit it cancels the half-made execution (nothing ran); during downloads it removes partial
 * files. Each phase sets `phase` so the one SIGINT handler knows which of these applies.
 */
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { CacheReport } from '../../shared/api/cache.js';
import type { Artifact, Execution } from '../../shared/api/executions.js';
import type { RGridClient } from '../api/client.js';
import { ApiError } from '../api/http.js';
import { CLI_EXIT, CliError } from '../errors.js';
import { displayPath, downloadAll, type Downloaded } from '../transfer/download.js';
import { removeTempDirsSync } from '../transfer/encoding.js';
import { removePartialDownloadsSync, stopUploadsAndExit } from '../transfer/interrupt.js';
import { expiredLine, expiryWarnings } from '../transfer/retention.js';
import { uploadBlobs } from '../transfer/upload.js';
import { bold, cyan, formatBytes, log, note, red } from '../ui.js';
import { cacheReportLines } from './cache-report.js';
import { consoleSink, followLogs } from './follow.js';
import { outcomeOf } from './outcome.js';
import type { PreparedRun } from './prepare.js';

export interface ExecuteOptions {
  remoteOnly: boolean;
  outputDir?: string;
  json: boolean;
  cwd: string;
  /** After this long still queued, say that no runner seems to be picking it up. */
  queuedHintMs?: number;
}

export interface RunResult {
  execution: Execution;
  exitCode: number;
  outcome: string;
  outputs: { path: string; localPath: string; size: number; renamed: boolean }[];
  remoteOnly: boolean;
  /** What the control plane reused (script, environment, inputs, result) and why not. */
  cache: CacheReport;
}

type Phase = 'create' | 'upload' | 'wait' | 'download' | 'done';

export function detachMessage(id: string): string {
  return [
    '',
    `Detached. ${id} keeps running (Ctrl+C does not cancel it).`,
    `  Status:   rgrid status ${id}`,
    `  Follow:   rgrid logs ${id} -f`,
    `  Outputs:  rgrid download ${id}`,
    `  Cancel:   rgrid cancel ${id}`,
  ].join('\n');
}

/** Installs the SIGINT handler for one run; returns a function that removes it. */
function onInterrupt(state: { phase: Phase; id?: string }, client: RGridClient): () => void {
  let pressed = false;
  const handler = () => {
    if (pressed) process.exit(CLI_EXIT.interrupted);
    pressed = true;
    const id = state.id;
    switch (state.phase) {
      case 'create':
      case 'upload':
        if (!id) {
          removeTempDirsSync();
          note('\nInterrupted: nothing was submitted.');
          process.exit(CLI_EXIT.interrupted);
        }
        note(`\nInterrupted before submit: canceling ${id} (it never ran).`);
        // A dangling "created" execution is harmless but untidy.
        stopUploadsAndExit(() => client.cancel(id));
        return;
      case 'wait':
        note(detachMessage(id!));
        process.exit(CLI_EXIT.interrupted);
        return;
      case 'download':
        removePartialDownloadsSync();
        note(`\nInterrupted while downloading; partial files were removed. The outputs stay stored remotely:\n  rgrid download ${id}`);
        process.exit(CLI_EXIT.interrupted);
        return;
      case 'done':
        process.exit(CLI_EXIT.interrupted);
    }
  };
  process.on('SIGINT', handler);
  return () => process.off('SIGINT', handler);
}

export async function executeRun(client: RGridClient, prepared: PreparedRun, opts: ExecuteOptions): Promise<RunResult> {
  const state: { phase: Phase; id?: string } = { phase: 'create' };
  const release = onInterrupt(state, client);
  try {
    if (prepared.requirements) log.info(`Detected ${prepared.requirements.display} with ${prepared.requirements.count} ${prepared.requirements.count === 1 ? 'dependency' : 'dependencies'}`);
    const created = await client.create(prepared.body);
    let execution = created.execution;
    state.id = execution.id;
    log.debug(`Created ${execution.id} (script key ${execution.scriptKey.slice(0, 12)}…, env key ${execution.envKey.slice(0, 12)}…)`);

    if (execution.reusedFrom) {
      // Result reuse: the control plane matched an identical succeeded execution; nothing runs.
      if (!opts.json) log.success(`Reused results of ${execution.reusedFrom} (nothing ran)`);
      return await finishRun(client, execution, created.cache, state, opts);
    }
    if (!opts.json) {
      for (const line of cacheReportLines(created.cache, { noCache: prepared.body.noCache, forceUpload: prepared.body.forceUpload })) {
        if (line.kind === 'hit') log.success(line.text);
        else log.info(line.text);
      }
    }

    state.phase = 'upload';
    if (created.uploads.length) {
      const bytes = created.uploads.reduce((n, u) => n + (prepared.blobs.get(u.sha256)?.size ?? 0), 0);
      log.info(`Uploading ${created.uploads.length} ${created.uploads.length === 1 ? 'file' : 'files'} (${formatBytes(bytes)})…`);
      await uploadBlobs(created.uploads, prepared.blobs, { multipart: client, onNote: (m) => log.debug(m) });
    } else {
      log.debug('Script and inputs already stored; nothing to upload.');
    }
    if (execution.status === 'created') execution = (await client.submit(execution.id)).execution;

    state.phase = 'wait';
    log.info(`${bold(execution.id)} submitted to pool ${execution.pool}. ${cyan('Ctrl+C detaches')}; the run continues.`);
    const since = Date.now();
    let hinted = false;
    await followLogs(client, execution.id, {
      follow: true,
      sink: consoleSink({ jsonMode: opts.json }),
      onPoll: (res) => {
        if (!hinted && res.status === 'queued' && Date.now() - since > (opts.queuedHintMs ?? 15_000)) {
          hinted = true;
          log.warn(`Still waiting for a runner on pool "${execution.pool}". Is one running? \`rgrid dev\` starts one; \`npx rgrid-runner --api-url … --registration-token …\` adds more.`);
        }
      },
      onAttempt: (attempt) => log.warn(`The runner stopped responding; attempt ${attempt} starts over (output below is from the new attempt).`),
    });
    execution = (await client.poll(execution.id)).execution;
    const outcome = outcomeOf(execution);
    if (outcome.ok) log.success(outcome.summary);
    else note(`${red('Failed:')} ${outcome.summary}`);
    return await finishRun(client, execution, created.cache, state, opts);
  } finally {
    release();
  }
}

/** Downloads the outputs of a final execution (unless --remote-only) and builds the result. */
async function finishRun(client: RGridClient, execution: Execution, cache: CacheReport, state: { phase: Phase }, opts: ExecuteOptions): Promise<RunResult> {
  const outcome = outcomeOf(execution);
  let outputs: Downloaded[] = [];
  if (opts.remoteOnly) {
    note(`Outputs stored remotely. Download with: rgrid download ${execution.id}`);
  } else {
    state.phase = 'download';
    outputs = await downloadOutputs(client, execution.id, opts.outputDir ?? opts.cwd, opts.cwd);
  }
  state.phase = 'done';
  return {
    execution,
    exitCode: outcome.exitCode,
    outcome: outcome.summary,
    outputs: outputs.map((o) => ({ path: o.remotePath, localPath: o.localPath, size: o.size, renamed: o.renamed })),
    remoteOnly: opts.remoteOnly,
    cache,
  };
}

/** The control plane's word on an artifact the store no longer has: "… expired on <date>" or undefined. */
async function explainGone(client: RGridClient, id: string, a: Artifact): Promise<string | undefined> {
  try {
    await client.artifact(id, a.id);
    return undefined; // recorded and not expired: the 404 is a real error
  } catch (err) {
    if (err instanceof ApiError && err.status === 404 && /expired on/.test(err.message)) return err.message;
    return undefined;
  }
}

/** Downloads an execution's outputs and lists them (shared with `rgrid download`). */
export async function downloadOutputs(client: RGridClient, id: string, dir: string, cwd: string): Promise<Downloaded[]> {
  const outDir = resolve(cwd, dir);
  const { artifacts } = await client.artifacts(id);
  const all = artifacts.filter((a) => a.kind === 'output');
  // Past retention the bytes are gone: one line for each, and the rest is still fetched.
  const outputs = all.filter((a) => a.download !== null);
  for (const a of all) if (a.download === null) log.warn(expiredLine(a.path, a.expiresAt));
  if (all.length && !outputs.length) throw new CliError(`Every output of ${id} has expired`, { hint: 'Outputs are kept for a limited time (30 days unless the operator changed it); run the execution again to recreate them.' });
  if (!outputs.length) {
    log.info('No output files.');
    return [];
  }
  for (const w of expiryWarnings(outputs)) log.warn(w);
  try {
    await mkdir(outDir, { recursive: true });
  } catch (err) {
    throw new CliError(`Cannot write outputs to ${dir}: ${(err as NodeJS.ErrnoException).code === 'EEXIST' || (err as NodeJS.ErrnoException).code === 'ENOTDIR' ? 'it is not a directory' : (err as Error).message}`, {
      hint: `Pick another --output-dir; the outputs stay stored remotely (rgrid download ${id}).`,
    });
  }
  let gone = 0;
  const done = await downloadAll(outputs, outDir, {
    explainGone: (a) => explainGone(client, id, a),
    onExpired: (a, message) => {
      gone++;
      log.warn(`${message}; not downloaded`);
    },
  });
  if (gone && !done.length) throw new CliError(`Every output of ${id} has expired`, { hint: 'Run the execution again to recreate them.' });
  log.success(`Downloaded ${done.length} ${done.length === 1 ? 'output' : 'outputs'} to ${displayPath(outDir, cwd)}:`);
  for (const d of done) {
    const shown = displayPath(d.localPath, outDir);
    note(`  ${shown}${d.renamed ? `  (${d.remotePath} already existed; not overwritten)` : ''}`);
  }
  return done;
}
