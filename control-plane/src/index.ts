/** Worker entry: the HTTP app, the scheduled handler, and the Durable Object classes. */
import { createApp } from './app.js';
import type { Bindings } from './env.js';
import { runFleetCron } from './fleet/check.js';
import { runRetentionCron } from './retention/cron.js';

export { Dispatcher } from './dispatch/dispatcher.js';
export { BatchTracker } from './batches/tracker.js';

const app = createApp();

export default {
  fetch: app.fetch,
  async scheduled(_controller: ScheduledController, env: Bindings, ctx: ExecutionContext) {
    ctx.waitUntil(runRetentionCron(env));
    ctx.waitUntil(runFleetCron(env));
  },
} satisfies ExportedHandler<Bindings>;
