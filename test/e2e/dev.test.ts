// `rgrid dev` as a process: boot, CLI config, Ctrl+C, restart, the Docker check, and no orphans.
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, show, spawnCli, workspace, type Workspace } from '../harness/cli.js';
import { leftoverContainers, processAlive, requireRunnerPrerequisites } from '../harness/stack.js';

let ws: Workspace;

beforeAll(async () => {
  ws = await workspace();
});

afterAll(async () => {
  await ws?.cleanup();
});

const CONTROL_PLANE = /Control plane\s+(http:\/\/127\.0\.0\.1:\d+)/;

describe('rgrid dev', () => {
  it('boots, points the CLI at itself, prints how to add runners; Ctrl+C stops it', async () => {
    const dataDir = join(ws.root, 'dev-a');
    const dev = spawnCli(['dev', '--port', '0', '--runners', '0', '--data-dir', dataDir], ws);
    await dev.waitFor(/Stop everything:\s+Ctrl\+C/, 'stderr', 60_000);
    const [, url] = dev.stderr().match(CONTROL_PLANE)!;
    expect(dev.stderr()).toMatch(new RegExp(`npx rgrid-runner --api-url ${url} --registration-token "\\$\\(cat .*dev-a/registration-token\\)" --pool default`));
    expect(dev.stderr()).toMatch(/CLI configured: .*config\.json/);

    const list = await runCli(['list'], ws);
    expect(list.code, show(['list'], list)).toBe(0);
    expect(list.stdout).toBe('No executions yet.\n');
    expect(JSON.parse(await readFile(join(ws.configDir, 'config.json'), 'utf8'))).toEqual({ apiUrl: url, apiKey: expect.stringMatching(/^rgrid_sk_/) });

    dev.child.kill('SIGINT');
    const stopped = await dev.done;
    expect(stopped.code, show(['dev'], stopped)).toBe(0);
    expect(stopped.stderr).toMatch(/Stopped\./);
    expect(existsSync(join(dataDir, 'dev.lock'))).toBe(false);
    await expect(fetch(`${url}/health`)).rejects.toThrow(); // nothing listens any more
    // Restarting on the same data dir (same key, migrations once) is covered in cli/dev/stack.test.ts.
  }, 120_000);

  it('without a reachable Docker daemon: says so and how to fix it', async () => {
    const args = ['dev', '--port', '0', '--data-dir', join(ws.root, 'dev-b')];
    const r = await runCli(args, ws, { DOCKER_HOST: `unix://${join(ws.root, 'no-docker.sock')}` });
    expect(r.code, show(args, r)).toBe(69);
    expect(r.stderr).toMatch(/Error: Cannot reach a Docker daemon at unix:\/\/.*no-docker\.sock/);
    expect(r.stderr).toMatch(/docker-up\.sh/);
    expect(r.stderr).toMatch(/--runners 0/);
  });

  it('with a runner: Ctrl+C in the middle of a job leaves no runner process and no container behind', async () => {
    await requireRunnerPrerequisites();
    const dataDir = join(ws.root, 'dev-c');
    const dev = spawnCli(['dev', '--port', '0', '--runners', '1', '--data-dir', dataDir, '--pip-index-url', 'http://127.0.0.1:3141/simple/'], ws);
    await dev.waitFor(/Runners\s+1 on pool default/, 'stderr', 60_000);
    const pids = JSON.parse(await readFile(join(dataDir, 'runner-pids.json'), 'utf8')) as number[];
    expect(pids).toHaveLength(1);

    await writeFile(join(ws.cwd, 'long.py'), 'import time\nprint("started", flush=True)\ntime.sleep(120)\n');
    const run = spawnCli(['run', 'long.py'], ws);
    const [, id] = await run.waitFor(/(exec_[a-z2-7]{24}) submitted/);
    await run.waitFor(/started/, 'stdout', 60_000);
    const status = JSON.parse((await runCli(['status', id!, '--json'], ws)).stdout);
    const runnerId = status.execution.runnerId as string;
    expect(runnerId).toMatch(/^rnr_/);
    expect(await leftoverContainers([runnerId])).toHaveLength(1); // the job's container, running

    const t0 = Date.now();
    dev.child.kill('SIGINT');
    const stopped = await dev.done;
    console.log(`rgrid dev stopped ${Date.now() - t0} ms after Ctrl+C`);
    expect(stopped.code, show(['dev'], stopped)).toBe(0);
    run.child.kill('SIGINT');
    await run.done;
    expect(pids.filter(processAlive)).toEqual([]);
    expect(await leftoverContainers([runnerId])).toEqual([]);
  }, 120_000);
});
