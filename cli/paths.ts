/** Where the package's own files are, wherever it is installed or cloned. */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root (cli/ is one level below it). */
export const PACKAGE_ROOT = fileURLToPath(new URL('../', import.meta.url));
export const RGRID_BIN = join(PACKAGE_ROOT, 'bin', 'rgrid.mjs');
export const RUNNER_BIN = join(PACKAGE_ROOT, 'bin', 'rgrid-runner.mjs');
