/**
 * Shared setup for the Docker integration tests. They run against the real daemon (STYLE.md #11)
 * and must FAIL, not skip, when it is missing: a skipped suite would hide a broken CI setup.
 */
import Docker from 'dockerode';
import { imageExists } from './runtime.js';

export const BASE_IMAGE = 'python:3.11-slim';
export const PIP_INDEX_URL = process.env.RGRID_PIP_INDEX_URL ?? 'http://127.0.0.1:3141/simple/';

export async function requireDocker(docker: Docker, images: string[] = [BASE_IMAGE]): Promise<void> {
  try {
    await docker.ping();
  } catch (err) {
    throw new Error(
      `Docker daemon not reachable (${err instanceof Error ? err.message : String(err)}). ` +
        'Start it with .ci/docker-up.sh (or set DOCKER_HOST).',
    );
  }
  for (const image of images) {
    if (!(await imageExists(docker, image))) {
      throw new Error(`image ${image} missing: build the base images with .ci/base-images.sh`);
    }
  }
}

export async function requirePipIndex(url = PIP_INDEX_URL): Promise<void> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(3_000) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
  } catch (err) {
    throw new Error(
      `pip index ${url} not reachable (${err instanceof Error ? err.message : String(err)}). ` +
        'Start it with .ci/pip-index.sh or set RGRID_PIP_INDEX_URL.',
    );
  }
}
