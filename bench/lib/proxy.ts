/**
 * A counting reverse proxy on 127.0.0.1 between a runner and the control plane: it records every
 * runner call (route, execution, start and end time, status, jobs handed out by claims) without
 * touching the runner's code. Used only in the profile phase; it adds a loopback hop per call.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, request } from 'undici';

export interface ProxyRecord {
  method: string;
  /** Path with ids replaced: /runner/v1/executions/:id/complete */
  route: string;
  executionId?: string;
  start: number;
  end: number;
  status: number;
  /** Execution ids a claim handed out. */
  claimed?: string[];
}

export interface CountingProxy {
  url: string;
  records: ProxyRecord[];
  close(): Promise<void>;
}

const agent = new Agent({ connections: 64, keepAliveTimeout: 30_000 });

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export async function startCountingProxy(target: string): Promise<CountingProxy> {
  const records: ProxyRecord[] = [];
  const server = createServer((req, res) => {
    void (async () => {
      const start = performance.now();
      const path = req.url ?? '/';
      const idMatch = /\/executions\/(exec_[a-z0-9]+)/i.exec(path);
      const route = path.split('?')[0]!.replace(/exec_[a-z0-9]+/gi, ':id');
      const body = await readBody(req);
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string' && !['host', 'connection', 'accept-encoding', 'content-length'].includes(k)) headers[k] = v;
      try {
        const up = await request(target + path, { method: req.method as 'GET', headers, body: body.length ? body : undefined, dispatcher: agent, headersTimeout: 120_000, bodyTimeout: 120_000 });
        const out = Buffer.from(await up.body.arrayBuffer());
        const rec: ProxyRecord = { method: req.method ?? '', route, start, end: performance.now(), status: up.statusCode, ...(idMatch ? { executionId: idMatch[1]! } : {}) };
        if (route.endsWith('/claim') && up.statusCode === 200) {
          try {
            rec.claimed = (JSON.parse(out.toString('utf8')) as { jobs: { executionId: string }[] }).jobs.map((j) => j.executionId);
          } catch {
            // not JSON: recorded without jobs
          }
        }
        records.push(rec);
        res.writeHead(up.statusCode, { 'content-type': String(up.headers['content-type'] ?? 'application/json') });
        res.end(out);
      } catch (err) {
        records.push({ method: req.method ?? '', route, start, end: performance.now(), status: 502 });
        res.writeHead(502, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { code: 'unavailable', message: `proxy: ${(err as Error).message}` } }));
      }
    })();
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    records,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
