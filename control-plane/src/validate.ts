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
  const declared = Number(c.req.header('content-length') ?? '0');
  if (declared > LIMITS.maxJsonBodyBytes) throw tooLarge();
  const text = await c.req.text();
  if (text.length > LIMITS.maxJsonBodyBytes) throw tooLarge();
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

function tooLarge() {
  return new ApiError('payload_too_large', `request body is larger than ${LIMITS.maxJsonBodyBytes} bytes`, 'Upload file contents through the presigned URLs, not in JSON.');
}
