import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EnvBuildError, ensureEnvImage } from './build.js';
import { DockerRuntime, ImageMissingError, RUNNER_LABEL } from './runtime.js';
import { BASE_IMAGE, PIP_INDEX_URL, requireDocker, requirePipIndex } from './test-support.js';

const docker = new Docker();
// A fresh tag per run, so the first ensure really builds (the pip cache mount may be warm).
const run = randomUUID().slice(0, 8);
const tags: string[] = [];
const tag = (name: string) => {
  const t = `rgrid-test-env:${name}-${run}`;
  tags.push(t);
  return t;
};
let tmp: string;

beforeAll(async () => {
  await requireDocker(docker);
  await requirePipIndex();
  tmp = await mkdtemp(join(tmpdir(), 'rgrid-build-'));
});

afterAll(async () => {
  for (const t of tags) await docker.getImage(t).remove({ force: true }).catch(() => undefined);
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('ensureEnvImage', () => {
  it('builds once for concurrent callers, then hits the cache; numpy from the local index works as the job user', async () => {
    const t = tag('numpy');
    const logs: string[] = [];
    // The comment makes the requirements unique to this run: otherwise BuildKit's layer cache
    // from an earlier run would answer the pip step and nothing would really be built.
    const requirementsText = `numpy\n# test run ${run}\n`;
    const opts = { baseImage: BASE_IMAGE, requirementsText, tag: t, pipIndexUrl: PIP_INDEX_URL };
    const first = ensureEnvImage({ ...opts, onLog: (l) => logs.push(l) });
    const second = ensureEnvImage({ ...opts, onLog: () => expect.fail('second caller must not build') });
    expect(second).toBe(first); // joined the in-flight build
    const r = await first;
    expect(r).toMatchObject({ cacheHit: false, tag: t });
    expect(r.buildSeconds).toBeGreaterThan(0);
    expect(logs.some((l) => /Successfully installed .*numpy/.test(l))).toBe(true);
    console.log(`numpy env build: ${r.buildSeconds.toFixed(1)} s`);

    expect(await ensureEnvImage(opts)).toEqual({ cacheHit: true, buildSeconds: 0, tag: t });

    // The built environment is usable inside a locked-down job container.
    const runnerId = `build-test-${run}`;
    const runtime = new DockerRuntime({ runnerId });
    const workDir = join(tmp, 'work');
    await mkdir(workDir);
    const script = join(tmp, 'check.py');
    await writeFile(script, 'import numpy, sys\nprint(sys.prefix, numpy.__version__, int(numpy.arange(5).sum()))\n');
    let out = '';
    let err = '';
    const res = await runtime.runJob({
      image: t,
      cmd: ['python', '/rgrid/check.py'],
      workDir,
      scriptHostPath: script,
      scriptContainerPath: '/rgrid/check.py',
      env: {},
      memoryBytes: 256 * 1024 * 1024,
      nanoCpus: 1_000_000_000,
      pidsLimit: 64,
      timeoutMs: 30_000,
      labels: {},
      onStdout: (c) => (out += c.toString()),
      onStderr: (c) => (err += c.toString()),
    });
    expect(err).toBe('');
    expect(res.exitCode).toBe(0);
    expect(out).toMatch(/^\/opt\/venv \d+\.\d+\.\d+ 10\n$/);
    await runtime.removeContainersByLabel(`${RUNNER_LABEL}=${runnerId}`);
  }, 180_000);

  it("fails with pip's own error for an unknown package", async () => {
    const t = tag('missing');
    const err = await ensureEnvImage({
      baseImage: BASE_IMAGE,
      requirementsText: 'nonexistent-pkg-xyz==1.0\n',
      tag: t,
      pipIndexUrl: PIP_INDEX_URL,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EnvBuildError);
    expect((err as Error).message).toContain('No matching distribution found for nonexistent-pkg-xyz');
    expect(await docker.getImage(t).inspect().then(() => true, () => false)).toBe(false);
  }, 120_000);

  it('names a base image that is missing and cannot be pulled', async () => {
    // A registry on 127.0.0.1:1 refuses at once: the pull attempt stays on this machine.
    const base = '127.0.0.1:1/rgrid-missing-base:none';
    const err = await ensureEnvImage({ baseImage: base, requirementsText: '', tag: tag('nobase'), pipIndexUrl: PIP_INDEX_URL, pullBaseImage: true }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ImageMissingError);
    expect((err as ImageMissingError).image).toBe(base);
    expect((err as Error).message).toContain(base);
    expect((err as Error).message).toContain('pull failed');

    const noPull = await ensureEnvImage({
      baseImage: 'python:3.12-slim-rgrid-never-built',
      requirementsText: '',
      tag: tag('nopull'),
      pipIndexUrl: PIP_INDEX_URL,
      pullBaseImage: false,
    }).catch((e: unknown) => e);
    expect(noPull).toBeInstanceOf(ImageMissingError);
    expect((noPull as Error).message).toContain('python:3.12-slim-rgrid-never-built');
  }, 60_000);
});
