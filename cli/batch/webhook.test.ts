import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { signature, verify } from '../../control-plane/src/webhooks/signature.js';
import { prepareWebhook, signDelivery, verifySignature } from './webhook.js';

describe('webhook signatures', () => {
  it('signs exactly as the control plane verifies', async () => {
    const body = JSON.stringify({ inputs: [{ name: 'a.txt', content: 'x' }] });
    const h = signDelivery('whsec_test', body, { timestamp: 1_700_000_000, deliveryId: 'd-1' });
    expect(h['x-rgrid-signature']).toBe(await signature('whsec_test', '1700000000', 'd-1', body));
    expect(await verify('whsec_test', new Headers(h), body, 1_700_000_000_000)).toEqual({ ok: true, deliveryId: 'd-1' });
  });

  it('verifies a callback: bad signature, other secret and stale timestamps fail', () => {
    const body = '{"type":"batch.finished"}';
    const now = Date.now();
    const h = signDelivery('whsec_s', body, { timestamp: Math.floor(now / 1000) });
    expect(verifySignature('whsec_s', h, body, now)).toBe(true);
    expect(verifySignature('whsec_other', h, body, now)).toBe(false);
    expect(verifySignature('whsec_s', h, body + ' ', now)).toBe(false);
    expect(verifySignature('whsec_s', h, body, now + 301_000)).toBe(false);
    expect(verifySignature('whsec_s', {}, body, now)).toBe(false);
  });
});

describe('webhook template', () => {
  it('hashes the script, reads requirements.txt next to it, and keeps the arguments', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rgrid-hook-'));
    try {
      await writeFile(join(dir, 'hook.py'), 'print(1)\n');
      await writeFile(join(dir, 'requirements.txt'), 'six==1.16.0\n');
      const p = await prepareWebhook({ script: 'hook.py', name: 'n', args: ['--in', '{}'], env: {}, limits: {}, parallel: 2, allowHosts: ['Data.Example.com'], cwd: dir });
      expect(p.request).toMatchObject({ name: 'n', parallel: 2, allowedHosts: ['data.example.com'], template: { runtime: 'python3.11', requirements: 'six==1.16.0\n', args: ['--in', '{}'], script: { name: 'hook.py', size: 9 } } });
      await writeFile(join(dir, 'bad.txt'), '--index-url http://evil\n');
      await expect(prepareWebhook({ script: 'hook.py', name: 'n', requirementsFile: 'bad.txt', args: [], env: {}, limits: {}, allowHosts: [], cwd: dir })).rejects.toThrow(/cannot be used/);
      await expect(prepareWebhook({ script: 'nope.py', name: 'n', args: [], env: {}, limits: {}, allowHosts: [], cwd: dir })).rejects.toThrow(/File not found/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
