/**
 * What the local stack keeps in its data directory between starts (mode 0600): the random admin
 * and S3 secrets, and the account, API key and registration token it bootstrapped. D1 persists
 * in the same directory, so these stay valid across restarts; if D1 was wiped they are remade.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { CliError } from '../errors.js';

export const DevState = z.object({
  /** Bearer token of /admin/v1 (the Worker's ADMIN_SECRET). */
  adminSecret: z.string().min(16),
  /** Credentials the control plane signs presigned URLs with; the S3 store verifies them. */
  s3: z.object({ accessKeyId: z.string().min(1), secretAccessKey: z.string().min(1) }),
  accountId: z.string().optional(),
  /** The user API key the CLI is configured with. */
  apiKey: z.string().optional(),
  /** Registration token of the `default` pool (also written to <dataDir>/registration-token). */
  registrationToken: z.string().optional(),
});
export type DevState = z.infer<typeof DevState>;

export const STATE_FILE = 'state.json';
export const TOKEN_FILE = 'registration-token';

const secret = (bytes: number) => randomBytes(bytes).toString('hex');

export async function writePrivate(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, text, { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, path);
}

export async function loadState(dataDir: string): Promise<DevState> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const path = join(dataDir, STATE_FILE);
  let raw: string | undefined;
  try {
    raw = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (raw !== undefined) {
    const parsed = DevState.safeParse(JSON.parse(raw));
    if (parsed.success) return parsed.data;
    throw new CliError(`${path} is damaged: ${parsed.error.issues[0]?.message}`, { hint: `Delete ${dataDir} to start the local stack from scratch.` });
  }
  const state: DevState = { adminSecret: secret(24), s3: { accessKeyId: `rgriddev${secret(6)}`, secretAccessKey: secret(20) } };
  await saveState(dataDir, state);
  return state;
}

export async function saveState(dataDir: string, state: DevState): Promise<void> {
  await writePrivate(join(dataDir, STATE_FILE), JSON.stringify(state, null, 2) + '\n');
}
