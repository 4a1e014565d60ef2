/**
 * The autoscaler's executor in workerd: real D1, real Dispatchers and runner API, and a fake
 * Hetzner API (test/fleet/fake-hetzner.ts) called in-process through the client's fetch.
 */
import { env } from 'cloudflare:test';
import { eq } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { getDb, schema } from '../src/db/client.js';
import { HetznerClient, HetznerError } from '../src/fleet/hetzner.js';
import { admin, call, newTenant, queuedExecution } from './helpers.js';
import { bootRunner, configurePool, envOf, fleet, heartbeat, HCLOUD_TOKEN } from './fleet-helpers.js';

const db = () => getDb(env.DB);
const serverRow = (id: string) => db().select().from(schema.servers).where(eq(schema.servers.id, id)).get();
const fast = { scaleDown: 'idle' as const, idleTimeoutSeconds: 0, drainGraceSeconds: 0, slotsPerServer: 2, maxServers: 3 };

describe('fleet: scale up', () => {
  it('creates labeled servers for queued work, each with its own one-time registration token', async () => {
    const t = await newTenant();
    await configurePool(t.pool, { ...fast, serverType: 'cx32', location: 'nbg1', image: 'ubuntu-24.04', sshKeys: ['ops'], labels: { team: 'data' } });
    for (let i = 0; i < 3; i++) await queuedExecution(t);
    const f = fleet();
    const res = await f.reconcile(t.pool);
    expect(res.skipped).toBeNull();
    expect(res.decisions.map((d) => [d.action, d.outcome])).toEqual([['create', 'ok'], ['create', 'ok']]);
    expect(res.decisions[0]!.reason).toMatch(/3 job\(s\) waiting, 0 free slot\(s\)/);

    const servers = [...f.fake.servers.values()];
    expect(servers).toHaveLength(2);
    const tokens = new Set<string>();
    for (const s of servers) {
      expect(s.labels).toMatchObject({ 'rgrid-managed': 'true', 'rgrid-pool': t.pool, team: 'data' });
      expect(s.labels['rgrid-server']).toMatch(/^srv_/);
      expect([s.serverType, s.location, s.image, s.sshKeys]).toEqual(['cx32', 'nbg1', 'ubuntu-24.04', ['ops']]);
      expect(s.userData).toMatch(/^#cloud-config\n/);
      const e = envOf(s);
      expect(e).toMatchObject({ RGRID_RUNNER_API_URL: 'https://rgrid.example.com', RGRID_RUNNER_POOL: t.pool, RGRID_RUNNER_SLOTS: '2', RGRID_RUNNER_LABELS: `rgrid.server=${s.labels['rgrid-server']}` });
      tokens.add(e.RGRID_RUNNER_REGISTRATION_TOKEN!);
      const row = await serverRow(s.labels['rgrid-server']!);
      expect(row).toMatchObject({ status: 'booting', providerId: String(s.id), name: s.name });
    }
    expect(tokens.size).toBe(2);

    // The token registers exactly one runner; the server turns active when its runner shows up.
    const s0 = servers[0]!;
    const runner = await bootRunner(s0);
    const again = await call('POST', '/runner/v1/register', { body: { registrationToken: envOf(s0).RGRID_RUNNER_REGISTRATION_TOKEN, name: 'copy', slots: 2 } });
    expect(again.status).toBe(401);
    const next = await f.reconcile(t.pool);
    expect(next.decisions.filter((d) => d.action === 'create')).toEqual([]);
    expect(await serverRow(s0.labels['rgrid-server']!)).toMatchObject({ status: 'active', runnerId: runner.runnerId });
    const r = await db().select().from(schema.runners).where(eq(schema.runners.id, runner.runnerId)).get();
    expect(r!.serverId).toBe(s0.labels['rgrid-server']);
  });

  it('keeps minServers without any work and never exceeds maxServers', async () => {
    const t = await newTenant();
    await configurePool(t.pool, { minServers: 1, maxServers: 2 });
    const f = fleet();
    expect((await f.reconcile(t.pool)).decisions.map((d) => d.action)).toEqual(['create']);
    for (let i = 0; i < 8; i++) await queuedExecution(t);
    const res = await f.reconcile(t.pool);
    expect(res.decisions.map((d) => d.action)).toEqual(['create', 'hold']);
    expect(res.decisions[1]!.reason).toMatch(/at maxServers \(2 of 2\)/);
    // The same hold is not logged again on every check.
    expect((await f.reconcile(t.pool)).decisions).toEqual([]);
    expect(f.fake.servers.size).toBe(2);
  });
});

describe('fleet: scale down', () => {
  it('drains an idle runner through its heartbeat, then deletes its server once it is drained', async () => {
    const t = await newTenant();
    await configurePool(t.pool, { ...fast, drainGraceSeconds: 30 });
    await queuedExecution(t);
    const f = fleet();
    await f.reconcile(t.pool);
    const [s] = [...f.fake.servers.values()];
    const runner = await bootRunner(s!);
    // Its job done (canceled here: no container in this test), the runner is idle and nothing waits.
    const list = await call('GET', `/api/v1/executions?limit=5`, { token: t.key });
    for (const e of list.json.executions) await call('POST', `/api/v1/executions/${e.id}/cancel`, { token: t.key });
    expect((await heartbeat(runner.runnerToken, { activeJobs: 0 })).drain).toBe(false);

    const drained = await f.reconcile(t.pool);
    expect(drained.decisions.map((d) => [d.action, d.serverId])).toEqual([['drain', s!.labels['rgrid-server']]]);
    expect(drained.decisions[0]!.reason).toMatch(/idle for \d+ s/);
    expect((await heartbeat(runner.runnerToken, { activeJobs: 0 })).drain).toBe(true);

    // The runner reports it is draining and idle; the server is deleted after the drain grace.
    await heartbeat(runner.runnerToken, { activeJobs: 0, draining: true });
    expect((await f.reconcile(t.pool)).decisions.filter((d) => d.action === 'delete')).toEqual([]);
    f.clock.now += 31_000;
    const deleted = await f.reconcile(t.pool);
    expect(deleted.decisions.map((d) => [d.action, d.outcome])).toEqual([['delete', 'ok']]);
    expect(deleted.decisions[0]!.reason).toMatch(/finished draining/);
    expect(f.fake.servers.size).toBe(0);
    expect(await serverRow(s!.labels['rgrid-server']!)).toMatchObject({ status: 'deleted', deletedReason: expect.stringMatching(/finished draining/) });
  });

  it('deletes a server whose runner never registered, and revokes its token', async () => {
    const t = await newTenant();
    await configurePool(t.pool, { minServers: 1, bootTimeoutSeconds: 600 });
    const f = fleet();
    await f.reconcile(t.pool);
    const [s] = [...f.fake.servers.values()];
    f.clock.now += 601_000;
    const res = await f.reconcile(t.pool);
    // Deleted, and replaced to keep minServers.
    expect(res.decisions.map((d) => d.action)).toEqual(['delete', 'create']);
    expect(res.decisions[0]!.reason).toMatch(/runner never registered/);
    expect(f.fake.servers.has(s!.id)).toBe(false);
    const late = await call('POST', '/runner/v1/register', { body: { registrationToken: envOf(s!).RGRID_RUNNER_REGISTRATION_TOKEN, name: 'late', slots: 2 } });
    expect(late.status).toBe(401);
  });

  it('deletes a server whose runner stopped heartbeating', async () => {
    const t = await newTenant();
    await configurePool(t.pool, { minServers: 1, silentTimeoutSeconds: 60 });
    const f = fleet();
    await f.reconcile(t.pool);
    const [s] = [...f.fake.servers.values()];
    await bootRunner(s!);
    f.clock.now += 61_000;
    const res = await f.reconcile(t.pool);
    expect(res.decisions[0]).toMatchObject({ action: 'delete', outcome: 'ok', serverId: s!.labels['rgrid-server'] });
    expect(res.decisions[0]!.reason).toMatch(/stopped heartbeating/);
  });

  it('touches only servers carrying its own labels', async () => {
    const t = await newTenant();
    const other = await newTenant();
    await configurePool(t.pool, { ...fast, bootTimeoutSeconds: 1 });
    const f = fleet();
    const foreign = f.fake.addServer({ name: 'database-1', labels: { role: 'db' } });
    const otherPool = f.fake.addServer({ name: 'other-pool-1', labels: { 'rgrid-managed': 'true', 'rgrid-pool': other.pool } });
    const unmanaged = f.fake.addServer({ name: 'same-pool-unmanaged', labels: { 'rgrid-pool': t.pool } });
    const orphan = f.fake.addServer({ name: 'orphan-1', labels: { 'rgrid-managed': 'true', 'rgrid-pool': t.pool }, created: new Date(Date.now() - 3600_000).toISOString() });
    const res = await f.reconcile(t.pool);
    // The orphan carries the pool's labels but no runner ever registered for it: deleted.
    expect(res.decisions.map((d) => [d.action, d.providerId])).toEqual([['delete', String(orphan.id)]]);
    expect([...f.fake.servers.keys()].sort()).toEqual([foreign.id, otherPool.id, unmanaged.id].sort());
    expect(f.fake.log.filter((l) => l.method === 'DELETE').map((l) => l.path)).toEqual([`/v1/servers/${orphan.id}`]);
    expect(f.fake.log.find((l) => l.method === 'GET')!.path).toContain(`label_selector=${encodeURIComponent(`rgrid-managed=true,rgrid-pool=${t.pool}`)}`);
  });
});

describe('fleet: Hetzner errors', () => {
  it('records a quota error clearly and skips the rest of the creates', async () => {
    const t = await newTenant();
    await configurePool(t.pool, fast);
    for (let i = 0; i < 6; i++) await queuedExecution(t);
    const f = fleet({ serverLimit: 1 });
    const res = await f.reconcile(t.pool);
    expect(res.decisions.map((d) => [d.action, d.outcome])).toEqual([
      ['create', 'ok'],
      ['create', 'failed'],
      ['create', 'skipped'],
    ]);
    expect(res.decisions[1]!.error).toMatch(/Hetzner project limit reached \(resource_limit_exceeded: server limit exceeded\)/);
    expect(res.decisions[2]!.error).toMatch(/not tried: resource_limit_exceeded/);
    const failed = await serverRow(res.decisions[1]!.serverId!);
    expect(failed).toMatchObject({ status: 'failed' });
    expect(failed!.deletedAt).not.toBeNull();
  });

  it('backs off and retries when rate limited (429)', async () => {
    const t = await newTenant();
    await configurePool(t.pool, { minServers: 1 });
    const f = fleet();
    f.fake.failNext(2, { status: 429, code: 'rate_limit_exceeded', message: 'limit of 3600 requests per hour reached' });
    const res = await f.reconcile(t.pool);
    expect(res.decisions.map((d) => [d.action, d.outcome])).toEqual([['create', 'ok']]);
    expect(f.fake.log.slice(0, 3).map((l) => l.status)).toEqual([429, 429, 200]);
    expect(f.ctx.hetzner.rateLimited).toBe(2);
  });

  it('reports a refused token as an error and changes nothing', async () => {
    const t = await newTenant();
    await configurePool(t.pool, { minServers: 1 });
    const f = fleet({ clientToken: 'wrong-token' });
    const res = await f.reconcile(t.pool);
    expect(res.decisions).toHaveLength(1);
    expect(res.decisions[0]).toMatchObject({ action: 'error', outcome: 'failed' });
    expect(res.decisions[0]!.error).toMatch(/Hetzner refused the API token \(unauthorized: unable to authenticate\).*HETZNER_TOKEN/);
    expect(f.fake.servers.size).toBe(0);
  });

  it('lists every page of servers', async () => {
    const f = fleet();
    for (let i = 0; i < 60; i++) f.fake.addServer({ name: `s-${i}`, labels: { 'rgrid-managed': 'true', 'rgrid-pool': 'paged' } });
    f.fake.addServer({ name: 'x', labels: {} });
    expect(await f.ctx.hetzner.listServers('rgrid-managed=true,rgrid-pool=paged')).toHaveLength(60);
    expect(f.fake.log.map((l) => new URLSearchParams(l.path.split('?')[1]).get('page'))).toEqual(['1', '2']);
  });

  it('treats a server that is already gone as deleted, and says what other errors mean', async () => {
    const f = fleet();
    expect(await f.ctx.hetzner.deleteServer(12345)).toBe(false);
    const client = new HetznerClient({ token: HCLOUD_TOKEN, baseUrl: 'https://api.hetzner.test/v1', fetch: f.fake.fetch, retry: { tries: 1 } });
    f.fake.failNext(1, { status: 403, code: 'token_readonly', message: 'token is read-only' });
    const err = await client.createServer({ name: 'x', server_type: 'cx22', image: 'debian-12' }).catch((e) => e);
    expect(err).toBeInstanceOf(HetznerError);
    expect(err.message).toMatch(/needs read\/write permission/);
  });
});

describe('fleet: admin API', () => {
  it('validates pool configs', async () => {
    const t = await newTenant();
    const bad = await admin('PUT', `/fleet/pools/${t.pool}`, { minServers: 3, maxServers: 1 });
    expect(bad.status).toBe(400);
    expect(bad.json.error.message).toMatch(/minServers must not exceed maxServers/);
    const managed = await admin('PUT', `/fleet/pools/${t.pool}`, { runnerEnv: { RGRID_RUNNER_API_URL: 'http://evil' } });
    expect(managed.status).toBe(400);
    const label = await admin('PUT', `/fleet/pools/${t.pool}`, { labels: { 'rgrid-pool': 'x' } });
    expect(label.status).toBe(400);
    expect((await admin('PUT', '/fleet/pools/no-such-pool', {})).status).toBe(404);
    const ok = await admin('PUT', `/fleet/pools/${t.pool}`, { maxServers: 4 });
    expect(ok.status).toBe(200);
    expect(ok.json.config).toMatchObject({ enabled: true, minServers: 0, maxServers: 4, scaleDown: 'billing-hour', serverType: 'cx22' });
    expect((await call('GET', '/admin/v1/fleet/pools', { token: t.key })).status).toBe(401);
  });

  it('shows servers, runners, slots, queue depth and decisions', async () => {
    const t = await newTenant();
    await configurePool(t.pool, fast);
    for (let i = 0; i < 3; i++) await queuedExecution(t);
    const f = fleet();
    await f.reconcile(t.pool);
    await bootRunner([...f.fake.servers.values()][0]!);
    const st = await admin('GET', `/fleet/status?pool=${t.pool}`);
    expect(st.status, st.text).toBe(200);
    const p = st.json.pools[0];
    expect(p.pool).toBe(t.pool);
    expect(p.queue).toEqual({ ready: 3, leased: 0 });
    expect(p.servers).toHaveLength(2);
    expect(p.runners).toHaveLength(1);
    expect(p.slots).toEqual({ total: 2, busy: 0, free: 2 });
    expect(p.decisions.map((d: { action: string }) => d.action)).toEqual(['create', 'create']);
  });

  it('refuses an on-demand check while the autoscaler is off', async () => {
    const r = await admin('POST', '/fleet/reconcile', {});
    expect(r.status).toBe(409);
    expect(r.json.error.message).toMatch(/HETZNER_TOKEN is not set/);
  });

  it('runs one check per pool at a time', async () => {
    const t = await newTenant();
    await configurePool(t.pool, { minServers: 1 });
    const f = fleet();
    const [a, b] = await Promise.all([f.reconcile(t.pool), f.reconcile(t.pool)]);
    expect([a.skipped, b.skipped].filter(Boolean)).toEqual(['another check of this pool is running']);
    expect(f.fake.servers.size).toBe(1);
  });
});
