/** Admin API (/admin/v1), authorized by the ADMIN_SECRET Worker secret: bootstraps accounts, keys and pools. */
import { z } from 'zod';
import { Timestamp } from './common.js';

export const CreateAccountRequest = z.strictObject({ name: z.string().min(1).max(128) });
export type CreateAccountRequest = z.infer<typeof CreateAccountRequest>;
export const Account = z.object({ id: z.string(), name: z.string(), createdAt: Timestamp });
export const CreateAccountResponse = z.object({ account: Account });
export type CreateAccountResponse = z.infer<typeof CreateAccountResponse>;

export const CreateApiKeyRequest = z.strictObject({ name: z.string().min(1).max(128).default('default') });
export const ApiKeyView = z.object({ id: z.string(), name: z.string(), prefix: z.string(), createdAt: Timestamp, revokedAt: Timestamp.nullable() });
export const CreateApiKeyResponse = z.object({
  apiKey: ApiKeyView,
  /** The key itself: shown once, stored only as a hash. */
  key: z.string(),
});
export type CreateApiKeyResponse = z.infer<typeof CreateApiKeyResponse>;
export const RevokeApiKeyResponse = z.object({ apiKey: ApiKeyView });

export const CreatePoolRequest = z.strictObject({
  name: z.string().min(1).max(64).regex(/^[a-z0-9][a-z0-9-]*$/, 'lowercase letters, digits and -'),
  /**
   * How many Dispatcher objects share the pool's queue (1 by default). Posting an existing pool
   * with a larger number raises it; it is never lowered (live executions stay in their shard).
   */
  dispatchShards: z.number().int().min(1).max(64).optional(),
});
export const Pool = z.object({ id: z.string(), name: z.string(), dispatchShards: z.number().int(), createdAt: Timestamp });
export const CreatePoolResponse = z.object({ pool: Pool });
export type CreatePoolResponse = z.infer<typeof CreatePoolResponse>;

export const CreateRegistrationTokenRequest = z.strictObject({
  /** How many runners may register with it; unlimited when absent. */
  maxUses: z.number().int().min(1).max(100000).optional(),
  expiresInSeconds: z.number().int().min(60).max(365 * 86400).optional(),
});
export const CreateRegistrationTokenResponse = z.object({
  id: z.string(),
  pool: z.string(),
  /** Shown once, stored only as a hash. */
  token: z.string(),
  expiresAt: Timestamp.nullable(),
});
export type CreateRegistrationTokenResponse = z.infer<typeof CreateRegistrationTokenResponse>;
