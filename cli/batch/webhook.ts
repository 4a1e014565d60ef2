/**
 * `rgrid webhook create`: a stored job template that a signed HTTP POST to `/hooks/<id>` turns
 * into a batch (one execution per input of the delivery). Here: the template from the script and
 * flags (checked locally, like `rgrid run`), the signature scheme, and the ready-to-use example
 * printed once with the secret.
 *
 * Signature (both directions, deliveries and the completion callback):
 *   X-RGrid-Timestamp: unix seconds (more than 5 minutes off → 401)
 *   X-RGrid-Delivery:  a new id per delivery, [A-Za-z0-9_.:-]{1,128} (seen before → 409)
 *   X-RGrid-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<delivery>.<body>")>
 */
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { ScriptRef, type Limits } from '../../shared/api/executions.js';
import { CreateWebhookRequest } from '../../shared/api/webhooks.js';
import { formatRequirementProblems, parseRequirements } from '../../shared/requirements.js';
import { usageError } from '../errors.js';
import { resolveRuntime } from '../run/values.js';
import { sha256File } from '../transfer/hash.js';
import type { LocalBlob } from '../transfer/upload.js';

export interface WebhookSpec {
  script: string;
  name: string;
  runtime?: string;
  /** An explicit requirements file; else requirements.txt next to a Python script, as `run` does. */
  requirementsFile?: string;
  args: string[];
  env: Record<string, string>;
  limits: Partial<Limits>;
  pool?: string;
  parallel?: number;
  allowHosts: string[];
  cwd: string;
}

export interface PreparedWebhook {
  request: CreateWebhookRequest;
  blob: LocalBlob;
  /** The requirements file used, if any. */
  requirements?: string;
}

async function readIfFile(path: string): Promise<string | undefined> {
  try {
    if (!(await stat(path)).isFile()) return undefined;
  } catch {
    return undefined;
  }
  return readFile(path, 'utf8');
}

export async function prepareWebhook(spec: WebhookSpec): Promise<PreparedWebhook> {
  const scriptPath = resolve(spec.cwd, spec.script);
  const info = await stat(scriptPath).catch(() => undefined);
  if (!info?.isFile()) throw usageError(`File not found: ${spec.script}`, 'Name the script the webhook runs, e.g. `rgrid webhook create ingest.py --name ingest`.');
  if (info.size > 10 * 1024 * 1024) throw usageError(`${spec.script} is larger than 10 MB`, 'Scripts are code; deliveries bring the data.');
  const name = basename(scriptPath);
  if (!ScriptRef.shape.name.safeParse(name).success) throw usageError(`The script's file name "${name}" contains characters that are not allowed`, 'Rename it.');
  const runtime = resolveRuntime(spec.runtime, name);

  let requirements: { path: string; text: string } | undefined;
  if (spec.requirementsFile !== undefined) {
    const path = resolve(spec.cwd, spec.requirementsFile);
    const text = await readIfFile(path);
    if (text === undefined) throw usageError(`File not found: ${spec.requirementsFile}`, 'Give --requirements the path of a requirements.txt.');
    requirements = { path, text };
  } else if (runtime.startsWith('python')) {
    const path = join(dirname(scriptPath), 'requirements.txt');
    const text = await readIfFile(path);
    if (text !== undefined) requirements = { path, text };
  }
  if (requirements) {
    const parsed = parseRequirements(requirements.text);
    if (!parsed.ok) throw usageError(`${requirements.path} has lines that cannot be used:\n${formatRequirementProblems(parsed.problems)}`, 'List packages as names with optional versions (e.g. numpy==1.26.4).');
  }

  const digest = await sha256File(scriptPath);
  const request: CreateWebhookRequest = {
    name: spec.name,
    template: {
      runtime,
      script: { name, ...digest },
      ...(requirements ? { requirements: requirements.text } : {}),
      env: spec.env,
      ...(Object.keys(spec.limits).length ? { limits: spec.limits as Limits } : {}),
      ...(spec.pool ? { pool: spec.pool } : {}),
      args: spec.args,
    },
    ...(spec.parallel !== undefined ? { parallel: spec.parallel } : {}),
    allowedHosts: spec.allowHosts.map((h) => h.toLowerCase()),
  };
  const checked = CreateWebhookRequest.safeParse(request);
  if (!checked.success) {
    const issue = checked.error.issues[0]!;
    throw usageError(`Invalid webhook: ${issue.path.join('.')}: ${issue.message}`, '`rgrid webhook --help` lists the options.');
  }
  return { request, blob: { ...digest, path: scriptPath, label: spec.script }, ...(requirements ? { requirements: requirements.path } : {}) };
}

/** The three signature headers for a body (what a sender computes; the control plane checks the same). */
export function signDelivery(secret: string, body: string, opts: { timestamp?: number; deliveryId?: string } = {}): Record<string, string> {
  const ts = String(opts.timestamp ?? Math.floor(Date.now() / 1000));
  const id = opts.deliveryId ?? randomUUID();
  const hex = createHmac('sha256', secret).update(`${ts}.${id}.${body}`).digest('hex');
  return { 'x-rgrid-timestamp': ts, 'x-rgrid-delivery': id, 'x-rgrid-signature': `sha256=${hex}` };
}

/** Checks a signed request (e.g. the completion callback) the way the control plane checks deliveries. */
export function verifySignature(secret: string, headers: Record<string, string | string[] | undefined>, body: string, now = Date.now()): boolean {
  const one = (k: string) => {
    const v = headers[k];
    return Array.isArray(v) ? v[0] : v;
  };
  const ts = one('x-rgrid-timestamp');
  const id = one('x-rgrid-delivery');
  const sig = one('x-rgrid-signature');
  if (!ts || !id || !sig || !/^\d+$/.test(ts) || Math.abs(now / 1000 - Number(ts)) > 300) return false;
  const expected = signDelivery(secret, body, { timestamp: Number(ts), deliveryId: id })['x-rgrid-signature']!;
  const a = Buffer.from(expected);
  const b = Buffer.from(sig);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** A shell snippet that sends one signed delivery with curl and openssl (printed by `webhook create`). */
export function shellExample(url: string, secret: string): string {
  return [
    `URL='${url}'`,
    `SECRET='${secret}'`,
    `BODY='{"inputs":[{"name":"hello.txt","content":"hello from a webhook\\n"}]}'`,
    'TS=$(date +%s)',
    'ID="delivery-$TS-$RANDOM"',
    `SIG=$(printf '%s.%s.%s' "$TS" "$ID" "$BODY" | openssl dgst -sha256 -hmac "$SECRET" | sed 's/^.*= //')`,
    'curl -sS -X POST "$URL" -H "Content-Type: application/json" \\',
    '  -H "X-RGrid-Timestamp: $TS" -H "X-RGrid-Delivery: $ID" -H "X-RGrid-Signature: sha256=$SIG" \\',
    `  --data-binary "$BODY"`,
  ].join('\n');
}
