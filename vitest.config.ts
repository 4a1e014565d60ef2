import { defineConfig } from 'vitest/config';

/**
 * Two projects: the control plane's tests run inside workerd (real D1 and Durable Objects);
 * everything else (shared, runner, CLI, end-to-end) runs in Node against real processes.
 */
export default defineConfig({
  test: {
    projects: [
      'control-plane/vitest.config.ts',
      {
        test: {
          name: 'node',
          include: ['bin/**/*.test.ts', 'shared/**/*.test.ts', 'runner-agent/**/*.test.ts', 'cli/**/*.test.ts', 'test/**/*.test.ts', 'control-plane/**/*.node.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          pool: 'forks',
          // Nothing a test starts may reach a registry: runners never pull missing images here.
          env: { RGRID_RUNNER_PULL_IMAGES: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false' },
        },
      },
    ],
  },
});
