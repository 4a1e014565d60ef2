/** A minimal client of the user API (/api/v1) for the benches: one request, JSON in and out. */
import { Agent, request } from 'undici';

/** Keep-alive connections, as many as the benches run requests at once. */
const agent = new Agent({ connections: 64, pipelining: 1, keepAliveTimeout: 30_000 });

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
    where: string,
  ) {
    super(`${where}: HTTP ${status}: ${body.slice(0, 300)}`);
  }
}

/**
 * Under load the local workerd sporadically closes a pooled keep-alive connection just as a
 * request goes out on it ("other side closed", nothing answered). GETs are retried; POSTs, which
 * are not all safe to repeat, each use a fresh connection (`reset`), which avoids the reuse race.
 */
export async function jsonCall<T = any>(baseUrl: string, token: string | undefined, method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await jsonCallOnce<T>(baseUrl, token, method, path, body);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (method !== 'GET' || attempt >= 4 || (code !== 'UND_ERR_SOCKET' && code !== 'ECONNRESET')) throw err;
    }
  }
}

async function jsonCallOnce<T>(baseUrl: string, token: string | undefined, method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  const res = await request(baseUrl + path, {
    method,
    dispatcher: agent,
    reset: method === 'POST',
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    body: body !== undefined ? JSON.stringify(body) : undefined,
    headersTimeout: 120_000,
    bodyTimeout: 120_000,
  });
  const text = await res.body.text();
  if (res.statusCode >= 300) throw new HttpError(res.statusCode, text, `${method} ${path}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

export class Api {
  constructor(
    readonly baseUrl: string,
    readonly token: string,
  ) {}
  get<T = any>(path: string): Promise<T> {
    return jsonCall<T>(this.baseUrl, this.token, 'GET', '/api/v1' + path);
  }
  post<T = any>(path: string, body?: unknown): Promise<T> {
    return jsonCall<T>(this.baseUrl, this.token, 'POST', '/api/v1' + path, body ?? {});
  }
}

/** GET a presigned URL into memory (small files only). */
export async function fetchBytes(url: string, headers: Record<string, string> = {}): Promise<Buffer> {
  const res = await request(url, { method: 'GET', headers, dispatcher: agent });
  const buf = Buffer.from(await res.body.arrayBuffer());
  if (res.statusCode !== 200) throw new HttpError(res.statusCode, buf.toString('utf8'), `GET ${new URL(url).pathname}`);
  return buf;
}

/** PUT bytes to a presigned URL. */
export async function putBytes(url: string, bytes: Buffer, headers: Record<string, string> = {}): Promise<void> {
  const res = await request(url, { method: 'PUT', headers: { ...headers, 'content-length': String(bytes.length) }, body: bytes, dispatcher: agent });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new HttpError(res.statusCode, text, `PUT ${new URL(url).pathname}`);
}
