/**
 * Fleet end to end: the control plane (Miniflare) autoscales a pool on a fake Hetzner API served
 * on 127.0.0.1, whose every server boots a real runner process configured from the rendered
 * user-data, running jobs in the real Docker daemon.
 *
 * The autoscaler runs on demand here (POST /admin/v1/fleet/reconcile, as the cron would) and on
 * its own right after the batch is submitted (the Dispatcher's immediate check); the assertions
 * hold whichever of the two acts first.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FleetDecision, FleetPoolConfigInput, FleetPoolStatus } from '../../shared/fleet/api.js';
import { startFakeCloud, type FakeCloud } from './fake-cloud.js';
import { ensureCloudInit, startFleetStack, type FleetStack } from './stack.js';

const POOL = 'fleet-it';
const TOKEN = 'hcloud-it-token-0123456789';
const PIP_INDEX_URL = process.env.RGRID_PIP_INDEX_URL ?? 'http://127.0.0.1:3141/simple/';
const VERBOSE = Boolean(process.env.RGRID_TEST_VERBOSE);

const BASE: FleetPoolConfigInput = {
  minServers: 0,
  maxServers: 3,
  slotsPerServer: 2,
  scaleDown: 'idle',
  idleTimeoutSeconds: 2,
  drainGraceSeconds: 1,
  bootTimeoutSeconds: 20,
  silentTimeoutSeconds: 20,
  prePullImages: [],
  // No registry here: base images are local; and short long-polls so drains end quickly.
  runnerEnv: { RGRID_RUNNER_PIP_INDEX_URL: PIP_INDEX_URL, RGRID_RUNNER_PULL_IMAGES: 'false', RGRID_RUNNER_CLAIM_WAIT: '2' },
};

let dir: string;
let cloud: FakeCloud;
let stack: FleetStack;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const reconcile = async (): Promise<FleetDecision[]> => (await stack.admin('POST', '/fleet/reconcile', { pool: POOL })).results[0].decisions;
const status = async (): Promise<FleetPoolStatus> => (await stack.admin('GET', `/fleet/status?pool=${POOL}`)).pools[0];
const configure = (c: FleetPoolConfigInput) => stack.admin('PUT', `/fleet/pools/${POOL}`, { ...BASE, ...c });

/** Runs the autoscaler every interval until `done` holds. */
async function reconcileUntil(what: string, done: () => Promise<boolean> | boolean, timeoutMs: number, everyMs = 1000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await reconcile();
    if (await done()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}\n${JSON.stringify(await status(), null, 2)}`);
    await sleep(everyMs);
  }
}

async function allDecisions(): Promise<FleetDecision[]> {
  return (await status()).decisions;
}

beforeAll(async () => {
  await ensureCloudInit();
  dir = await mkdtemp(join(tmpdir(), 'rgrid-fleet-it-'));
  cloud = await startFakeCloud({ token: TOKEN, dir: join(dir, 'cloud'), log: VERBOSE ? (l) => console.log(l) : undefined });
  stack = await startFleetStack({ dir, hetznerApiUrl: `${cloud.url}/v1`, hetznerToken: TOKEN, pool: POOL });
}, 120_000);

afterAll(async () => {
  await cloud?.close();
  await stack?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
}, 60_000);

describe('fleet on a fake Hetzner Cloud', () => {
  it('a 50-job batch scales the pool up, completes, and the idle pool is scaled back down', async () => {
    await configure({});
    const script = Buffer.from('import sys, time\ntime.sleep(0.2)\nopen("out.txt", "w").write(f"item {sys.argv[1]}\\n")\nprint("done", sys.argv[1])\n');
    const sha256 = createHash('sha256').update(script).digest('hex');
    const created = await stack.api('POST', '/batches', {
      name: 'fleet-50',
      template: { script: { name: 'job.py', sha256, size: script.length }, pool: POOL, limits: { timeoutSeconds: 60, memoryMb: 256, cpus: 0.5 } },
      items: Array.from({ length: 50 }, (_, i) => ({ inputName: `item-${i}`, args: [String(i)] })),
    });
    for (const u of created.uploads) expect((await fetch(u.url, { method: 'PUT', body: script })).status).toBe(200);
    const batchId = created.batch.id as string;
    await stack.api('POST', `/batches/${batchId}/submit`);

    // The queue's growth alone starts servers: the Dispatcher's immediate check, before any cron.
    const deadline = Date.now() + 15_000;
    while (cloud.fake.servers.size === 0 && Date.now() < deadline) await sleep(200);
    expect(cloud.fake.servers.size, 'servers created by the immediate check').toBeGreaterThan(0);

    let peak = 0;
    await reconcileUntil(
      'the batch to finish',
      async () => {
        peak = Math.max(peak, cloud.fake.servers.size);
        const { batch } = await stack.api('GET', `/batches/${batchId}`);
        return batch.counts.succeeded + batch.counts.failed + batch.counts.canceled === 50;
      },
      90_000,
    );
    const { batch } = await stack.api('GET', `/batches/${batchId}`);
    expect(batch.counts.succeeded, JSON.stringify(batch.failures)).toBe(50);
    // 50 jobs on 2-slot servers want 25 servers; the pool stops at its max of 3.
    expect(peak).toBe(3);
    expect(cloud.machines).toHaveLength(3);
    for (const m of cloud.machines) {
      const schema = await m.schema;
      expect(schema.ok, schema.output).toBe(true);
      expect(m.env).toMatchObject({ RGRID_RUNNER_POOL: POOL, RGRID_RUNNER_SLOTS: '2', RGRID_RUNNER_API_URL: stack.url, RGRID_RUNNER_LABELS: `rgrid.server=${m.server.labels['rgrid-server']}` });
    }
    const st = await status();
    expect(st.runners.filter((r) => r.serverId).length).toBe(3);

    // Idle: each runner is drained (it exits after finishing), then its server deleted.
    await reconcileUntil('every server to be deleted', () => cloud.fake.servers.size === 0, 40_000);
    for (const m of cloud.machines) {
      expect(m.output.join('\n')).toContain('control plane asked this runner to drain');
      // Stopped: on its own after the drain, or by the delete right after it reported idle.
      expect(await m.exited).not.toBeNull();
    }
    const decisions = await allDecisions();
    const count = (a: string) => decisions.filter((d) => d.action === a && d.outcome === 'ok').length;
    expect([count('create'), count('drain'), count('delete')]).toEqual([3, 3, 3]);
    expect(decisions.find((d) => d.action === 'create')!.reason).toMatch(/job\(s\) waiting/);
    expect(decisions.find((d) => d.action === 'drain')!.reason).toMatch(/idle for \d+ s/);
    expect(decisions.find((d) => d.action === 'delete')!.reason).toMatch(/finished draining/);
    expect((await status()).servers.every((s) => s.status === 'deleted')).toBe(true);
  }, 150_000);

  it('deletes a server whose runner never registers, and replaces it', async () => {
    await configure({ minServers: 1, bootTimeoutSeconds: 6 });
    cloud.breakNextBoots(1);
    const first = await reconcile();
    expect(first.map((d) => d.action)).toEqual(['create']);
    const dud = cloud.machines.at(-1)!;
    expect(dud.broken).toBe(true);
    await reconcileUntil('the dud to be deleted', () => !cloud.fake.servers.has(dud.server.id), 20_000);
    const decisions = await allDecisions();
    const del = decisions.find((d) => d.action === 'delete' && d.providerId === String(dud.server.id))!;
    expect(del.reason).toMatch(/runner never registered/);
    // The replacement boots a working runner.
    await reconcileUntil('the replacement to be active', async () => (await status()).servers.some((s) => s.status === 'active'), 20_000);
    await configure({ minServers: 0 });
    await reconcileUntil('the pool to be empty', () => cloud.fake.servers.size === 0, 30_000);
  }, 90_000);

  it('handles a 429 with backoff and reports a quota error', async () => {
    await configure({ minServers: 1 });
    cloud.fake.failNext(2, { status: 429, code: 'rate_limit_exceeded', message: 'limit of 3600 requests per hour reached', method: 'POST' });
    const created = await reconcile();
    expect(created.map((d) => [d.action, d.outcome])).toEqual([['create', 'ok']]);
    const posts = cloud.fake.log.filter((l) => l.method === 'POST').slice(-3);
    expect(posts.map((l) => [l.status, l.code ?? null])).toEqual([
      [429, 'rate_limit_exceeded'],
      [429, 'rate_limit_exceeded'],
      [201, null],
    ]);

    cloud.fake.serverLimit = cloud.fake.servers.size;
    await configure({ minServers: 2 });
    const refused = await reconcile();
    expect(refused.map((d) => [d.action, d.outcome])).toEqual([['create', 'failed']]);
    expect(refused[0]!.error).toMatch(/Hetzner project limit reached \(resource_limit_exceeded/);
    expect((await status()).servers.filter((s) => s.status === 'failed')).toHaveLength(1);

    cloud.fake.serverLimit = 100;
    await configure({ minServers: 0 });
    await reconcileUntil('the pool to be empty', () => cloud.fake.servers.size === 0, 30_000);
  }, 60_000);
});
