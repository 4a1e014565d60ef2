import { loadConfig, type Bindings } from '../env.js';
import { getDb } from '../db/client.js';
import { ObjectStore } from '../storage/s3.js';
import { sweep } from './sweep.js';

/** Cron entry: one sweep pass; a large backlog drains over successive runs. */
export async function runRetentionCron(env: Bindings): Promise<void> {
  const config = loadConfig(env);
  const result = await sweep(getDb(env.DB), new ObjectStore(config.s3), Date.now(), config.artifactRetentionDays);
  if (result.artifactsExpired || result.blobsDeleted) console.log('retention sweep', result);
}
