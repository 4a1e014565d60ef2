/** Helpers for the fleet tests in workerd: an autoscaler wired to real D1, real Dispatchers and a fake Hetzner. */
import { env } from 'cloudflare:test';
import { expect } from 'vitest';
import { FakeHetzner, type FakeHetznerOptions, type FakeServer } from '../../test/fleet/fake-hetzner.js';
import { parseEnvFile } from '../../shared/fleet/user-data.js';
import type { FleetPoolConfigInput } from '../../shared/fleet/api.js';
import { getDb } from '../src/db/client.js';
import { loadConfig } from '../src/env.js';
import { HetznerClient } from '../src/fleet/hetzner.js';
import { reconcilePool, type FleetContext } from '../src/fleet/reconcile.js';
import { poolQueue, requestDrain } from '../src/dispatch/shards.js';
import { admin, call } from './helpers.js';

export const HCLOUD_TOKEN = 'hcloud-test-token';

export interface Fleet {
  fake: FakeHetzner;
  ctx: FleetContext;
  /** The autoscaler's clock (runners' heartbeats use the real one). */
  clock: { now: number };
  reconcile(pool: string): ReturnType<typeof reconcilePool>;
}

/** `clientToken`: the token the autoscaler sends (the fake accepts HCLOUD_TOKEN). */
export function fleet(opts: Partial<FakeHetznerOptions> & { clientToken?: string } = {}): Fleet {
  const { clientToken = HCLOUD_TOKEN, ...fakeOpts } = opts;
  const fake = new FakeHetzner({ token: HCLOUD_TOKEN, ...fakeOpts });
  const clock = { now: Date.now() };
  const base = loadConfig(env);
  const ctx: FleetContext = {
    db: getDb(env.DB),
    config: { ...base, fleet: { ...base.fleet, hetznerToken: clientToken, publicUrl: 'https://rgrid.example.com' } },
    hetzner: new HetznerClient({ token: clientToken, baseUrl: 'https://api.hetzner.test/v1', fetch: fake.fetch, retry: { baseDelayMs: 5, maxDelayMs: 20 } }),
    queue: (pool) => poolQueue(env, pool),
    drainRunner: (runnerId) => requestDrain(env, runnerId),
    now: () => clock.now,
  };
  return { fake, ctx, clock, reconcile: (pool) => reconcilePool(ctx, pool) };
}

export async function configurePool(pool: string, config: FleetPoolConfigInput) {
  const r = await admin('PUT', `/fleet/pools/${pool}`, config);
  expect(r.status, r.text).toBe(200);
  return r.json;
}

/** The runner settings a server's user-data carries. */
export function envOf(server: FakeServer): Record<string, string> {
  const m = /path: "\/etc\/rgrid-runner.env"[\s\S]*?content: \|\n((?: {6}.*\n)+)/.exec(server.userData ?? '');
  expect(m, 'user-data writes /etc/rgrid-runner.env').toBeTruthy();
  return parseEnvFile(m![1]!.replace(/^ {6}/gm, ''));
}

/** Registers a runner the way the server's runner would: with its one-time token and its server label. */
export async function bootRunner(server: FakeServer, slots = 2) {
  const e = envOf(server);
  const labels = Object.fromEntries((e.RGRID_RUNNER_LABELS ?? '').split(',').filter(Boolean).map((kv) => kv.split('=', 2) as [string, string]));
  const r = await call('POST', '/runner/v1/register', { body: { registrationToken: e.RGRID_RUNNER_REGISTRATION_TOKEN, name: e.RGRID_RUNNER_NAME, slots, labels } });
  expect(r.status, r.text).toBe(201);
  return r.json as { runnerId: string; runnerToken: string };
}

export async function heartbeat(runnerToken: string, body: { activeJobs: number; draining?: boolean }) {
  const r = await call('POST', '/runner/v1/heartbeat', { token: runnerToken, body });
  expect(r.status, r.text).toBe(200);
  return r.json as { ok: true; drain: boolean; cancel: string[]; stale: unknown[] };
}

export { admin };
