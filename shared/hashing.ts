/**
 * Content hashes and cache keys. These run unchanged in the Worker, the runner and the CLI
 * (WebCrypto only); streaming a file's sha256 in Node lives in ./hash-file.ts.
 *
 * script key = sha256("rgrid-script-v1", runtime, sha256(script bytes))
 * env key    = sha256("rgrid-env-v1", runtime, base image, normalized requirements)
 * Hashing the script's own sha256 rather than its bytes gives the same key for the same bytes and
 * lets the control plane compute keys from declared hashes without ever seeing file contents.
 */
import { normalizeRequirements } from './requirements.js';

const encoder = new TextEncoder();

export async function sha256Hex(data: string | Uint8Array | ArrayBuffer): Promise<string> {
  const bytes = typeof data === 'string' ? encoder.encode(data) : data;
  const digest = await crypto.subtle.digest('SHA-256', bytes as BufferSource);
  return toHex(new Uint8Array(digest));
}

export function toHex(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) out += b.toString(16).padStart(2, '0');
  return out;
}

/** Fields are joined with NUL so that no two different field lists hash the same text. */
function framed(parts: string[]): string {
  return parts.join('\u0000');
}

export async function scriptKey(runtime: string, scriptSha256: string): Promise<string> {
  return sha256Hex(framed(['rgrid-script-v1', runtime, scriptSha256]));
}

export async function envKey(runtime: string, baseImage: string, requirementsText: string): Promise<string> {
  return sha256Hex(framed(['rgrid-env-v1', runtime, baseImage, normalizeRequirements(requirementsText)]));
}

/** Image tag for an environment: stable, short, and tied to the env key. */
export function envImageTag(envKeyHex: string): string {
  return `rgrid-env:${envKeyHex.slice(0, 32)}`;
}

export const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * result key = sha256("rgrid-result-v1", script key, env key, args, env, sorted (path, sha256) of
 * inputs): two executions with the same result key compute the same thing, so a succeeded one's
 * outputs can stand in for a new run (opt-in result reuse).
 */
export async function resultKey(
  scriptKeyHex: string,
  envKeyHex: string,
  args: string[],
  env: Record<string, string>,
  inputs: { path: string; sha256: string }[],
): Promise<string> {
  const files = [...inputs].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)).map((i) => [i.path, i.sha256]);
  const vars = Object.entries(env).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return sha256Hex(framed(['rgrid-result-v1', scriptKeyHex, envKeyHex, JSON.stringify(args), JSON.stringify(vars), JSON.stringify(files)]));
}
