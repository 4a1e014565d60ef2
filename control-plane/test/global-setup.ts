/** Runs in Node before the workerd tests: starts the signature-verifying S3 store on loopback. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { startS3Store } from '../../cli/dev/s3-store.js';
import { TEST_S3 } from './constants.js';

declare module 'vitest' {
  export interface ProvidedContext {
    s3Endpoint: string;
  }
}

export default async function setup(project: TestProject) {
  const dataDir = await mkdtemp(join(tmpdir(), 'rgrid-s3-'));
  const store = await startS3Store({ port: 0, dataDir, ...TEST_S3 });
  project.provide('s3Endpoint', store.endpoint);
  return async () => {
    await store.close();
    await rm(dataDir, { recursive: true, force: true });
  };
}
