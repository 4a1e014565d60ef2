/**
 * The fake Hetzner API served on 127.0.0.1, with machines behind it: every server it creates
 * reads its cloud-init user-data like a booting VM would — the YAML parsed by PyYAML (what
 * cloud-init itself uses), /etc/rgrid-runner.env taken from write_files — and starts a real
 * `node bin/rgrid-runner.mjs` with that environment. Only the work directory is redirected (the
 * "disk" of the machine is a temp dir). Deleting a server kills its runner at once, like
 * pulling the plug. Every user-data is also checked with `cloud-init schema`.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { FakeHetzner, type FakeServer } from './fake-hetzner.js';
import { parseEnvFile, RUNNER_ENV_PATH } from '../../shared/fleet/user-data.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const RUNNER_BIN = join(ROOT, 'bin', 'rgrid-runner.mjs');

export interface Machine {
  server: FakeServer;
  /** RGRID_RUNNER_* settings read from the user-data. */
  env: Record<string, string>;
  /** Boots with a runner that never comes up (a broken image, say). */
  broken: boolean;
  child: ChildProcess | null;
  exited: Promise<number | string | null>;
  output: string[];
  /** `cloud-init schema` on this server's user-data. */
  schema: Promise<{ ok: boolean; output: string }>;
}

export interface FakeCloud {
  url: string;
  fake: FakeHetzner;
  machines: Machine[];
  /** The next `n` servers boot without a working runner. */
  breakNextBoots(n: number): void;
  close(): Promise<void>;
}

/** Parses YAML with PyYAML (cloud-init's own parser) and returns it as JSON. */
export async function parseYaml(text: string, dir: string): Promise<any> {
  const file = join(dir, `yaml-${process.pid}-${Math.random().toString(36).slice(2)}.yaml`);
  await writeFile(file, text);
  const { stdout } = await run('python3', ['-c', 'import json,sys,yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))', file]);
  return JSON.parse(stdout);
}

export async function cloudInitSchema(userData: string, dir: string): Promise<{ ok: boolean; output: string }> {
  const file = join(dir, `user-data-${process.pid}-${Math.random().toString(36).slice(2)}.yaml`);
  await writeFile(file, userData);
  try {
    const { stdout, stderr } = await run('cloud-init', ['schema', '--config-file', file]);
    return { ok: true, output: stdout + stderr };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    return { ok: false, output: `${e.stdout ?? ''}${e.stderr ?? ''}` || e.message };
  }
}

async function toRequest(req: IncomingMessage, base: string): Promise<Request> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const headers = new Headers();
  for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers.set(k, v);
  const body = chunks.length ? Buffer.concat(chunks) : undefined;
  return new Request(base + req.url, { method: req.method, headers, body: req.method === 'GET' || req.method === 'HEAD' ? undefined : body });
}

export async function startFakeCloud(opts: { token: string; dir: string; serverLimit?: number; log?: (line: string) => void }): Promise<FakeCloud> {
  const machines: Machine[] = [];
  let broken = 0;
  const log = opts.log ?? (() => undefined);
  await mkdir(opts.dir, { recursive: true });

  const boot = async (server: FakeServer) => {
    const doc = await parseYaml(server.userData ?? '', opts.dir);
    const file = (doc.write_files as { path: string; content: string }[]).find((f) => f.path === RUNNER_ENV_PATH);
    if (!file) throw new Error(`user-data of ${server.name} does not write ${RUNNER_ENV_PATH}`);
    const env = parseEnvFile(file.content);
    const machine: Machine = { server, env, broken: broken > 0, child: null, exited: Promise.resolve(null), output: [], schema: cloudInitSchema(server.userData ?? '', opts.dir) };
    if (broken > 0) broken--;
    machines.push(machine);
    if (machine.broken) {
      log(`[cloud] ${server.name}: booted, runner broken`);
      return;
    }
    const child = spawn(process.execPath, [RUNNER_BIN], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        ...(process.env.DOCKER_HOST ? { DOCKER_HOST: process.env.DOCKER_HOST } : {}),
        ...env,
        RGRID_RUNNER_WORK_DIR: join(opts.dir, 'machines', server.name),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    machine.child = child;
    machine.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
    for (const s of [child.stdout!, child.stderr!]) {
      s.setEncoding('utf8');
      s.on('data', (d: string) => {
        for (const line of d.split('\n').filter(Boolean)) {
          machine.output.push(line);
          log(`[${server.name}] ${line}`);
        }
      });
    }
    log(`[cloud] ${server.name}: booted, runner pid ${child.pid}`);
  };

  const kill = async (m: Machine) => {
    if (m.child?.pid && m.child.exitCode === null && m.child.signalCode === null) {
      try {
        process.kill(-m.child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await m.exited;
  };

  const fake = new FakeHetzner({
    token: opts.token,
    serverLimit: opts.serverLimit,
    onCreate: boot,
    onDelete: async (server) => {
      const m = machines.find((x) => x.server.id === server.id);
      log(`[cloud] ${server.name}: deleted`);
      if (m) await kill(m);
    },
  });

  let base = '';
  const http: Server = createServer((req, res) => {
    void (async () => {
      try {
        const out = await fake.handle(await toRequest(req, base));
        res.writeHead(out.status, Object.fromEntries(out.headers));
        res.end(Buffer.from(await out.arrayBuffer()));
      } catch (err) {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { code: 'server_error', message: (err as Error).message, details: null } }));
      }
    })();
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const addr = http.address();
  base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;

  return {
    url: base,
    fake,
    machines,
    breakNextBoots(n) {
      broken += n;
    },
    async close() {
      await Promise.all(machines.map(kill));
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}
