import { defineConfig } from 'vitest/config';

const nodeProject = {
  testTimeout: 60_000,
  hookTimeout: 120_000,
  pool: 'forks' as const,
  // Nothing a test starts may reach a registry: runners never pull missing images here.
  env: { RGRID_RUNNER_PULL_IMAGES: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false' },
};

/**
 * Three projects: the control plane's tests run inside workerd (real D1 and Durable Objects);
 * everything else (shared, runner, CLI, end-to-end) runs in Node against real processes, two
 * files at a time (most of their time is spent waiting on containers and processes); then the
 * reliability suite (test/reliability, and the dispatch chaos test in test/chaos) runs alone, one
 * file at a time, because its fault tests measure requeue and kill times against leases.
 */
export default defineConfig({
  test: {
    maxWorkers: 2,
    projects: [
      'control-plane/vitest.config.ts',
      {
        test: {
          ...nodeProject,
          name: 'node',
          include: ['bin/**/*.test.ts', 'shared/**/*.test.ts', 'runner-agent/**/*.test.ts', 'cli/**/*.test.ts', 'test/**/*.test.ts', 'control-plane/**/*.node.test.ts'],
          exclude: ['test/reliability/**', 'test/chaos/**'],
        },
      },
      {
        test: {
          ...nodeProject,
          name: 'reliability',
          include: ['test/reliability/**/*.test.ts', 'test/chaos/**/*.test.ts'],
          maxWorkers: 1,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
