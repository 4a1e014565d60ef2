/**
 * The dev stack's two questions for Docker: is a daemon reachable (runners need one), and did a
 * runner leave containers behind (it was killed before its own cleanup ran). The runner labels
 * every job container `rgrid.runner=<runnerId>` (runner-agent/src/docker).
 */
import Docker from 'dockerode';

export const RUNNER_LABEL = 'rgrid.runner';

export type DockerStatus = { ok: true } | { ok: false; reason: string; target: string };

function target(): string {
  return process.env.DOCKER_HOST || 'unix:///var/run/docker.sock';
}

export async function dockerStatus(timeoutMs = 3000): Promise<DockerStatus> {
  const docker = new Docker();
  try {
    await Promise.race([
      docker.ping(),
      new Promise((_, reject) => setTimeout(() => reject(new Error(`no answer within ${timeoutMs / 1000}s`)), timeoutMs).unref()),
    ]);
    return { ok: true };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return { ok: false, reason: e.code ?? e.message, target: target() };
  }
}

/** Force-removes containers left by these runners; returns how many. Errors are ignored. */
export async function removeRunnerContainers(runnerIds: string[]): Promise<number> {
  if (!runnerIds.length) return 0;
  const docker = new Docker();
  let removed = 0;
  for (const id of runnerIds) {
    try {
      const list = await docker.listContainers({ all: true, filters: { label: [`${RUNNER_LABEL}=${id}`] } });
      for (const c of list) {
        await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
        removed++;
      }
    } catch {
      // Docker went away: nothing more we can do here.
    }
  }
  return removed;
}
