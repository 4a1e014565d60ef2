/**
 * The reliability suite's stack: the same pieces as runner-agent/test/harness.ts (Miniflare control
 * plane, the signature-verifying S3 store, admin bootstrap), plus what faults need:
 * - a cuttable TCP proxy in front of the object store (S3_ENDPOINT points at it), see proxy.ts;
 * - a control plane with persisted D1/DO state that can be stopped and started again on the
 *   same directory and port, so runners reconnect to the same URL;
 * - a movable clock on the object store (expired presigned URLs without waiting);
 * - several accounts, spawned runner processes, and an API client that times every call.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { appendFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { AwsClient } from 'aws4fetch';
import { request } from 'undici';
import { startLocalControlPlane, type LocalControlPlane } from '../../control-plane/local/miniflare.js';
import { startS3Store, type S3Store } from '../../cli/dev/s3-store.js';
import { loadRunnerConfig, type RunnerConfig } from '../../runner-agent/src/config.js';
import { isFinal } from '../../shared/lifecycle.js';
import { startTcpProxy, type TcpProxy } from './proxy.js';

export const PIP_INDEX_URL = process.env.RGRID_PIP_INDEX_URL ?? 'http://127.0.0.1:3141/simple/';
/** Full-size runs (load 20×100, …) instead of the CI size. */
export const FULL = process.env.RGRID_RELIABILITY_FULL === '1';
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const RUNNER_BIN = join(ROOT, 'bin/rgrid-runner.mjs');

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
export const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** Prints a figure for docs/reliability.md; also appended as JSON lines to RGRID_RELIABILITY_REPORT. */
export async function report(name: string, figures: Record<string, unknown>): Promise<void> {
  const line = JSON.stringify({ name, full: FULL, at: new Date().toISOString(), ...figures });
  console.log(`[reliability] ${line}`);
  if (process.env.RGRID_RELIABILITY_REPORT) await appendFile(process.env.RGRID_RELIABILITY_REPORT, line + '\n');
}

// ------------------------------------------------------------------ latency and the API client

/** Per-endpoint latency samples and every status seen (the load test's "no 5xx"). */
export class Latency {
  readonly samples = new Map<string, number[]>();
  readonly statuses = new Map<number, number>();

  record(label: string, ms: number, status: number): void {
    (this.samples.get(label) ?? this.samples.set(label, []).get(label)!).push(ms);
    this.statuses.set(status, (this.statuses.get(status) ?? 0) + 1);
  }

  get serverErrors(): number {
    return [...this.statuses].filter(([s]) => s >= 500).reduce((n, [, c]) => n + c, 0);
  }

  static percentile(xs: number[], p: number): number {
    if (!xs.length) return NaN;
    const sorted = [...xs].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
  }

  summary(): Record<string, { n: number; p50: number; p99: number; max: number }> {
    const out: Record<string, { n: number; p50: number; p99: number; max: number }> = {};
    const all: number[] = [];
    for (const [label, xs] of [...this.samples].sort()) {
      all.push(...xs);
      out[label] = { n: xs.length, p50: round(Latency.percentile(xs, 50)), p99: round(Latency.percentile(xs, 99)), max: round(Math.max(...xs)) };
    }
    out['ALL API calls'] = { n: all.length, p50: round(Latency.percentile(all, 50)), p99: round(Latency.percentile(all, 99)), max: round(Math.max(...all)) };
    return out;
  }
}

const round = (n: number) => Math.round(n * 10) / 10;

export interface Reply {
  status: number;
  json: any;
  text: string;
  ms: number;
}

/** `GET /api/v1/executions/exec_…/artifacts?x=1` → `GET /api/v1/executions/:id/artifacts` */
export function routeLabel(method: string, path: string): string {
  return `${method} ${path.split('?')[0]!.replace(/[a-z]+_[a-z0-9]{24}/g, ':id')}`;
}

export class Client {
  constructor(
    readonly baseUrl: string,
    readonly token: string | undefined,
    readonly latency?: Latency,
  ) {}

  withToken(token: string | undefined): Client {
    return new Client(this.baseUrl, token, this.latency);
  }

  async call(method: string, path: string, opts: { body?: unknown; raw?: string | Uint8Array; headers?: Record<string, string> } = {}): Promise<Reply> {
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    let body: string | Uint8Array | undefined = opts.raw;
    if (body === undefined && opts.body !== undefined) body = JSON.stringify(opts.body);
    if (body !== undefined && !headers['content-type']) headers['content-type'] = 'application/json';
    const t0 = performance.now();
    // A fresh connection per call (reset): a reused keep-alive connection that the server closes
    // at the same moment fails with "other side closed", which would be a flake of the test
    // client, not a finding about the API. Loopback connects cost well under a millisecond.
    const res = await request(this.baseUrl + path, { method: method as 'GET', headers, body, reset: true });
    const text = await res.body.text();
    const ms = performance.now() - t0;
    this.latency?.record(routeLabel(method, path), ms, res.statusCode);
    let json: any;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: res.statusCode, json, text, ms };
  }

  /** A call that must succeed (2xx); anything else throws with the answer. */
  async ok(method: string, path: string, body?: unknown): Promise<any> {
    const r = await this.call(method, path, body === undefined ? {} : { body });
    if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${r.text.slice(0, 500)}`);
    return r.json;
  }
}

// ------------------------------------------------------------------ the stack

export interface StackOptions {
  leaseSeconds?: number;
  maxAttempts?: number;
  presignSeconds?: number;
  /** Persist D1 and Durable Object state so the control plane can be restarted. */
  persist?: boolean;
  /** Put a cuttable proxy between everyone and the object store. */
  s3Proxy?: boolean;
}

export interface Account {
  accountId: string;
  apiKey: string;
  keyId: string;
  client: Client;
}

export class Stack {
  cp!: LocalControlPlane;
  s3!: S3Store;
  s3Proxy: TcpProxy | undefined;
  /** Added to the object store's clock (signature expiry checks). */
  storeClockOffsetMs = 0;
  readonly adminSecret = randomBytes(16).toString('hex');
  readonly creds = { bucket: 'rgrid', region: 'us-east-1', accessKeyId: 'local', secretAccessKey: randomBytes(16).toString('hex') };
  registrationToken = '';
  readonly pool = 'default';
  alice!: Account;
  private readonly runners = new Set<SpawnedRunner>();
  private bindings: Record<string, string> = {};

  private constructor(
    readonly dir: string,
    readonly opts: StackOptions,
  ) {}

  get url(): string {
    return this.cp.url;
  }

  /** The object store as the control plane (and so every presigned URL) sees it. */
  get s3Endpoint(): string {
    return this.s3Proxy?.url ?? this.s3.endpoint;
  }

  static async start(opts: StackOptions = {}): Promise<Stack> {
    const stack = new Stack(await mkdtemp(join(tmpdir(), 'rgrid-reliability-')), opts);
    await stack.boot();
    return stack;
  }

  private async boot(): Promise<void> {
    this.s3 = await startS3Store({ port: 0, dataDir: join(this.dir, 's3'), ...this.creds, now: () => Date.now() + this.storeClockOffsetMs });
    if (this.opts.s3Proxy) this.s3Proxy = await startTcpProxy(this.s3.port);
    this.bindings = {
      ADMIN_SECRET: this.adminSecret,
      S3_ENDPOINT: this.s3Endpoint,
      S3_BUCKET: this.creds.bucket,
      S3_REGION: this.creds.region,
      S3_ACCESS_KEY_ID: this.creds.accessKeyId,
      S3_SECRET_ACCESS_KEY: this.creds.secretAccessKey,
      LEASE_SECONDS: String(this.opts.leaseSeconds ?? 30),
      MAX_ATTEMPTS: String(this.opts.maxAttempts ?? 3),
      PRESIGN_SECONDS: String(this.opts.presignSeconds ?? 3600),
    };
    this.cp = await startLocalControlPlane({ dataDir: join(this.dir, 'cp'), persist: this.opts.persist ?? false, bindings: this.bindings });
    await this.admin('POST', '/pools', { name: this.pool });
    this.registrationToken = (await this.admin('POST', `/pools/${this.pool}/registration-tokens`, {})).token;
    this.alice = await this.newAccount('alice');
  }

  /**
   * Stops the control plane (workerd exits; open requests and long-polls break), waits, and
   * starts it again on the same state directory and port. Returns how long it was down.
   */
  async restartControlPlane(downMs = 0): Promise<number> {
    if (!this.opts.persist) throw new Error('restartControlPlane needs persist: true');
    const port = this.cp.port;
    const t0 = Date.now();
    await this.cp.dispose();
    await sleep(downMs);
    this.cp = await startLocalControlPlane({ dataDir: join(this.dir, 'cp'), persist: true, bindings: this.bindings, port });
    return Date.now() - t0;
  }

  async admin(method: string, path: string, body?: unknown): Promise<any> {
    return new Client(this.url, this.adminSecret).ok(method, `/admin/v1${path}`, body);
  }

  async newAccount(name: string, latency?: Latency): Promise<Account> {
    const account = await this.admin('POST', '/accounts', { name: `${name}-${randomBytes(3).toString('hex')}` });
    const key = await this.admin('POST', `/accounts/${account.account.id}/api-keys`, {});
    return { accountId: account.account.id, apiKey: key.key, keyId: key.apiKey.id, client: new Client(this.url, key.key, latency) };
  }

  /** Client for the account, following the control plane across restarts (same port). */
  client(account: Account = this.alice, latency?: Latency): Client {
    return new Client(this.url, account.apiKey, latency);
  }

  /** In-process runner config (RunnerAgent), like runner-agent/test/harness.ts. */
  runnerConfig(name: string, overrides: Record<string, string> = {}): RunnerConfig {
    const r = loadRunnerConfig({
      flags: { 'api-url': this.url, 'registration-token': this.registrationToken, 'work-dir': join(this.dir, 'runners', name), slots: '2', name, 'pip-index-url': PIP_INDEX_URL, 'claim-wait': '2', ...overrides },
      env: {},
    });
    if (!r.success) throw r.error;
    return r.data;
  }

  /** A real `rgrid-runner` process (bin/rgrid-runner.mjs), killable with any signal. */
  spawnRunner(name: string, opts: { apiUrl?: string; slots?: number; claimWait?: number; env?: Record<string, string> } = {}): SpawnedRunner {
    const workDir = join(this.dir, 'runners', name);
    const args = [RUNNER_BIN, '--api-url', opts.apiUrl ?? this.url, '--registration-token', this.registrationToken, '--work-dir', workDir, '--slots', String(opts.slots ?? 1), '--name', name, '--pip-index-url', PIP_INDEX_URL, '--claim-wait', String(opts.claimWait ?? 2)];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
    const r = new SpawnedRunner(name, workDir, child);
    this.runners.add(r);
    child.on('exit', () => this.runners.delete(r));
    return r;
  }

  /** Every object key under a prefix (ListObjectsV2, header-signed like the control plane's own calls). */
  async listObjects(prefix: string): Promise<string[]> {
    const client = new AwsClient({ accessKeyId: this.creds.accessKeyId, secretAccessKey: this.creds.secretAccessKey, service: 's3', region: this.creds.region, retries: 0 });
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const q = new URLSearchParams({ 'list-type': '2', prefix, 'max-keys': '1000', ...(token ? { 'continuation-token': token } : {}) });
      const res = await client.fetch(`${this.s3.endpoint}/${this.creds.bucket}?${q}`);
      const xml = await res.text();
      if (res.status !== 200) throw new Error(`list ${prefix}: ${res.status} ${xml.slice(0, 200)}`);
      keys.push(...[...xml.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1]!));
      token = /<NextContinuationToken>([^<]*)</.exec(xml)?.[1];
    } while (token);
    return keys;
  }

  /**
   * Reads every object under blobs/<account>/ straight from the store and checks that its content
   * hashes to its key (content addressing): a partial or corrupt object would fail here.
   */
  async verifyAccountObjects(accountId: string): Promise<{ objects: number; bad: string[] }> {
    // Plain request (not fetch): the stored bytes as they are, never transparently decoded.
    const client = new AwsClient({ accessKeyId: this.creds.accessKeyId, secretAccessKey: this.creds.secretAccessKey, service: 's3', region: this.creds.region, retries: 0 });
    const keys = await this.listObjects(`blobs/${accountId}/`);
    const bad: string[] = [];
    await mapLimit(keys, 8, async (key) => {
      const signed = await client.sign(`${this.s3.endpoint}/${this.creds.bucket}/${key}`);
      const res = await request(signed.url, { headers: Object.fromEntries(signed.headers) });
      const bytes = Buffer.from(await res.body.arrayBuffer());
      const want = key.split('/').pop();
      // Text is stored gzip-compressed and addressed by the sha256 of its content.
      let ok = res.statusCode === 200 && sha256(bytes) === want;
      if (!ok && bytes[0] === 0x1f && bytes[1] === 0x8b) {
        try {
          ok = sha256(gunzipSync(bytes)) === want;
        } catch {
          ok = false;
        }
      }
      if (!ok) bad.push(key);
    });
    return { objects: keys.length, bad };
  }

  async stop(): Promise<void> {
    for (const r of [...this.runners]) r.kill('SIGKILL');
    await Promise.all([...this.runners].map((r) => r.exited(10_000).catch(() => undefined)));
    await this.cp?.dispose().catch(() => undefined);
    await this.s3Proxy?.close();
    await this.s3?.close();
    await rm(this.dir, { recursive: true, force: true });
  }
}

export class SpawnedRunner {
  private out = '';

  constructor(
    readonly name: string,
    readonly workDir: string,
    readonly child: ChildProcess,
  ) {
    child.stdout!.on('data', (d) => (this.out += d));
    child.stderr!.on('data', (d) => (this.out += d));
  }

  get output(): string {
    return this.out;
  }

  kill(signal: NodeJS.Signals): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
  }

  async exited(timeoutMs = 30_000): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`runner ${this.name} did not exit`)), timeoutMs);
      this.child.once('exit', (code) => {
        clearTimeout(t);
        resolve(code);
      });
    });
  }

  /** The runner id, once the runner has registered (it writes <work-dir>/runner.json). */
  async runnerId(timeoutMs = 30_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        return JSON.parse(await readFile(join(this.workDir, 'runner.json'), 'utf8')).runnerId;
      } catch {
        if (Date.now() > deadline) throw new Error(`runner ${this.name} did not register:\n${this.out}`);
        await sleep(100);
      }
    }
  }

  /** Resolves when the runner logged its "serving pool" line (claim loops running). */
  async ready(timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.out.includes('serving pool')) {
      if (this.child.exitCode !== null) throw new Error(`runner ${this.name} exited:\n${this.out}`);
      if (Date.now() > deadline) throw new Error(`runner ${this.name} not ready:\n${this.out}`);
      await sleep(100);
    }
  }
}

// ------------------------------------------------------------------ helpers

export async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 30_000, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

export interface ScriptSpec {
  script: string;
  scriptName?: string;
  inputs?: { path: string; content: Buffer | string; arg?: number }[];
  request?: Record<string, unknown>;
}

/** Create → PUT what is missing → submit, the way the CLI does. Returns the queued execution. */
export async function submit(client: Client, spec: ScriptSpec): Promise<any> {
  const script = Buffer.from(spec.script);
  const inputs = (spec.inputs ?? []).map((i) => ({ ...i, bytes: Buffer.from(i.content) }));
  const blobs = new Map<string, Buffer>([[sha256(script), script], ...inputs.map((i) => [sha256(i.bytes), i.bytes] as [string, Buffer])]);
  const created = await client.ok('POST', '/api/v1/executions', {
    script: { name: spec.scriptName ?? 'main.py', sha256: sha256(script), size: script.length },
    inputs: inputs.map((i) => ({ path: i.path, sha256: sha256(i.bytes), size: i.bytes.length, ...(i.arg !== undefined ? { arg: i.arg } : {}) })),
    ...spec.request,
  });
  for (const u of created.uploads) await putBlob(u.url, blobs.get(u.sha256)!);
  return (await client.ok('POST', `/api/v1/executions/${created.execution.id}/submit`)).execution;
}

export async function putBlob(url: string, bytes: Buffer, latency?: Latency): Promise<void> {
  const t0 = performance.now();
  const res = await request(url, { method: 'PUT', body: bytes, headers: { 'content-length': String(bytes.length) } });
  const text = await res.body.text();
  latency?.record('PUT object store (presigned)', performance.now() - t0, res.statusCode);
  if (res.statusCode !== 200) throw new Error(`PUT ${url.split('?')[0]}: ${res.statusCode} ${text.slice(0, 200)}`);
}

export async function waitFinal(client: Client, id: string, timeoutMs = 60_000): Promise<any> {
  return waitFor(`execution ${id} to finish`, async () => {
    const e = (await client.ok('GET', `/api/v1/executions/${id}`)).execution;
    return isFinal(e.status) ? e : undefined;
  }, timeoutMs, 150);
}

export async function logsText(client: Client, id: string, stream?: string): Promise<string> {
  let cursor = '';
  let text = '';
  for (;;) {
    const q = new URLSearchParams({ limit: '1000', ...(stream ? { stream } : {}), ...(cursor ? { cursor } : {}) });
    const r = await client.ok('GET', `/api/v1/executions/${id}/logs?${q}`);
    text += r.chunks.map((c: { data: string }) => c.data).join('');
    // Done, or nothing newer than the cursor yet.
    if (r.done || r.cursor === cursor) return text;
    cursor = r.cursor;
  }
}

export async function outputs(client: Client, id: string): Promise<any[]> {
  return (await client.ok('GET', `/api/v1/executions/${id}/artifacts`)).artifacts.filter((a: any) => a.kind === 'output');
}

/** An artifact's content: its presigned GET, gunzipped when it was stored compressed. */
export async function download(artifact: { download: { url: string }; encoding: string }): Promise<Buffer> {
  const res = await request(artifact.download.url);
  const bytes = Buffer.from(await res.body.arrayBuffer());
  if (res.statusCode !== 200) throw new Error(`GET ${artifact.download.url.split('?')[0]}: ${res.statusCode}`);
  return artifact.encoding === 'gzip' ? gunzipSync(bytes) : bytes;
}

// ------------------------------------------------------------------ batches

export interface BatchSpec {
  script: string;
  /** One item per entry: its input file name and content; the script gets the file as argv[1]. */
  items: { name: string; content: string }[];
  name?: string;
  template?: Record<string, unknown>;
}

export interface SubmittedBatch {
  batchId: string;
  items: { executionId: string; inputName: string }[];
  submittedAt: number;
}

/** POST /batches (items in one request, ≤1000) → PUT the missing blobs → POST /submit. */
export async function submitBatch(client: Client, spec: BatchSpec): Promise<SubmittedBatch> {
  const script = Buffer.from(spec.script);
  const blobs = new Map<string, Buffer>([[sha256(script), script]]);
  const items = spec.items.map((it) => {
    const bytes = Buffer.from(it.content);
    blobs.set(sha256(bytes), bytes);
    return { inputName: it.name, args: [it.name], inputs: [{ path: it.name, sha256: sha256(bytes), size: bytes.length, arg: 0 }] };
  });
  const created = await client.ok('POST', '/api/v1/batches', {
    name: spec.name ?? 'reliability',
    template: { script: { name: 'job.py', sha256: sha256(script), size: script.length }, limits: { timeoutSeconds: 120, memoryMb: 128, cpus: 0.5 }, ...spec.template },
    items,
  });
  await mapLimit(created.uploads as { url: string; sha256: string }[], 8, (u) => putBlob(u.url, blobs.get(u.sha256)!, client.latency));
  await client.ok('POST', `/api/v1/batches/${created.batch.id}/submit`);
  return { batchId: created.batch.id, items: created.items, submittedAt: Date.now() };
}

export async function waitBatch(client: Client, batchId: string, timeoutMs: number, everyMs = 500): Promise<any> {
  return waitFor(`batch ${batchId} to finish`, async () => {
    const b = (await client.ok('GET', `/api/v1/batches/${batchId}`)).batch;
    return b.status === 'finished' || b.status === 'canceled' ? b : undefined;
  }, timeoutMs, everyMs);
}

/** The script every batch test uses: one output per item, derived from the input only. */
export const ECHO_SCRIPT = [
  'import sys, os',
  'src = sys.argv[1]',
  'data = open(src).read()',
  'os.makedirs("out", exist_ok=True)',
  'open("out/result.txt", "w").write("result:" + data)',
  'print("done", os.path.basename(src))',
].join('\n');

export interface ExactlyOnce {
  items: number;
  succeeded: number;
  executionsInBatch: number;
  attempts: Record<number, number>;
  outputArtifacts: number;
  duplicateOutputs: string[];
  wrongContent: string[];
  missingObjects: string[];
  duplicateLogs: string[];
}

/**
 * Proves a batch ran each item exactly once: through the API (one succeeded execution per input,
 * no extra executions in the batch, exactly one output artifact with the right bytes, one set of
 * logs) and through the object store (every artifact's object exists).
 */
export async function checkExactlyOnce(stack: Stack, account: Account, b: SubmittedBatch, expected: (inputName: string) => string): Promise<ExactlyOnce> {
  const client = account.client;
  const listed: any[] = [];
  let cursor: string | null = null;
  do {
    const r: any = await client.ok('GET', `/api/v1/executions?batch=${b.batchId}&limit=200${cursor ? `&cursor=${cursor}` : ''}`);
    listed.push(...r.executions);
    cursor = r.nextCursor;
  } while (cursor);
  const attempts: Record<number, number> = {};
  for (const e of listed) attempts[e.attempt] = (attempts[e.attempt] ?? 0) + 1;
  const res: ExactlyOnce = {
    items: b.items.length,
    succeeded: listed.filter((e) => e.status === 'succeeded').length,
    executionsInBatch: listed.length,
    attempts,
    outputArtifacts: 0,
    duplicateOutputs: [],
    wrongContent: [],
    missingObjects: [],
    duplicateLogs: [],
  };
  const stored = new Set(await stack.listObjects(`blobs/${account.accountId}/`));
  await mapLimit(b.items, 8, async (item) => {
    const arts = (await client.ok('GET', `/api/v1/executions/${item.executionId}/artifacts`)).artifacts as any[];
    const outs = arts.filter((a) => a.kind === 'output');
    res.outputArtifacts += outs.length;
    if (outs.length !== 1) res.duplicateOutputs.push(`${item.inputName}: ${outs.length} outputs`);
    const logs = arts.filter((a) => a.kind === 'log').map((a) => a.path);
    if (new Set(logs).size !== logs.length) res.duplicateLogs.push(`${item.inputName}: ${logs.join(',')}`);
    for (const a of arts) if (!stored.has(`blobs/${account.accountId}/${a.sha256}`)) res.missingObjects.push(`${item.inputName}: ${a.path}`);
    if (outs[0]) {
      const got = (await download(outs[0])).toString();
      if (got !== expected(item.inputName)) res.wrongContent.push(`${item.inputName}: ${JSON.stringify(got.slice(0, 80))}`);
    }
  });
  return res;
}
