/** Worker entry: the HTTP app, the scheduled handler, and the Durable Object classes. */
import { createApp } from './app.js';
import type { Bindings } from './env.js';

export { Dispatcher } from './dispatch/dispatcher.js';
export { BatchTracker } from './batches/tracker.js';

const app = createApp();

export default {
  fetch: app.fetch,
  async scheduled(_controller: ScheduledController, _env: Bindings, _ctx: ExecutionContext) {
    // Cron work (retention sweep, autoscaler) registers here as it lands.
  },
} satisfies ExportedHandler<Bindings>;
