/**
 * HMAC-SHA256 signatures for webhooks, both directions:
 *   X-RGrid-Timestamp: unix seconds
 *   X-RGrid-Delivery:  unique id per delivery (replays are refused)
 *   X-RGrid-Signature: sha256=<hex HMAC(secret, "<timestamp>.<delivery>.<body>")>
 * A timestamp more than 5 minutes away from now is refused.
 */
import { toHex } from '../../../shared/hashing.js';

export const SIGNATURE_TOLERANCE_SECONDS = 300;

async function hmac(secret: string, message: string): Promise<string> {
  const key = await crypto.subtle.importKey('raw', new TextEncoder().encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return toHex(new Uint8Array(await crypto.subtle.sign('HMAC', key, new TextEncoder().encode(message))));
}

export async function signature(secret: string, timestamp: string, deliveryId: string, body: string): Promise<string> {
  return `sha256=${await hmac(secret, `${timestamp}.${deliveryId}.${body}`)}`;
}

export async function signCallback(secret: string, body: string, deliveryId: string, now = Date.now()): Promise<Record<string, string>> {
  const ts = String(Math.floor(now / 1000));
  return { 'x-rgrid-timestamp': ts, 'x-rgrid-delivery': deliveryId, 'x-rgrid-signature': await signature(secret, ts, deliveryId, body) };
}

function safeEqual(a: string, b: string): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < Math.max(a.length, b.length); i++) diff |= (a.charCodeAt(i) || 0) ^ (b.charCodeAt(i) || 0);
  return diff === 0;
}

export type VerifyResult = { ok: true; deliveryId: string } | { ok: false; reason: string };

export async function verify(secret: string, headers: Headers, body: string, now = Date.now()): Promise<VerifyResult> {
  const ts = headers.get('x-rgrid-timestamp');
  const delivery = headers.get('x-rgrid-delivery');
  const sig = headers.get('x-rgrid-signature');
  if (!ts || !delivery || !sig) return { ok: false, reason: 'missing X-RGrid-Timestamp, X-RGrid-Delivery or X-RGrid-Signature header' };
  if (!/^\d+$/.test(ts) || Math.abs(now / 1000 - Number(ts)) > SIGNATURE_TOLERANCE_SECONDS) {
    return { ok: false, reason: 'timestamp is more than 5 minutes from now (check the sender clock; replays are refused)' };
  }
  if (!/^[A-Za-z0-9_.:-]{1,128}$/.test(delivery)) return { ok: false, reason: 'invalid delivery id' };
  if (!safeEqual(sig, await signature(secret, ts, delivery, body))) return { ok: false, reason: 'signature does not match' };
  return { ok: true, deliveryId: delivery };
}
