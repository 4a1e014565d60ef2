import { defineConfig } from 'vitest/config';

/**
 * The dispatch chaos test (test/chaos): simulated runners, deaths, duplicate and late completions,
 * cancels, fail-fast batches and a control-plane restart against the real local stack. Not yet
 * part of `npm test` (still being tuned); `npm run test:chaos` runs it, RGRID_CHAOS_FULL=1 at full size.
 */
export default defineConfig({
  test: {
    include: ['test/chaos/**/*.test.ts'],
    testTimeout: 600_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 1,
    env: { RGRID_RUNNER_PULL_IMAGES: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false' },
  },
});
