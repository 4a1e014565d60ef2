/**
 * Request validation with the shared zod schemas. Bad JSON, oversized bodies and schema
 * violations all become 400 with the error envelope and the offending fields — never a 500.
 */
import type { z } from 'zod';
import { LIMITS } from '../../shared/limits.js';
import { ApiError } from './errors.js';
import type { AppContext } from './context.js';

function issues(error: z.ZodError) {
  return error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
}

function describe(error: z.ZodError): string {
  const first = error.issues[0];
  if (!first) return 'invalid request';
  const where = first.path.length ? `${first.path.join('.')}: ` : '';
  return `${where}${first.message}` + (error.issues.length > 1 ? ` (and ${error.issues.length - 1} more problems)` : '');
}

export async function readJson<S extends z.ZodType>(c: AppContext, schema: S): Promise<z.output<S>> {
  const text = await readBody(c);
  if (text === null) throw tooLarge();
  let raw: unknown;
  try {
    raw = text.length ? JSON.parse(text) : {};
  } catch {
    throw new ApiError('bad_request', 'request body is not valid JSON', 'Send a JSON object with Content-Type: application/json.');
  }
  return parseWith(schema, raw, 'request body');
}

export function readQuery<S extends z.ZodType>(c: AppContext, schema: S): z.output<S> {
  const url = new URL(c.req.url);
  const raw: Record<string, string | string[]> = {};
  for (const key of new Set(url.searchParams.keys())) {
    const all = url.searchParams.getAll(key);
    raw[key] = all.length > 1 ? all : all[0]!;
  }
  return parseWith(schema, raw, 'query');
}

export function parseWith<S extends z.ZodType>(schema: S, raw: unknown, what: string): z.output<S> {
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    throw new ApiError('bad_request', `invalid ${what}: ${describe(parsed.error)}`, 'Fix the listed fields; /openapi.json describes every request.', issues(parsed.error));
  }
  return parsed.data;
}

/**
 * The request body as text, read with its size counted as it arrives: null once it passes the JSON
 * body limit, before more than that is held in memory (a body without Content-Length included).
 * An oversized body is read on and dropped, up to DISCARD_LIMIT, before the caller answers 413: a
 * 413 sent while the client is still writing makes the connection reset under it, and the client
 * sees ECONNRESET instead of the answer.
 */
export async function readBody(c: AppContext, limit: number = LIMITS.maxJsonBodyBytes): Promise<string | null> {
  const body = c.req.raw.body;
  if (!body) return '';
  if (Number(c.req.header('content-length') ?? '0') > limit) {
    await discard(body, DISCARD_LIMIT);
    return null;
  }
  const reader = body.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      reader.releaseLock();
      await discard(body, DISCARD_LIMIT - size);
      return null;
    }
    parts.push(value);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.byteLength;
  }
  return new TextDecoder().decode(all);
}

/** Oversized bodies up to this size are read and dropped before the 413 (see readBody). */
const DISCARD_LIMIT = 16 * 1024 * 1024;

async function discard(body: ReadableStream<Uint8Array> | null, limit: number): Promise<void> {
  if (!body) return;
  const reader = body.getReader();
  let seen = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      seen += value.byteLength;
      if (seen > limit) return void (await reader.cancel());
    }
  } catch {
    // The client went away: nothing to answer.
  }
}

function tooLarge() {
  return new ApiError('payload_too_large', `request body is larger than ${LIMITS.maxJsonBodyBytes} bytes`, 'Upload file contents through the presigned URLs, not in JSON.');
}
