/** Cache reporting: what was reused and, on a miss, why. */
import { z } from 'zod';
import { Sha256, Timestamp } from './common.js';

export const EnvCacheReport = z.object({
  key: Sha256,
  hit: z.boolean(),
  runtime: z.string(),
  packages: z.number().int(),
  /** When an environment with this key was first built (null: never). */
  builtAt: Timestamp.nullable(),
  /** Why it must be built, on a miss: e.g. "requirements changed since last build (+pandas==2.2.2)". */
  reason: z.string().nullable(),
  added: z.array(z.string()),
  removed: z.array(z.string()),
});

export const CacheReport = z.object({
  script: z.object({ key: Sha256, hit: z.boolean(), reason: z.string().nullable() }),
  env: EnvCacheReport,
  inputs: z.object({ hit: z.number().int(), total: z.number().int(), bytesHit: z.number().int(), bytesTotal: z.number().int() }),
  /** With reuseResults: the succeeded execution whose outputs are reused (no run). */
  result: z.object({ key: Sha256, reusedFrom: z.string().nullable() }),
});
export type CacheReport = z.infer<typeof CacheReport>;

export const CacheStatsResponse = z.object({
  script: z.object({ hits: z.number().int(), misses: z.number().int(), hitRate: z.number().nullable() }),
  env: z.object({ hits: z.number().int(), misses: z.number().int(), hitRate: z.number().nullable() }),
  input: z.object({ hits: z.number().int(), misses: z.number().int(), hitRate: z.number().nullable() }),
  result: z.object({ hits: z.number().int(), misses: z.number().int(), hitRate: z.number().nullable() }),
});
export type CacheStatsResponse = z.infer<typeof CacheStatsResponse>;
