/**
 * Identifier formats. Every id is a fixed prefix plus 24 lowercase base32 characters
 * (120 random bits), so ids are safe in URLs, file names and log lines, and a glance at the
 * prefix tells what kind of thing an id names.
 */
import { z } from 'zod';

export const ID_PREFIXES = {
  account: 'acct',
  apiKey: 'key',
  execution: 'exec',
  batch: 'batch',
  runner: 'rnr',
  pool: 'pool',
  registrationToken: 'reg',
  artifact: 'art',
  webhook: 'wh',
  server: 'srv',
} as const;

export type IdKind = keyof typeof ID_PREFIXES;

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';
const RANDOM_LEN = 24;

export function randomToken(length: number): string {
  const bytes = new Uint8Array(length);
  crypto.getRandomValues(bytes);
  let out = '';
  for (const b of bytes) out += ALPHABET[b & 31];
  return out;
}

export function newId(kind: IdKind): string {
  return `${ID_PREFIXES[kind]}_${randomToken(RANDOM_LEN)}`;
}

export function idPattern(kind: IdKind): RegExp {
  return new RegExp(`^${ID_PREFIXES[kind]}_[a-z2-7]{${RANDOM_LEN}}$`);
}

export function isId(kind: IdKind, value: string): boolean {
  return idPattern(kind).test(value);
}

/** zod schema for an id of one kind, with a message that names the expected format. */
export function idSchema(kind: IdKind) {
  return z
    .string()
    .regex(idPattern(kind), `expected an id like ${ID_PREFIXES[kind]}_${'x'.repeat(RANDOM_LEN)}`);
}

export const ExecutionId = idSchema('execution');
export const BatchId = idSchema('batch');
export const RunnerId = idSchema('runner');

/** Secrets: user API keys, runner tokens and registration tokens. Only their sha256 is stored. */
export const SECRET_PREFIXES = {
  apiKey: 'rgrid_sk_',
  runnerToken: 'rgrid_rt_',
  registrationToken: 'rgrid_reg_',
} as const;

export function newSecret(kind: keyof typeof SECRET_PREFIXES): string {
  return SECRET_PREFIXES[kind] + randomToken(40);
}

/** The part of a secret that may be shown again later (lists, logs): prefix + 6 characters. */
export function visiblePrefix(secret: string): string {
  const kind = Object.values(SECRET_PREFIXES).find((p) => secret.startsWith(p)) ?? '';
  return secret.slice(0, kind.length + 6);
}
