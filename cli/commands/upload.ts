/**
 * `rgrid upload FILE...`: stores files in the account by content, without running anything, so
 * that later requests can name them by sha256 + size — a webhook delivery's inputs above all.
 *
 * The same transfer path as `rgrid run`'s inputs: streaming sha256, text stored gzip-compressed
 * (encodingFor), only what the account lacks is sent (POST /api/v1/blobs), big files in parts,
 * and the control plane confirms every file against the object store before it counts as stored.
 */
import { stat } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { MAX_BLOBS_PER_REQUEST, type BlobDeclaration } from '../../shared/api/blobs.js';
import { CLI_EXIT, CliError } from '../errors.js';
import { encodingFor } from '../transfer/encoding.js';
import { sha256File } from '../transfer/hash.js';
import { stopUploadsAndExit } from '../transfer/interrupt.js';
import { mapLimit } from '../transfer/parallel.js';
import { uploadBlobs, type LocalBlob } from '../transfer/upload.js';
import { formatBytes, log, note, dim } from '../ui.js';
import { API_FLAGS, JSON_FLAG, bool, type CommandSpec } from './_args.js';
import { apiContext, command, printJson } from './_shared.js';

export const spec: CommandSpec = {
  name: 'upload',
  description: 'Store files without running anything; prints the sha256 and size a webhook delivery names them by',
  positionals: [{ name: 'FILE', description: 'Files to store (already stored ones are not sent again)', required: true, variadic: true }],
  flags: {
    ...JSON_FLAG,
    ...API_FLAGS,
  },
  examples: ['rgrid upload big.parquet', 'rgrid upload data/*.csv --json'],
};

export interface UploadedFile {
  /** As given on the command line. */
  path: string;
  /** The name a webhook input would give it (no directories). */
  name: string;
  sha256: string;
  size: number;
  encoding: 'identity' | 'gzip';
  /** `uploaded` by this command, or `stored` already (nothing sent). */
  status: 'uploaded' | 'stored';
}

async function hashFiles(paths: string[], cwd: string): Promise<{ path: string; abs: string; sha256: string; size: number }[]> {
  return mapLimit(paths, 4, async (path) => {
    const abs = resolve(cwd, path);
    const info = await stat(abs).catch(() => null);
    if (!info) throw new CliError(`No such file: ${path}`, { hint: 'Check the path.', exitCode: CLI_EXIT.usage });
    if (!info.isFile()) throw new CliError(`${path} is not a file`, { hint: 'Name files, not directories (a shell glob like dir/* names each file).', exitCode: CLI_EXIT.usage });
    try {
      return { path, abs, ...(await sha256File(abs)) };
    } catch (err) {
      throw new CliError(`Cannot read ${path}: ${(err as Error).message}`, { hint: 'Check that the file is readable.' });
    }
  });
}

/** Ctrl+C: no half-object may stay behind (multipart is aborted), temp copies are removed. */
function onInterrupt(): () => void {
  const handler = () => {
    note('\nInterrupted: files already confirmed stay stored; run the command again for the rest.');
    stopUploadsAndExit();
  };
  process.on('SIGINT', handler);
  return () => process.off('SIGINT', handler);
}

/** How to name the files in a webhook delivery (stderr: stdout stays the plain list). */
function deliveryHint(files: UploadedFile[]): string[] {
  const shown = files.slice(0, 3).map((f) => `    ${JSON.stringify({ name: f.name, sha256: f.sha256, size: f.size })}`);
  return [
    '',
    `Name ${files.length === 1 ? 'it' : 'them'} in a webhook delivery's inputs by sha256 and size (docs/batches.md, "Send a delivery"):`,
    `  {"inputs": [`,
    shown.join(',\n') + (files.length > shown.length ? `,\n    ${dim(`… ${files.length - shown.length} more`)}` : ''),
    '  ]}',
  ];
}

export default command(spec, async (args) => {
  const json = bool(args, 'json');
  const hashed = await hashFiles(args.positionals, process.cwd());
  // One encoding per blob, as for `rgrid run`: the first file with that content decides.
  const blobs = new Map<string, LocalBlob>();
  for (const f of hashed) {
    if (!blobs.has(f.sha256)) blobs.set(f.sha256, { sha256: f.sha256, size: f.size, path: f.abs, label: f.path, encoding: encodingFor(f.abs, f.size) });
  }
  const declared: BlobDeclaration[] = [...blobs.values()].map((b) => ({ sha256: b.sha256, size: b.size, ...(b.encoding === 'gzip' ? { encoding: 'gzip' as const } : {}) }));

  const { client } = await apiContext(args);
  const uploaded = new Set<string>();
  const release = onInterrupt();
  try {
    for (let i = 0; i < declared.length; i += MAX_BLOBS_PER_REQUEST) {
      const part = declared.slice(i, i + MAX_BLOBS_PER_REQUEST);
      const { uploads } = await client.blobUploads({ blobs: part });
      if (uploads.length) {
        const bytes = uploads.reduce((n, u) => n + (blobs.get(u.sha256)?.size ?? 0), 0);
        log.info(`Uploading ${uploads.length} ${uploads.length === 1 ? 'file' : 'files'} (${formatBytes(bytes)})…`);
        await uploadBlobs(uploads, blobs, { multipart: client, onNote: (m) => log.debug(m) });
        for (const u of uploads) uploaded.add(u.sha256);
      }
      // Also for blobs already stored: confirming marks them used, which keeps them from the retention sweep.
      await client.confirmBlobs({ blobs: part });
    }
  } finally {
    release();
  }

  const files: UploadedFile[] = hashed.map((f) => ({
    path: f.path,
    name: basename(f.abs),
    sha256: f.sha256,
    size: f.size,
    encoding: blobs.get(f.sha256)!.encoding ?? 'identity',
    status: uploaded.has(f.sha256) ? 'uploaded' : 'stored',
  }));
  if (json) {
    printJson({ files });
    return;
  }
  const sent = files.filter((f) => f.status === 'uploaded').length;
  if (sent === 0) log.success(`${files.length === 1 ? 'Already stored' : `All ${files.length} files already stored`}; nothing was uploaded.`);
  else log.success(`Stored ${files.length} ${files.length === 1 ? 'file' : 'files'}${sent < files.length ? ` (${sent} uploaded, ${files.length - sent} already stored)` : ''}.`);
  // sha256sum-like lines: easy to read and to cut.
  const width = Math.max(...files.map((f) => String(f.size).length));
  process.stdout.write(files.map((f) => `${f.sha256}  ${String(f.size).padStart(width)}  ${f.path}`).join('\n') + '\n');
  for (const line of deliveryHint(files)) note(line);
});
