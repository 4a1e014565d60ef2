/**
 * `rgrid-runner`: the runner daemon's command line. Flags override RGRID_RUNNER_* variables.
 * First SIGTERM/SIGINT drains (no new claims, running jobs finish); a second one kills running
 * jobs and releases their leases so they requeue at once.
 */
import { parseArgs } from 'node:util';
import { FLAGS, loadRunnerConfig } from './config.js';
import { RunnerAgent } from './agent.js';

const HELP = `rgrid-runner — runs RGrid jobs on this machine's Docker daemon

Usage: rgrid-runner --api-url URL --registration-token TOKEN [options]

Options (each also read from RGRID_RUNNER_<NAME>, e.g. RGRID_RUNNER_API_URL):
  --api-url URL              control plane URL (required)
  --registration-token TOK   registration token, needed on first start; the runner token is then
                             stored in <work-dir>/runner.json
  --pool NAME                pool this runner serves (default: default)
  --slots N                  concurrent jobs (default: number of CPUs)
  --work-dir DIR             job directories and identity (default: /var/lib/rgrid-runner)
  --name NAME                name shown to operators (default: runner-<pid>)
  --pip-index-url URL        package index for environment builds (default: https://pypi.org/simple/)
  --pull-images              pull missing base images from their registry (default: off)
  --pids-limit N             process limit per job container (default: 256)
  --claim-wait SECONDS       long-poll wait per claim, 0-25 (default: 20)
  --remote-ca-file FILE      extra CA certificates (PEM) trusted for remote https inputs
  -h, --help                 show this help

Environment only: RGRID_RUNNER_IMAGE_<RUNTIME>=image (e.g. RGRID_RUNNER_IMAGE_PYTHON3_11),
RGRID_RUNNER_EXTRA_INDEX_URLS, RGRID_RUNNER_LABELS=k=v,k2=v2.
Signals: SIGTERM/SIGINT drain (finish running jobs, then exit); a second signal stops now.`;

export async function main(argv = process.argv.slice(2)): Promise<number> {
  let flags: Record<string, string | boolean | undefined>;
  try {
    const options = Object.fromEntries(
      Object.keys(FLAGS).map((f) => [f, { type: f === 'pull-images' ? ('boolean' as const) : ('string' as const) }]),
    );
    ({ values: flags } = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true }));
  } catch (err) {
    console.error(`rgrid-runner: ${(err as Error).message}\nRun rgrid-runner --help for the options.`);
    return 2;
  }
  if (flags.help) {
    console.log(HELP);
    return 0;
  }
  const parsed = loadRunnerConfig({ flags, env: process.env });
  if (!parsed.success) {
    const flagOf = Object.fromEntries(Object.entries(FLAGS).map(([flag, key]) => [key, `--${flag}`]));
    for (const issue of parsed.error.issues) {
      const key = String(issue.path[0] ?? 'config');
      console.error(`rgrid-runner: ${flagOf[key] ?? key}: ${issue.message}`);
    }
    console.error('Run rgrid-runner --help for the options.');
    return 2;
  }
  const agent = new RunnerAgent(parsed.data);
  let signals = 0;
  let started = false;
  let finish!: (code: number) => void;
  const exit = new Promise<number>((resolve) => (finish = resolve));
  // A drain the control plane asked for (autoscaler scale-down) ends the process cleanly too.
  agent.onDrained = () => signals <= 1 && finish(0);
  // Handlers go in before start(): a signal during start-up must not be lost (or kill us half-way).
  const onSignal = (sig: string) => {
    signals++;
    if (!started) return; // acted on as soon as start() returns
    if (signals === 1) {
      console.log(`[rgrid-runner] ${sig}: draining (${agent.activeJobs} running job(s) will finish; signal again to stop now)`);
      void agent.drain();
    } else {
      console.log(`[rgrid-runner] ${sig}: stopping running jobs and releasing their leases`);
      void agent.kill().then(() => finish(130));
    }
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  try {
    await agent.start();
  } catch (err) {
    console.error(`rgrid-runner: ${(err as Error).message}`);
    return 1;
  }
  started = true;
  if (signals === 1) void agent.drain();
  else if (signals > 1) {
    await agent.kill();
    return 130;
  }
  return exit;
}
