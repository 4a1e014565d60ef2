/**
 * What Ctrl+C does to transfers, shared by `rgrid run`, `rgrid run --batch` and `rgrid upload`:
 * temp copies are removed, multipart uploads in flight are aborted (no half-object stays), and
 * what was created but never submitted is canceled — bounded in time, then exit 130.
 */
import { rmSync } from 'node:fs';
import { CLI_EXIT } from '../errors.js';
import { partials } from './download.js';
import { removeTempDirsSync } from './encoding.js';
import { abortActiveMultipart } from './multipart.js';

export function stopUploadsAndExit(cancelCreated?: () => Promise<unknown>): void {
  removeTempDirsSync();
  void Promise.race([
    Promise.all([abortActiveMultipart(2000), cancelCreated?.().catch(() => undefined)]),
    new Promise((r) => setTimeout(r, 2500)),
  ]).finally(() => process.exit(CLI_EXIT.interrupted));
}

/** Removes the temp files of downloads in progress (synchronously: called from a signal handler). */
export function removePartialDownloadsSync(): void {
  for (const p of partials) rmSync(p, { force: true });
}
