import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile, mkdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime, ImageMissingError, RUNNER_LABEL, type RunJobSpec } from './runtime.js';
import { BASE_IMAGE, requireDocker } from './test-support.js';

const runnerId = `test-${randomUUID().slice(0, 8)}`;
const runtime = new DockerRuntime({ runnerId });
const docker = runtime.docker;
const dirs: string[] = [];

beforeAll(async () => {
  await requireDocker(docker);
});

afterAll(async () => {
  await runtime.removeContainersByLabel(`${RUNNER_LABEL}=${runnerId}`);
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** A job running `python3 script.py` with small limits; output is collected as text. */
async function job(script: string, overrides: Partial<RunJobSpec> = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'rgrid-rt-'));
  dirs.push(dir);
  const workDir = join(dir, 'work');
  await mkdir(workDir);
  await writeFile(join(workDir, 'input.txt'), 'hello input\n');
  const scriptHostPath = join(dir, 'script.py');
  await writeFile(scriptHostPath, script, { mode: 0o600 });
  const out = { stdout: '', stderr: '' };
  const spec: RunJobSpec = {
    image: BASE_IMAGE,
    cmd: ['python3', '/rgrid/script.py'],
    workDir,
    scriptHostPath,
    scriptContainerPath: '/rgrid/script.py',
    env: { RGRID_TEST: 'yes' },
    memoryBytes: 64 * 1024 * 1024,
    nanoCpus: 500_000_000,
    pidsLimit: 32,
    timeoutMs: 20_000,
    labels: { 'rgrid.execution': 'exec-1' },
    onStdout: (c) => (out.stdout += c.toString()),
    onStderr: (c) => (out.stderr += c.toString()),
    ...overrides,
  };
  return { spec, out, workDir, run: () => runtime.runJob(spec) };
}

async function ourContainers(): Promise<number> {
  const list = await docker.listContainers({ all: true, filters: { label: [`${RUNNER_LABEL}=${runnerId}`] } });
  return list.length;
}

describe('DockerRuntime.runJob', () => {
  it('keeps stdout and stderr apart and reports the exit code; env and input are visible', async () => {
    const j = await job(
      [
        'import os, sys',
        'print("to stdout", os.environ["RGRID_TEST"])',
        'print("to stderr", file=sys.stderr)',
        'print(open("input.txt").read().strip())',
        'sys.exit(3)',
      ].join('\n'),
    );
    const r = await j.run();
    expect(r).toMatchObject({ exitCode: 3, timedOut: false, oomKilled: false, canceled: false });
    expect(j.out.stdout).toBe('to stdout yes\nhello input\n');
    expect(j.out.stderr).toBe('to stderr\n');
    expect(await ourContainers()).toBe(0);
  }, 20_000);

  it('runs as nobody without capabilities; /work and /tmp writable, root filesystem and script read-only', async () => {
    const j = await job(
      [
        'import errno, os',
        'print("uid", os.getuid(), os.getgid())',
        'caps = [l for l in open("/proc/self/status") if l.startswith("CapEff")][0].split()[1]',
        'print("capeff", caps)',
        'open("/work/out.txt", "w").write("result")',
        'open("/tmp/scratch", "w").write("x")',
        // /var/tmp is world-writable (1777) in Debian, so only the read-only root stops this.
        'for p in ["/var/tmp/x", "/rgrid/script.py", "/etc/x"]:',
        '    try:',
        '        open(p, "w")',
        '        print(p, "WRITABLE")',
        '    except OSError as e:',
        '        print(p, errno.errorcode[e.errno])',
        'print("root", [l.split()[3].split(",")[0] for l in open("/proc/mounts") if l.split()[1] == "/"])',
      ].join('\n'),
    );
    const r = await j.run();
    expect(j.out.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(j.out.stdout).toContain('uid 65534 65534');
    expect(j.out.stdout).toContain('capeff 0000000000000000');
    expect(j.out.stdout).toContain('/var/tmp/x EROFS');
    expect(j.out.stdout).toMatch(/\/rgrid\/script\.py (EROFS|EACCES)/);
    expect(j.out.stdout).toMatch(/\/etc\/x (EROFS|EACCES)/);
    expect(j.out.stdout).toContain("root ['ro']");
    expect(await readFile(join(j.workDir, 'out.txt'), 'utf8')).toBe('result');
  }, 20_000);

  it('has no network: only loopback, and connects fail without leaving the container', async () => {
    // 1.1.1.1 is never reached: with no interface but lo there is no route, so connect()
    // fails locally with ENETUNREACH. 127.0.0.1 is the container's own loopback (refused).
    const j = await job(
      [
        'import socket',
        'print("ifaces", sorted(n for _, n in socket.if_nameindex()))',
        'for host, port in [("127.0.0.1", 3141), ("1.1.1.1", 53)]:',
        '    s = socket.socket(); s.settimeout(2)',
        '    try:',
        '        s.connect((host, port)); print(host, "CONNECTED")',
        '    except OSError as e:',
        '        print(host, "failed", type(e).__name__)',
      ].join('\n'),
    );
    const r = await j.run();
    expect(r.exitCode).toBe(0);
    expect(j.out.stdout).toContain("ifaces ['lo']");
    expect(j.out.stdout).toMatch(/127\.0\.0\.1 failed/);
    expect(j.out.stdout).toMatch(/1\.1\.1\.1 failed/);
    expect(j.out.stdout).not.toContain('CONNECTED');
  }, 20_000);

  it('kills the job at the timeout', async () => {
    const j = await job('import time\nprint("started", flush=True)\ntime.sleep(60)\n', { timeoutMs: 1_500 });
    const r = await j.run();
    expect(r.timedOut).toBe(true);
    expect(r.canceled).toBe(false);
    expect(r.exitCode).toBe(137);
    expect(r.durationMs).toBeGreaterThanOrEqual(1_400);
    expect(r.durationMs).toBeLessThan(10_000);
    expect(j.out.stdout).toBe('started\n');
    expect(await ourContainers()).toBe(0);
  }, 20_000);

  it('reports an OOM kill', async () => {
    // b"x" * n writes every page (a zeroed bytearray might never be touched and committed).
    const j = await job('data = b"x" * (256 * 1024 * 1024)\nprint("survived")\n', { memoryBytes: 48 * 1024 * 1024 });
    const r = await j.run();
    expect(r.oomKilled).toBe(true);
    expect(r.exitCode).toBe(137);
    expect(j.out.stdout).not.toContain('survived');
  }, 20_000);

  it('contains a fork bomb with the pids limit', async () => {
    const j = await job(
      [
        'import os, time',
        'n = 0',
        'try:',
        '    while True:',
        '        if os.fork() == 0:',
        '            time.sleep(30); os._exit(0)',
        '        n += 1',
        'except OSError as e:',
        '    print("fork failed after", n, flush=True)',
      ].join('\n'),
      { pidsLimit: 16 },
    );
    const r = await j.run();
    expect(r.exitCode).toBe(0);
    const m = /fork failed after (\d+)/.exec(j.out.stdout);
    expect(m, j.out.stdout + j.out.stderr).not.toBeNull();
    expect(Number(m![1])).toBeLessThan(16);
  }, 30_000);

  it('cancels on abort', async () => {
    const j = await job('import time\ntime.sleep(60)\n');
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 1_000);
    const r = await runtime.runJob({ ...j.spec, signal: ac.signal });
    expect(r).toMatchObject({ canceled: true, timedOut: false });
    expect(r.durationMs).toBeLessThan(10_000);
    expect(await ourContainers()).toBe(0);

    const pre = await runtime.runJob({ ...j.spec, signal: AbortSignal.abort() });
    expect(pre).toMatchObject({ canceled: true, exitCode: null });
  }, 20_000);

  it('throws ImageMissingError for an unknown image and leaves no container', async () => {
    const j = await job('print(1)\n', { image: 'rgrid-no-such-image:never' });
    await expect(j.run()).rejects.toBeInstanceOf(ImageMissingError);
    expect(await ourContainers()).toBe(0);
  }, 20_000);

  it('hands the job dir to the job user', async () => {
    const j = await job('print("ok")\n');
    await j.run();
    const st = await stat(join(j.workDir, 'input.txt'));
    expect([st.uid, st.gid]).toEqual([65534, 65534]);
  }, 20_000);
});

describe('DockerRuntime housekeeping', () => {
  it('removes orphans by label, running or not', async () => {
    const orphanId = `orphan-${randomUUID().slice(0, 8)}`;
    const label = `${RUNNER_LABEL}=${orphanId}`;
    const create = () =>
      docker.createContainer({
        Image: BASE_IMAGE,
        Cmd: ['sleep', '60'],
        Labels: { [RUNNER_LABEL]: orphanId },
        NetworkDisabled: true,
        HostConfig: { NetworkMode: 'none' },
      });
    const running = await create();
    await running.start();
    await create(); // created, never started
    expect(await runtime.removeContainersByLabel(label)).toBe(2);
    expect(await docker.listContainers({ all: true, filters: { label: [label] } })).toEqual([]);
    expect(await runtime.removeContainersByLabel(label)).toBe(0);
  }, 20_000);

  it('pings and checks images', async () => {
    await runtime.ping();
    expect(await runtime.imageExists(BASE_IMAGE)).toBe(true);
    expect(await runtime.imageExists('rgrid-no-such-image:never')).toBe(false);
  });
});
