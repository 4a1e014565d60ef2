import { fileURLToPath } from 'node:url';
import { cloudflareTest, readD1Migrations } from '@cloudflare/vitest-pool-workers';
import { defineProject } from 'vitest/config';
import { TEST_S3 } from './test/constants.js';

const migrations = await readD1Migrations(fileURLToPath(new URL('../migrations', import.meta.url)));

export default defineProject({
  plugins: [
    cloudflareTest(({ inject }) => ({
      main: './src/index.ts',
      wrangler: { configPath: '../wrangler.toml' },
      miniflare: {
        bindings: {
          ADMIN_SECRET: TEST_S3.adminSecret,
          S3_ENDPOINT: inject('s3Endpoint'),
          S3_BUCKET: TEST_S3.bucket,
          S3_REGION: TEST_S3.region,
          S3_ACCESS_KEY_ID: TEST_S3.accessKeyId,
          S3_SECRET_ACCESS_KEY: TEST_S3.secretAccessKey,
          LEASE_SECONDS: '30',
          MAX_ATTEMPTS: '2',
          MAX_FILE_BYTES: String(64 * 1024 * 1024),
          MAX_OUTPUTS_PER_EXECUTION: '5',
          TEST_MIGRATIONS: migrations,
        },
      },
    })),
  ],
  test: {
    name: 'workers',
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    exclude: ['**/*.node.test.ts'],
    globalSetup: ['./test/global-setup.ts'],
    setupFiles: ['./test/apply-migrations.ts'],
    testTimeout: 30_000,
  },
});
