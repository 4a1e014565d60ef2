/**
 * The runner's identity file, <workDir>/runner.json (mode 0600): who it is to one control plane.
 * Nothing about lease timing is kept: the control plane sends it with every claim and heartbeat
 * answer. Files written by earlier versions carry leaseSeconds/heartbeatSeconds; they still load,
 * and those fields are ignored.
 */
import { readFile, writeFile } from 'node:fs/promises';

export interface Identity {
  apiUrl: string;
  runnerId: string;
  runnerToken: string;
  pool: string;
}

/** The stored identity for `apiUrl`, or undefined (no file, unreadable JSON, another control plane). */
export async function loadIdentity(path: string, apiUrl: string): Promise<Identity | undefined> {
  let stored: Partial<Record<keyof Identity, unknown>>;
  try {
    stored = JSON.parse(await readFile(path, 'utf8')) as typeof stored;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || err instanceof SyntaxError) return undefined;
    throw err;
  }
  const { runnerId, runnerToken, pool } = stored ?? {};
  if (stored?.apiUrl !== apiUrl || typeof runnerId !== 'string' || typeof runnerToken !== 'string' || typeof pool !== 'string') return undefined;
  return { apiUrl, runnerId, runnerToken, pool };
}

export async function storeIdentity(path: string, identity: Identity): Promise<void> {
  const { apiUrl, runnerId, runnerToken, pool } = identity;
  await writeFile(path, JSON.stringify({ apiUrl, runnerId, runnerToken, pool }, null, 2), { mode: 0o600 });
}
