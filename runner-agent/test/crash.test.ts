/**
 * Runner processes that die: a SIGKILLed runner's job is requeued when its lease expires and
 * completed exactly once by another runner; the restarted runner removes the container its
 * earlier life left behind. Also: SIGTERM drains, a second signal releases leases at once.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Docker from 'dockerode';
import { requireDocker } from '../src/docker/test-support.js';
import { artifactText, artifacts, getExecution, logsText, startTestStack, submit, waitFinal, waitStatus, type TestStack } from './harness.js';

const docker = new Docker();
let stack: TestStack;
const children = new Set<ChildProcess>();

function startRunner(name: string): ChildProcess & { output: () => string } {
  const cfg = stack.runnerConfig(name);
  const child = spawn(process.execPath, [join(__dirname, '../../bin/rgrid-runner.mjs'), '--api-url', cfg.apiUrl, '--registration-token', stack.registrationToken, '--work-dir', cfg.workDir, '--slots', '1', '--name', name, '--pip-index-url', cfg.pipIndexUrl, '--claim-wait', '1'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  children.add(child);
  child.on('exit', () => children.delete(child));
  return Object.assign(child, { output: () => out });
}

async function exited(child: ChildProcess, timeoutMs = 30_000): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('runner did not exit')), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(t);
      resolve(code);
    });
  });
}

async function runnerId(name: string): Promise<string> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      return JSON.parse(await readFile(join(stack.runnerConfig(name).workDir, 'runner.json'), 'utf8')).runnerId;
    } catch {
      if (Date.now() > deadline) throw new Error(`runner ${name} did not register`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

const containersOf = async (id: string) => docker.listContainers({ all: true, filters: { label: [`rgrid.runner=${id}`] } });

beforeAll(async () => {
  await requireDocker(docker);
  stack = await startTestStack({ leaseSeconds: 3, maxAttempts: 3 });
}, 120_000);

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await stack?.stop();
});

describe('runner crashes and shutdowns', () => {
  it('SIGKILL mid-job: requeued after the lease, completed once by another runner; the restart removes the orphan container', async () => {
    const a = startRunner('victim');
    const idA = await runnerId('victim');
    // Protocol v2: lease timing comes with every claim and heartbeat answer, never from this file.
    const stored = JSON.parse(await readFile(join(stack.runnerConfig('victim').workDir, 'runner.json'), 'utf8'));
    expect(Object.keys(stored).sort()).toEqual(['apiUrl', 'pool', 'runnerId', 'runnerToken']);
    const script = 'import time, os\nprint("attempt starts", flush=True)\ntime.sleep(4)\nopen("result.txt", "w").write("done")\n';
    const e = await submit(stack, { script });
    const running = await waitStatus(stack, e.id, 'running');
    expect(running.runnerId).toBe(idA);
    // Wait until the container really runs, then kill the runner without warning.
    const deadline = Date.now() + 30_000;
    while ((await containersOf(idA)).length === 0) {
      if (Date.now() > deadline) throw new Error('no container for the victim');
      await new Promise((r) => setTimeout(r, 100));
    }
    const killedAt = Date.now();
    a.kill('SIGKILL');
    await exited(a);
    expect((await containersOf(idA)).length).toBe(1); // the orphan

    const b = startRunner('rescuer');
    const final = await waitFinal(stack, e.id, 60_000);
    const requeueMs = Date.now() - killedAt;
    expect(final).toMatchObject({ status: 'succeeded', attempt: 2 });
    expect(final.runnerId).toBe(await runnerId('rescuer'));
    const outs = (await artifacts(stack, e.id)).filter((x) => x.kind === 'output');
    expect(outs.map((o) => o.path)).toEqual(['result.txt']); // exactly once
    expect((await artifactText(outs[0]!)).toString()).toBe('done');
    // lease 3 s + the job's own 4 s + slack: requeue happens within the lease, not minutes later.
    expect(requeueMs).toBeLessThan(30_000);

    // The victim comes back with the same work dir: it removes what its earlier life left.
    const a2 = startRunner('victim');
    const deadline2 = Date.now() + 20_000;
    while ((await containersOf(idA)).length > 0) {
      if (Date.now() > deadline2) throw new Error(`orphan container not removed:\n${a2.output()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(await runnerId('victim')).toBe(idA);
    b.kill('SIGTERM');
    a2.kill('SIGTERM');
    expect(await exited(b).catch((e) => { throw new Error(`${e.message}\n${b.output()}`); })).toBe(0);
    expect(await exited(a2).catch((e) => { throw new Error(`${e.message}\n${a2.output()}`); })).toBe(0);
  }, 120_000);

  it('SIGTERM drains: the running job finishes and reports; a second signal releases the lease for immediate requeue', async () => {
    const r = startRunner('drainer');
    await runnerId('drainer');
    const e = await submit(stack, { script: 'import time\nprint("go", flush=True)\ntime.sleep(2)\nopen("out.txt","w").write("x")\n' });
    await waitStatus(stack, e.id, 'running');
    r.kill('SIGTERM');
    expect(await exited(r)).toBe(0);
    expect((await getExecution(stack, e.id)).status).toBe('succeeded');

    const r2 = startRunner('hard-stop');
    await runnerId('hard-stop');
    const long = await submit(stack, { script: 'import time\nprint("go", flush=True)\ntime.sleep(60)\n' });
    await waitStatus(stack, long.id, 'running');
    const deadline = Date.now() + 30_000;
    while (!(await logsText(stack, long.id, 'stdout')).includes('go')) {
      if (Date.now() > deadline) throw new Error('job did not start');
      await new Promise((res) => setTimeout(res, 100));
    }
    r2.kill('SIGTERM');
    await new Promise((res) => setTimeout(res, 300));
    r2.kill('SIGTERM');
    expect(await exited(r2)).toBe(130);
    // Released, not expired: requeued at once, and the release cost the job no attempt.
    const back = await getExecution(stack, long.id);
    expect(back).toMatchObject({ status: 'queued', attempt: 1 });
    // Clean up: cancel the requeued job.
    await fetch(`${stack.url}/api/v1/executions/${long.id}/cancel`, { method: 'POST', headers: { authorization: `Bearer ${stack.apiKey}` } });
  }, 120_000);
});
