import { describe, expect, it } from 'vitest';
import { admin, blob, call, claim, createExecution, newRunner, newTenant, queuedExecution } from './helpers.js';
import { TEST_S3 } from './constants.js';

describe('auth and isolation', () => {
  it('answers 401 for a missing, malformed, unknown or revoked key', async () => {
    const t = await newTenant();
    expect((await call('GET', '/api/v1/executions')).status).toBe(401);
    const bad = await call('GET', '/api/v1/executions', { token: 'rgrid_sk_notarealkeyatall000000000000000000000' });
    expect(bad.status).toBe(401);
    expect(bad.json.error).toMatchObject({ code: 'unauthorized' });
    expect(bad.json.error.hint).toBeTruthy();
    expect((await call('GET', '/api/v1/whoami', { token: t.key })).json.account.id).toBe(t.accountId);
    const rev = await admin('POST', `/api-keys/${t.keyId}/revoke`);
    expect(rev.status).toBe(200);
    expect((await call('GET', '/api/v1/executions', { token: t.key })).status).toBe(401);
  });

  it("answers 404 for another account's executions, artifacts, logs, submit and cancel", async () => {
    const alice = await newTenant();
    const bob = await newTenant(alice.pool);
    const exec = (await createExecution(alice)).execution;
    for (const [method, path] of [
      ['GET', `/api/v1/executions/${exec.id}`],
      ['GET', `/api/v1/executions/${exec.id}/artifacts`],
      ['GET', `/api/v1/executions/${exec.id}/logs`],
      ['POST', `/api/v1/executions/${exec.id}/submit`],
      ['POST', `/api/v1/executions/${exec.id}/cancel`],
    ] as const) {
      const r = await call(method, path, { token: bob.key });
      expect(r.status, `${method} ${path}`).toBe(404);
      expect(r.json.error.code).toBe('not_found');
    }
    const list = await call('GET', '/api/v1/executions', { token: bob.key });
    expect(list.json.executions).toEqual([]);
    expect((await call('GET', `/api/v1/executions/${exec.id}`, { token: alice.key })).status).toBe(200);
  });

  it('keeps blobs per account: another account must upload its own copy', async () => {
    const alice = await newTenant();
    const bob = await newTenant(alice.pool);
    const script = await blob('print("shared bytes")');
    await queuedExecution(alice);
    const a = await createExecution(alice, {}, [script]);
    expect(a.uploads).toHaveLength(1);
    await fetch(a.uploads[0]!.url, { method: 'PUT', body: script.bytes });
    await call('POST', `/api/v1/executions/${a.execution.id}/submit`, { token: alice.key });
    const b = await createExecution(bob, {}, [script]);
    expect(b.uploads).toHaveLength(1);
  });

  it('never accepts a runner token on the user API or a user key on the runner API', async () => {
    const t = await newTenant();
    const runner = await newRunner(t);
    const asUser = await call('GET', '/api/v1/executions', { token: runner.runnerToken });
    expect(asUser.status).toBe(401);
    expect(asUser.json.error.message).toMatch(/user API key/);
    const asRunner = await call('POST', '/runner/v1/claim', { token: t.key, body: { waitSeconds: 0 } });
    expect(asRunner.status).toBe(401);
    expect(asRunner.json.error.message).toMatch(/runner token/);
    const adminAsUser = await call('POST', '/admin/v1/accounts', { token: t.key, body: { name: 'x' } });
    expect(adminAsUser.status).toBe(401);
  });

  it('scopes runners to their pool: a runner of another pool cannot see or finish a job', async () => {
    const a = await newTenant();
    const b = await newTenant();
    const runnerA = await newRunner(a);
    const runnerB = await newRunner(b);
    const exec = await queuedExecution(a);
    expect((await claim(runnerB.runnerToken)).jobs).toEqual([]);
    await claim(runnerA.runnerToken);
    const r = await call('POST', `/runner/v1/executions/${exec.id}/complete`, { token: runnerB.runnerToken, body: { attempt: 1, outcome: 'succeeded' } });
    expect(r.status).toBe(404);
  });

  it('registration tokens: unknown, used-up and expired ones are refused', async () => {
    const t = await newTenant();
    const unknown = await call('POST', '/runner/v1/register', { body: { registrationToken: 'rgrid_reg_nope000000000', name: 'x', slots: 1 } });
    expect(unknown.status).toBe(401);
    const once = await admin('POST', `/pools/${t.pool}/registration-tokens`, { maxUses: 1 });
    const first = await call('POST', '/runner/v1/register', { body: { registrationToken: once.json.token, name: 'x', slots: 1 } });
    expect(first.status).toBe(201);
    expect(first.json.runnerId).toMatch(/^rnr_/);
    const second = await call('POST', '/runner/v1/register', { body: { registrationToken: once.json.token, name: 'y', slots: 1 } });
    expect(second.status).toBe(401);
  });

  it('admin endpoints need the admin secret', async () => {
    expect((await call('POST', '/admin/v1/accounts', { body: { name: 'x' } })).status).toBe(401);
    expect((await call('POST', '/admin/v1/accounts', { token: TEST_S3.adminSecret + 'x', body: { name: 'x' } })).status).toBe(401);
    expect((await call('POST', '/admin/v1/accounts', { token: TEST_S3.adminSecret, body: { name: 'x' } })).status).toBe(201);
  });
});
