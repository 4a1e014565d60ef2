/**
 * The local stack for end-to-end tests: `startStack` from cli/dev/stack.ts (the same code
 * `rgrid dev` runs) in a temp data dir on free ports. Tests that need a runner need Docker, the
 * base images and the runner agent: when one is missing they FAIL with the command that fixes it;
 * they never skip, so a green run always means the whole path was exercised.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { startStack, type Stack } from '../../cli/dev/stack.js';
import { RUNNER_BIN } from '../../cli/paths.js';
import { dockerStatus, RUNNER_LABEL } from '../../cli/dev/docker.js';

export const PIP_INDEX_URL = process.env.RGRID_PIP_INDEX_URL ?? 'http://127.0.0.1:3141/simple/';
const SETUP = 'bash .ci/docker-up.sh && bash .ci/base-images.sh && bash .ci/pip-index.sh';

export async function requireRunnerPrerequisites(): Promise<void> {
  if (!existsSync(RUNNER_BIN)) throw new Error(`the runner agent is missing (${RUNNER_BIN}); these tests need it`);
  const docker = await dockerStatus();
  if (!docker.ok) throw new Error(`Docker is not reachable at ${docker.target} (${docker.reason}). Run: ${SETUP}`);
  const images = await new Docker().listImages({ filters: { reference: ['python:3.11-slim'] } });
  if (!images.length) throw new Error(`base image python:3.11-slim is missing. Run: ${SETUP}`);
  // Environment builds install from this index; without it every build would fail for the wrong reason.
  const index = await fetch(PIP_INDEX_URL).catch((err: Error) => err);
  // Read the body: an unread one leaves undici's parser paused when the server hangs up.
  if (!(index instanceof Error)) await index.arrayBuffer().catch(() => undefined);
  if (index instanceof Error || !index.ok) throw new Error(`the package index ${PIP_INDEX_URL} does not answer. Run: ${SETUP}`);
}

export interface TestStack extends Stack {
  cleanup(): Promise<void>;
}

export async function startTestStack(opts: { runners?: number; slots?: number; workerVars?: Record<string, string> } = {}): Promise<TestStack> {
  const runners = opts.runners ?? 0;
  if (runners > 0) await requireRunnerPrerequisites();
  const dataDir = await mkdtemp(join(tmpdir(), 'rgrid-e2e-stack-'));
  const stack = await startStack({ dataDir, port: 0, runners, slots: opts.slots ?? 4, pipIndexUrl: PIP_INDEX_URL, ...(opts.workerVars ? { workerVars: opts.workerVars } : {}) });
  return Object.assign(stack, {
    async cleanup() {
      await stack.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  });
}

/** Containers still carrying one of these runners' labels (should be none after stop). */
export async function leftoverContainers(runnerIds: string[]): Promise<string[]> {
  const docker = new Docker();
  const out: string[] = [];
  for (const id of runnerIds) {
    const list = await docker.listContainers({ all: true, filters: { label: [`${RUNNER_LABEL}=${id}`] } });
    out.push(...list.map((c) => c.Id));
  }
  return out;
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
