/**
 * `npm run demo`: boot the local stack, run examples/csv-summary over its sample CSVs with the
 * real `rgrid run` (a child process, exactly what a user would type), download the outputs, stop
 * the stack. The stack lives in a temp dir and uses free ports, so the demo never disturbs an
 * `rgrid dev` that is already running or the user's CLI config.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { startStack, type Stack } from './dev/stack.js';
import { PACKAGE_ROOT, RGRID_BIN } from './paths.js';
import { CLI_EXIT } from './errors.js';
import { bold, cyan, dim, log, note } from './ui.js';

export const EXAMPLE_DIR = join(PACKAGE_ROOT, 'examples', 'csv-summary');

export interface DemoOptions {
  /** Where outputs go (default ./demo-output). */
  outputDir?: string;
  pipIndexUrl?: string;
  cwd?: string;
}

function rel(p: string, cwd: string): string {
  const r = relative(cwd, p);
  return r && !r.startsWith('..') ? r : p;
}

export async function runDemo(opts: DemoOptions = {}): Promise<number> {
  const cwd = opts.cwd ?? process.cwd();
  const outputDir = opts.outputDir ?? 'demo-output';
  const dataDir = await mkdtemp(join(tmpdir(), 'rgrid-demo-'));
  const configDir = join(dataDir, 'cli-config');
  const csvs = (await readdir(join(EXAMPLE_DIR, 'data'))).filter((f) => f.endsWith('.csv')).sort();
  const script = rel(join(EXAMPLE_DIR, 'summarize.py'), cwd);
  const inputs = csvs.map((f) => rel(join(EXAMPLE_DIR, 'data', f), cwd));

  note(bold('RGrid demo') + dim(': the local stack, one remote run, outputs downloaded, stack stopped.'));
  log.info('Starting the local stack (control plane in Miniflare, S3 store, one runner on Docker)…');
  let stack: Stack | undefined;
  let child: ReturnType<typeof spawn> | undefined;
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
    child?.kill('SIGINT');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let code: number = CLI_EXIT.error;
  try {
    const started = Date.now();
    stack = await startStack({ dataDir, port: 0, runners: 1, handleSignals: false, ...(opts.pipIndexUrl ? { pipIndexUrl: opts.pipIndexUrl } : {}) });
    log.success(`Stack up in ${((Date.now() - started) / 1000).toFixed(1)}s: control plane ${stack.apiUrl}, object store ${stack.s3.endpoint}`);
    if (interrupted) return CLI_EXIT.interrupted;

    const args = ['run', script, ...inputs, '--output-dir', outputDir];
    note('');
    note(cyan(`$ rgrid ${args.join(' ')}`));
    code = await new Promise<number>((resolve) => {
      child = spawn(process.execPath, [RGRID_BIN, ...args], {
        cwd,
        stdio: 'inherit',
        env: { ...process.env, RGRID_API_URL: stack!.apiUrl, RGRID_API_KEY: stack!.apiKey, RGRID_CONFIG_DIR: configDir },
      });
      child.once('exit', (c, signal) => resolve(c ?? (signal ? 128 + 2 : 1)));
    });
    note('');
    if (code === 0) {
      log.success(`Demo finished. The outputs are in ${outputDir}/ (summary.md and stats/*.json).`);
      note(dim('Next: `npx rgrid dev` in one terminal, `npx rgrid run …` in another (see README.md).'));
    } else if (!interrupted) {
      log.error(`The demo run ended with exit code ${code}.`);
      note(`  Runner log: ${join(dataDir, 'logs', 'runner-1.log')}`);
    }
    return interrupted ? CLI_EXIT.interrupted : code;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (stack) {
      log.info('Stopping the local stack…');
      await stack.stop();
    }
    // Keep the stack's files (logs) when something went wrong, for the report above.
    if (code === 0 || interrupted) await rm(dataDir, { recursive: true, force: true });
  }
}
