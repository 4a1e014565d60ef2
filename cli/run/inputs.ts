/**
 * Which of the script's arguments are input files. An argument naming an existing file
 * (relative to the current directory, absolute, or through a symlink) is uploaded and placed in
 * the job's /work under its base name; the runner rewrites that argument to the new path. Two
 * inputs with the same base name get `name (1).ext`, the same rule as downloads.
 *
 * An argument that looks like a path (it contains a slash, or ends in a file extension) but does
 * not exist is refused before anything is sent: that is almost always a typo, and the remote run
 * would fail later and slower. Arguments after `--` are passed as they are, no detection.
 */
import { constants } from 'node:fs';
import { access, lstat, readlink, realpath, stat } from 'node:fs/promises';
import { basename, isAbsolute, resolve } from 'node:path';
import { RelativePath } from '../../shared/api/common.js';
import { usageError } from '../errors.js';
import { firstFree } from '../transfer/naming.js';

export interface DetectedInput {
  /** Index of the argument in the script's argument list. */
  arg: number;
  /** The argument as the user wrote it. */
  given: string;
  /** Real path on this machine (symlinks resolved). */
  localPath: string;
  /** Path under /work in the job. */
  remotePath: string;
}

const NUMBER = /^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i;
const URL_LIKE = /^[a-z][a-z0-9+.-]*:\/\//i;
// An extension starts with a letter, so "1.5" and "v2.0" are not file names.
const EXTENSION = /\.[A-Za-z][A-Za-z0-9_-]{0,15}$/;

/** Whether an argument that does not exist should have been a file. */
export function looksLikePath(arg: string): boolean {
  if (arg === '' || arg.startsWith('-') || NUMBER.test(arg) || URL_LIKE.test(arg) || /\s/.test(arg)) return false;
  if (arg.includes('=')) return false; // key=value settings, e.g. mode=fast or out=x.csv
  return arg.includes('/') || EXTENSION.test(basename(arg));
}

function notFound(given: string, extra = ''): Error {
  return usageError(`File not found: ${given}${extra}`, `Check the path (relative paths start from the current directory). To pass it to the script as plain text, put it after --: rgrid run SCRIPT -- ${given}`);
}

export interface DetectOptions {
  cwd: string;
  /** Names under /work that inputs must not take (the script's own name). */
  reserved?: string[];
  /** Arguments from this index on came after `--`: passed verbatim, never inspected. */
  verbatimFrom?: number;
}

export async function detectInputs(args: string[], opts: DetectOptions): Promise<DetectedInput[]> {
  const taken = new Set<string>([...(opts.reserved ?? []), '.rgrid']);
  const inputs: DetectedInput[] = [];
  const end = Math.min(opts.verbatimFrom ?? args.length, args.length);
  for (let i = 0; i < end; i++) {
    const given = args[i]!;
    if (given === '' || given.startsWith('-') || URL_LIKE.test(given) || NUMBER.test(given)) continue;
    const full = isAbsolute(given) ? given : resolve(opts.cwd, given);
    let info;
    try {
      info = await stat(full); // follows symlinks
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') {
        if (code === 'EACCES') throw usageError(`Cannot read ${given}: permission denied`, 'Fix its permissions, or pass it after -- to send it as plain text.');
        throw err;
      }
      if (!looksLikePath(given)) continue;
      // A dangling symlink deserves a precise message.
      const link = await lstat(full).catch(() => undefined);
      if (link?.isSymbolicLink()) throw notFound(given, ` (a symlink to ${await readlink(full)}, which does not exist)`);
      throw notFound(given);
    }
    if (info.isDirectory()) {
      if (!given.includes('/') && !given.includes('.')) continue; // a bare word that happens to name a folder
      throw usageError(`${given} is a directory; inputs must be files`, `Pass the files themselves (e.g. ${given.replace(/\/+$/, '')}/*.csv), or put it after -- to pass the name as text.`);
    }
    if (!info.isFile()) throw usageError(`${given} is not a regular file`, 'Inputs must be regular files.');
    try {
      await access(full, constants.R_OK);
    } catch {
      throw usageError(`Cannot read ${given}: permission denied`, 'Fix its permissions.');
    }
    const name = basename(full);
    const remotePath = firstFree(name, (c) => taken.has(c));
    if (!RelativePath.safeParse(remotePath).success) {
      throw usageError(`Cannot use ${given} as an input: its name contains characters that are not allowed (backslashes or control characters)`, 'Rename or copy the file.');
    }
    taken.add(remotePath);
    inputs.push({ arg: i, given, localPath: await realpath(full), remotePath });
  }
  return inputs;
}
