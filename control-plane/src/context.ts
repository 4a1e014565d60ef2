/** Hono context shared by every route: bindings, loaded config, and who is calling. */
import type { Context } from 'hono';
import type { Bindings, Config } from './env.js';
import type { Db } from './db/client.js';
import type { ObjectStore } from './storage/s3.js';

export interface Caller {
  accountId: string;
  accountName: string;
  apiKeyId: string;
  apiKeyPrefix: string;
}

export interface RunnerCaller {
  runnerId: string;
  poolId: string;
  poolName: string;
  /** How many Dispatcher shards the pool has (dispatch/shards.ts). */
  shards: number;
}

export interface AppEnv {
  Bindings: Bindings;
  Variables: {
    config: Config;
    db: Db;
    store: ObjectStore;
    caller: Caller;
    runner: RunnerCaller;
    now: () => number;
  };
}

export type AppContext = Context<AppEnv>;
