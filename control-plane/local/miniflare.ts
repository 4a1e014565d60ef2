/**
 * The control plane on this machine: the same Worker code, bundled with esbuild and run by
 * Miniflare (workerd) with D1 and Durable Objects, persisted to a directory when asked. Used by
 * `rgrid dev`, the demo and the end-to-end tests; production runs the same bundle on Workers.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { Miniflare } from 'miniflare';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface LocalControlPlaneOptions {
  /** 0 picks a free port. */
  port?: number;
  /** Directory for the bundle and, when `persist`, D1 and Durable Object state. */
  dataDir: string;
  persist?: boolean;
  /** Worker vars and secrets (ADMIN_SECRET, S3_*, LEASE_SECONDS, …). */
  bindings: Record<string, string>;
  /**
   * Where the Worker's own output goes (its structured log lines, workerd's warnings): appended to
   * this file instead of this process's terminal, which belongs to the user. Unset: inherited.
   */
  logFile?: string;
}

export interface LocalControlPlane {
  url: string;
  port: number;
  mf: Miniflare;
  dispose(): Promise<void>;
}

export async function bundleWorker(outDir: string): Promise<string> {
  await mkdir(outDir, { recursive: true });
  const outfile = join(outDir, 'worker.mjs');
  await build({
    entryPoints: [join(ROOT, 'control-plane/src/index.ts')],
    outfile,
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    mainFields: ['module', 'main'],
    conditions: ['workerd', 'worker', 'import', 'default'],
    external: ['cloudflare:*', 'node:*'],
    logLevel: 'error',
  });
  return outfile;
}

/** drizzle-kit migrations, applied in order and recorded like wrangler's d1_migrations table. */
export async function applyMigrations(mf: Miniflare): Promise<string[]> {
  const db = await mf.getD1Database('DB');
  await db.exec('CREATE TABLE IF NOT EXISTS d1_migrations (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE, applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL)');
  const done = new Set((await db.prepare('SELECT name FROM d1_migrations').all<{ name: string }>()).results.map((r: { name: string }) => r.name));
  const dir = join(ROOT, 'migrations');
  const files = (await readdir(dir)).filter((f) => f.endsWith('.sql')).sort();
  const applied: string[] = [];
  for (const file of files) {
    if (done.has(file)) continue;
    const sql = await readFile(join(dir, file), 'utf8');
    const statements = sql.split('--> statement-breakpoint').map((s) => s.trim()).filter(Boolean);
    await db.batch([...statements.map((s) => db.prepare(s)), db.prepare('INSERT INTO d1_migrations (name) VALUES (?)').bind(file)]);
    applied.push(file);
  }
  return applied;
}

function toFile(path: string) {
  return (stdout: Readable, stderr: Readable) => {
    const out = createWriteStream(path, { flags: 'a' });
    stdout.pipe(out, { end: false });
    stderr.pipe(out, { end: false });
  };
}

export async function startLocalControlPlane(opts: LocalControlPlaneOptions): Promise<LocalControlPlane> {
  const scriptPath = await bundleWorker(opts.dataDir);
  const state = join(opts.dataDir, 'state');
  const mf = new Miniflare({
    modules: true,
    scriptPath,
    // Module names are relative to this root; workerd refuses names that climb out with "..".
    modulesRoot: opts.dataDir,
    compatibilityDate: '2026-04-01',
    compatibilityFlags: ['nodejs_compat'],
    d1Databases: { DB: 'rgrid' },
    durableObjects: { DISPATCHER: { className: 'Dispatcher', useSQLite: true }, BATCHES: { className: 'BatchTracker', useSQLite: true } },
    ...(opts.persist ? { d1Persist: join(state, 'd1'), durableObjectsPersist: join(state, 'do') } : {}),
    bindings: opts.bindings,
    host: '127.0.0.1',
    port: opts.port ?? 0,
    // No request.cf data: Miniflare would otherwise fetch it from the internet at every start.
    cf: false,
    ...(opts.logFile ? { handleRuntimeStdio: toFile(opts.logFile) } : {}),
  });
  let ready: URL;
  try {
    ready = await mf.ready;
  } catch (err) {
    if (!opts.logFile) throw err;
    throw new Error(`the control plane (workerd) did not start: ${(err as Error).message} Its output is in ${opts.logFile}.`);
  }
  const url = ready.toString().replace(/\/$/, '');
  await applyMigrations(mf);
  return { url, port: Number(new URL(url).port), mf, dispose: () => mf.dispose() };
}
