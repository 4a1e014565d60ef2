/** `rgrid dev`: the whole system on this machine, until Ctrl+C. */
import { relative } from 'node:path';
import { configDir } from '../config.js';
import { startStack, CONTROL_PLANE_LOG, DEFAULT_PORT } from '../dev/stack.js';
import { parsePositiveInt } from '../run/values.js';
import { usageError } from '../errors.js';
import { bold, dim, log, note } from '../ui.js';
import { str, type CommandSpec } from './_args.js';
import { command } from './_shared.js';

export const spec: CommandSpec = {
  name: 'dev',
  description: 'Start the control plane, an object store and runners on this machine (state persists in the data dir)',
  positionals: [],
  flags: {
    port: { type: 'string', valueHint: 'port', description: `Control plane port on 127.0.0.1 (default ${DEFAULT_PORT}; 0 = any free port)` },
    'data-dir': { type: 'string', valueHint: 'dir', description: 'Where state lives (default .rgrid)' },
    runners: { type: 'string', valueHint: 'n', description: 'Runner processes to start; 0 for none (default 1)' },
    slots: { type: 'string', valueHint: 'n', description: 'Jobs each runner runs at once (default 2)' },
    'pip-index-url': { type: 'string', valueHint: 'url', description: 'Package index for environment builds (default: RGRID_PIP_INDEX_URL, else the runner default)' },
  },
};

function shortPath(p: string): string {
  const rel = relative(process.cwd(), p);
  return rel && !rel.startsWith('..') ? rel : p;
}

export default command(spec, async (args) => {
  const portRaw = str(args, 'port');
  const port = portRaw === undefined ? DEFAULT_PORT : portRaw === '0' ? 0 : parsePositiveInt(portRaw, 'port', 65535);
  const runnersRaw = str(args, 'runners');
  const runners = runnersRaw === undefined ? 1 : runnersRaw === '0' ? 0 : parsePositiveInt(runnersRaw, 'runners', 32);
  const slotsRaw = str(args, 'slots');
  const slots = slotsRaw === undefined ? 2 : parsePositiveInt(slotsRaw, 'slots', 256);
  const pipIndexUrl = str(args, 'pip-index-url') ?? process.env.RGRID_PIP_INDEX_URL;
  if (pipIndexUrl !== undefined && !/^https?:\/\//.test(pipIndexUrl)) throw usageError(`Invalid --pip-index-url "${pipIndexUrl}"`, 'Give an http(s) URL of a PEP 503 simple index.');
  const dataDir = str(args, 'data-dir') ?? '.rgrid';

  // Our own handlers, installed before anything starts: a Ctrl+C during boot stops what was
  // started so far, and once up, runners are stopped before the control plane they talk to.
  let stopRequested: string | undefined;
  let onStopRequest: ((signal: string) => void) | undefined;
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(s, () => {
      if (stopRequested) return;
      stopRequested = s;
      onStopRequest?.(s);
    });
  }

  log.info(`Starting the local stack (state in ${dataDir})…`);
  const stack = await startStack({
    dataDir,
    port,
    runners,
    slots,
    ...(pipIndexUrl ? { pipIndexUrl } : {}),
    cliConfigDir: configDir(process.env),
    handleSignals: false,
    onMessage: (m) => log.info(m),
    onRunnerLine: (i, line) => note(dim(`[runner ${i}] `) + line),
  });

  const stopped = new Promise<number>((resolve) => {
    onStopRequest = (signal) => {
      note('');
      log.info(`${signal === 'SIGINT' ? 'Ctrl+C' : signal}: stopping runners, control plane and object store…`);
      void stack.stop().then(() => {
        log.success('Stopped.');
        resolve(0);
      });
    };
    if (stopRequested) onStopRequest(stopRequested);
  });

  for (const r of stack.runners) {
    void r.exited.then((code) => {
      if (!stopRequested) log.warn(`Runner ${r.index} exited (${code}). Its log: ${shortPath(r.logFile)}`);
    });
  }

  const tokenFile = shortPath(`${stack.dataDir}/registration-token`);
  log.success(`Control plane  ${bold(stack.apiUrl)}`);
  log.success(`Object store   ${stack.s3.endpoint}/${stack.s3.bucket}`);
  log.info(`Control plane log: ${shortPath(`${stack.dataDir}/logs/${CONTROL_PLANE_LOG}`)}`);
  if (stack.runners.length) log.success(`Runners        ${stack.runners.length} on pool ${stack.pool}, ${slots} slot${slots === 1 ? '' : 's'} each (logs: ${shortPath(`${stack.dataDir}/logs`)})`);
  else log.warn('No runners started (--runners 0): executions stay queued until a runner connects.');
  note('');
  note(`Run a script:       rgrid run examples/csv-summary/summarize.py examples/csv-summary/data/*.csv`);
  note(`Add a runner:       npx rgrid-runner --api-url ${stack.apiUrl} --registration-token "$(cat ${tokenFile})" --pool ${stack.pool}`);
  note(`Stop everything:    Ctrl+C`);
  return stopped;
});
