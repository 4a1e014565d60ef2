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
  try {
    await agent.start();
  } catch (err) {
    console.error(`rgrid-runner: ${(err as Error).message}`);
    return 1;
  }
  return new Promise<number>((resolve) => {
    let signals = 0;
    const onSignal = (sig: string) => {
      signals++;
      if (signals === 1) {
        console.log(`[rgrid-runner] ${sig}: draining (${agent.activeJobs} running job(s) will finish; signal again to stop now)`);
        // A second signal takes over: its exit code wins even if the drain ends first.
        void agent.drain().then(() => signals === 1 && resolve(0));
      } else {
        console.log(`[rgrid-runner] ${sig}: stopping running jobs and releasing their leases`);
        void agent.kill().then(() => resolve(130));
      }
    };
    process.on('SIGTERM', () => onSignal('SIGTERM'));
    process.on('SIGINT', () => onSignal('SIGINT'));
  });
}
