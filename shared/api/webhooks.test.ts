import { describe, expect, it } from 'vitest';
import { DeleteWebhookResponse, WebhookDelivery } from './webhooks.js';

describe('WebhookDelivery inputs', () => {
  it('takes file names and refuses ".", ".." and names with directories', () => {
    expect(WebhookDelivery.safeParse({ inputs: [{ name: 'a.csv', content: 'x' }] }).success).toBe(true);
    for (const name of ['.', '..', 'a/b', '..\\x', '']) {
      const r = WebhookDelivery.safeParse({ inputs: [{ name, content: 'x' }] });
      expect(r.success, JSON.stringify(name)).toBe(false);
      expect(r.error!.issues[0]!.path).toEqual(['inputs', 0, 'name']);
    }
  });
});

describe('DeleteWebhookResponse', () => {
  it('is the deleted webhook', () => {
    const webhook = { id: 'wh_x', name: 'ingest', path: '/hooks/wh_x', allowedHosts: [], createdAt: '2026-01-01T00:00:00.000Z' };
    expect(DeleteWebhookResponse.parse({ webhook })).toEqual({ webhook });
  });
});
