/**
 * The stack for the fleet integration test: the control plane in Miniflare (workerd, D1,
 * Durable Objects) with its autoscaler pointed at the fake Hetzner API on loopback, the
 * signature-verifying S3 store, and an account, API key and pool made through the admin API.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startLocalControlPlane, type LocalControlPlane } from '../../control-plane/local/miniflare.js';
import { startS3Store, type S3Store } from '../../cli/dev/s3-store.js';

const run = promisify(execFile);

export interface FleetStack {
  url: string;
  adminSecret: string;
  apiKey: string;
  cp: LocalControlPlane;
  s3: S3Store;
  admin(method: string, path: string, body?: unknown): Promise<any>;
  api(method: string, path: string, body?: unknown): Promise<any>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

async function call(base: string, token: string, method: string, path: string, body?: unknown) {
  const r = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  const json = text ? JSON.parse(text) : undefined;
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return json;
}

export async function startFleetStack(opts: { dir: string; hetznerApiUrl: string; hetznerToken: string; pool: string; leaseSeconds?: number }): Promise<FleetStack> {
  const adminSecret = randomBytes(16).toString('hex');
  const creds = { bucket: 'rgrid', region: 'us-east-1', accessKeyId: 'local', secretAccessKey: randomBytes(16).toString('hex') };
  const s3 = await startS3Store({ port: 0, dataDir: join(opts.dir, 's3'), ...creds });
  // The control plane's own URL goes into every server's user-data, so its port is chosen first.
  const port = await freePort();
  const cp = await startLocalControlPlane({
    dataDir: join(opts.dir, 'cp'),
    port,
    bindings: {
      ADMIN_SECRET: adminSecret,
      S3_ENDPOINT: s3.endpoint,
      S3_BUCKET: creds.bucket,
      S3_REGION: creds.region,
      S3_ACCESS_KEY_ID: creds.accessKeyId,
      S3_SECRET_ACCESS_KEY: creds.secretAccessKey,
      LEASE_SECONDS: String(opts.leaseSeconds ?? 8),
      MAX_ATTEMPTS: '3',
      HETZNER_TOKEN: opts.hetznerToken,
      HETZNER_API_URL: opts.hetznerApiUrl,
      PUBLIC_URL: `http://127.0.0.1:${port}`,
      RUNNER_PACKAGE: 'rgrid@0.1.0',
    },
  });
  const admin = (method: string, path: string, body?: unknown) => call(cp.url, adminSecret, method, '/admin/v1' + path, body);
  const account = await admin('POST', '/accounts', { name: 'fleet-tests' });
  const key = await admin('POST', `/accounts/${account.account.id}/api-keys`, {});
  await admin('POST', '/pools', { name: opts.pool });
  return {
    url: cp.url,
    adminSecret,
    apiKey: key.key,
    cp,
    s3,
    admin,
    api: (method, path, body) => call(cp.url, key.key, method, '/api/v1' + path, body),
    async stop() {
      await cp.dispose();
      await s3.close();
    },
  };
}

/**
 * cloud-init (Debian's package) validates the user-data, and its PyYAML parses it for the fake
 * machines. Installed here only when missing; CI installs it up front (.ci/run).
 */
export async function ensureCloudInit(): Promise<void> {
  const has = async () =>
    run('sh', ['-c', 'command -v cloud-init && python3 -c "import yaml"']).then(
      () => true,
      () => false,
    );
  if (await has()) return;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'cloud-init'], { env, maxBuffer: 64 * 1024 * 1024 });
  try {
    await install();
  } catch {
    await run('apt-get', ['update', '-qq'], { env, maxBuffer: 64 * 1024 * 1024 });
    await install();
  }
  if (!(await has())) throw new Error('cloud-init is not available: apt-get install -y cloud-init');
}
