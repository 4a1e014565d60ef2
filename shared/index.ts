/** The wire contract: everything the control plane, runner and CLI agree on. */
export * from './ids.js';
export * from './errors.js';
export * from './limits.js';
export * from './hashing.js';
export * from './requirements.js';
export * from './lifecycle.js';
export * from './api/common.js';
export * from './api/executions.js';
export * from './api/runner.js';
export * from './api/admin.js';
export * from './api/batches.js';
export * from './api/webhooks.js';
export * from './api/cache.js';
