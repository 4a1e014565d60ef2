/**
 * The runner end to end: real control plane (Miniflare), real S3 store, real Docker daemon.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Docker from 'dockerode';
import { RunnerAgent } from '../src/agent.js';
import { requireDocker } from '../src/docker/test-support.js';
import { artifactText, artifacts, logsText, startTestStack, submit, waitFinal, type TestStack } from './harness.js';

let stack: TestStack;
let agent: RunnerAgent;
const docker = new Docker();

beforeAll(async () => {
  await requireDocker(docker);
  stack = await startTestStack();
  agent = new RunnerAgent(stack.runnerConfig('main', { slots: '3' }), { log: () => undefined });
  await agent.start();
}, 120_000);

afterAll(async () => {
  await agent?.kill();
  await stack?.stop();
});

describe('runner: jobs end to end', () => {
  it('round-trips stdout, stderr and the exit code', async () => {
    const e = await submit(stack, { script: 'import sys\nprint("to stdout")\nprint("to stderr", file=sys.stderr)\nsys.exit(3)\n' });
    const final = await waitFinal(stack, e.id);
    expect(final).toMatchObject({ status: 'failed', failureKind: 'script_error', exitCode: 3 });
    expect(await logsText(stack, e.id, 'stdout')).toBe('to stdout\n');
    expect(await logsText(stack, e.id, 'stderr')).toBe('to stderr\n');
    const logs = await artifacts(stack, e.id);
    const stdout = logs.find((a) => a.kind === 'log' && a.path === 'stdout.log');
    expect((await artifactText(stdout!)).toString()).toBe('to stdout\n');
  });

  it('moves inputs in and outputs out: subdirectories, binary files, rewritten arguments; unchanged inputs are not outputs', async () => {
    const binary = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const script = [
      'import sys, os, hashlib',
      'src = sys.argv[1]',
      'assert src == "/work/data/in.csv", src',
      'rows = open(src).read().splitlines()',
      'os.makedirs("results/deep", exist_ok=True)',
      'open("results/deep/count.txt", "w").write(str(len(rows)))',
      'b = open("blob.bin", "rb").read()',
      'open("results/copy.bin", "wb").write(bytes(reversed(b)))',
      'open("untouched.txt").read()',
      'print("mode", sys.argv[2])',
    ].join('\n');
    const e = await submit(stack, {
      script,
      inputs: [
        { path: 'data/in.csv', content: 'a\nb\nc\n', arg: 0 },
        { path: 'blob.bin', content: binary },
        { path: 'untouched.txt', content: 'same' },
      ],
      request: { args: ['in.csv', 'fast'] },
    });
    const final = await waitFinal(stack, e.id);
    expect(final.status, await logsText(stack, e.id)).toBe('succeeded');
    const outs = (await artifacts(stack, e.id)).filter((a) => a.kind === 'output');
    expect(outs.map((a) => a.path).sort()).toEqual(['results/copy.bin', 'results/deep/count.txt']);
    expect((await artifactText(outs.find((a) => a.path === 'results/deep/count.txt')!)).toString()).toBe('3');
    expect(await artifactText(outs.find((a) => a.path === 'results/copy.bin')!)).toEqual(Buffer.from([...binary].reverse()));
    expect(await logsText(stack, e.id, 'stdout')).toBe('mode fast\n');
  });

  it('stores text outputs gzip-compressed and large outputs through multipart, both verified by sha256', async () => {
    const script = [
      'import os, hashlib',
      'with open("big.bin", "wb") as f:',
      '    for i in range(110):',
      '        f.write(os.urandom(1024 * 1024))',
      'open("table.csv", "w").write("id,value\\n" + "".join(f"{i},{i*i}\\n" for i in range(20000)))',
      'for name in ["big.bin", "table.csv"]:',
      '    print(name, hashlib.sha256(open(name, "rb").read()).hexdigest())',
    ].join('\n');
    const e = await submit(stack, { script, request: { limits: { timeoutSeconds: 120, memoryMb: 512, cpus: 1 } } });
    const final = await waitFinal(stack, e.id, 120_000);
    const out = await logsText(stack, e.id, 'stdout');
    expect(final.status, out + (await logsText(stack, e.id))).toBe('succeeded');
    const sums = Object.fromEntries(out.trim().split('\n').map((l) => l.split(' ') as [string, string]));
    const outs = (await artifacts(stack, e.id)).filter((a) => a.kind === 'output');
    const big = outs.find((a) => a.path === 'big.bin')!;
    const csv = outs.find((a) => a.path === 'table.csv')!;
    expect(big).toMatchObject({ encoding: 'identity', size: 110 * 1024 * 1024, sha256: sums['big.bin'] });
    expect(csv).toMatchObject({ encoding: 'gzip', contentType: 'text/csv', sha256: sums['table.csv'] });
    const { createHash } = await import('node:crypto');
    const { gunzipSync } = await import('node:zlib');
    const { request } = await import('undici');
    // undici gives the stored bytes (fetch would transparently decode a Content-Encoding).
    const raw = async (url: string) => Buffer.from(await (await request(url)).body.arrayBuffer());
    const csvStored = await raw(csv.download!.url);
    expect(csvStored.length).toBeLessThan(csv.size / 2);
    expect(createHash('sha256').update(gunzipSync(csvStored)).digest('hex')).toBe(sums['table.csv']);
    expect(createHash('sha256').update(await raw(big.download!.url)).digest('hex')).toBe(sums['big.bin']);
  }, 180_000);

  it('an empty /work is fine', async () => {
    const e = await submit(stack, { script: 'pass\n' });
    expect((await waitFinal(stack, e.id)).status).toBe('succeeded');
    expect((await artifacts(stack, e.id)).filter((a) => a.kind === 'output')).toEqual([]);
  });

  it('runs in the sandbox: non-root, no network, read-only root, writable /work and /tmp; symlinks out of /work are not collected', async () => {
    const script = [
      'import os, socket',
      'assert os.getuid() != 0, "running as root"',
      'try:',
      '    socket.create_connection(("127.0.0.1", 9), timeout=2); print("NET OK")',
      'except OSError as e: print("no network:", type(e).__name__)',
      'for p in ["/etc/rgrid-test", "/usr/rgrid-test", "/opt/rgrid/x"]:',
      '    try:',
      '        open(p, "w").write("x"); print("WROTE", p)',
      '    except OSError as e: print("read-only:", p)',
      'open("/tmp/t", "w").write("ok")',
      'open("ok.txt", "w").write("ok")',
      'os.symlink("/etc/passwd", "passwd-link")',
    ].join('\n');
    const e = await submit(stack, { script });
    const final = await waitFinal(stack, e.id);
    const out = await logsText(stack, e.id, 'stdout');
    expect(final.status, out + (await logsText(stack, e.id, 'stderr'))).toBe('succeeded');
    expect(out).toContain('no network:');
    expect(out).not.toContain('NET OK');
    expect(out).not.toContain('WROTE');
    expect((await artifacts(stack, e.id)).filter((a) => a.kind === 'output').map((a) => a.path)).toEqual(['ok.txt']);
    expect(await logsText(stack, e.id, 'system')).toContain('not collected: "passwd-link": symbolic link');
  });

  it('distinguishes timeout and OOM', async () => {
    const slow = await submit(stack, { script: 'import time\ntime.sleep(60)\n', request: { limits: { timeoutSeconds: 2, memoryMb: 256, cpus: 1 } } });
    const hog = await submit(stack, { script: 'x = bytearray(400 * 1024 * 1024)\nfor i in range(0, len(x), 4096): x[i] = 1\n', request: { limits: { timeoutSeconds: 60, memoryMb: 64, cpus: 1 } } });
    expect(await waitFinal(stack, slow.id)).toMatchObject({ status: 'failed', failureKind: 'timeout' });
    expect(await waitFinal(stack, hog.id)).toMatchObject({ status: 'failed', failureKind: 'oom' });
  });

  it('builds an environment from requirements once and reuses it; an unknown package fails as build_failed with pip’s message', async () => {
    const marker = `# run ${Date.now()}`; // a fresh env key, so the first job really builds
    const script = 'import numpy\nprint(numpy.arange(4).sum())\n';
    const first = await submit(stack, { script, request: { requirements: `numpy\n${marker}\n` } });
    const f1 = await waitFinal(stack, first.id, 180_000);
    expect(f1.status, await logsText(stack, first.id)).toBe('succeeded');
    expect(await logsText(stack, first.id, 'stdout')).toBe('6\n');
    const second = await submit(stack, { script: script + '# again\n', request: { requirements: `${marker}\nnumpy\n` } });
    const f2 = await waitFinal(stack, second.id, 60_000);
    expect(f2.status).toBe('succeeded');
    expect(f2.envKey).toBe(f1.envKey);
    // The first job's image either was built here or survived from an earlier run of this suite.
    expect(f2.cache.envHit).toBe(true);

    const bad = await submit(stack, { script, request: { requirements: 'nonexistent-pkg-rgrid-xyz==1.0\n' } });
    const fb = await waitFinal(stack, bad.id, 120_000);
    expect(fb).toMatchObject({ status: 'failed', failureKind: 'build_failed' });
    expect(fb.message).toContain('No matching distribution found for nonexistent-pkg-rgrid-xyz');
    expect(await logsText(stack, bad.id, 'system')).toContain('[build]');
  }, 300_000);

  it('a canceled running job is stopped and ends canceled', async () => {
    const e = await submit(stack, { script: 'import time\nprint("started", flush=True)\ntime.sleep(120)\n' });
    const deadline = Date.now() + 30_000;
    while (!(await logsText(stack, e.id, 'stdout')).includes('started')) {
      if (Date.now() > deadline) throw new Error('job did not start');
      await new Promise((r) => setTimeout(r, 200));
    }
    const r = await fetch(`${stack.url}/api/v1/executions/${e.id}/cancel`, { method: 'POST', headers: { authorization: `Bearer ${stack.apiKey}` } });
    expect(r.status).toBe(200);
    expect(await waitFinal(stack, e.id, 30_000)).toMatchObject({ status: 'canceled', failureKind: 'canceled' });
  });
});
