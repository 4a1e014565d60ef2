/** `rgrid demo` (what `npm run demo` runs): the quick start's first command. */
import { runDemo } from '../demo.js';
import { str, type CommandSpec } from './_args.js';
import { command } from './_shared.js';

export const spec: CommandSpec = {
  name: 'demo',
  description: 'Boot the local stack, summarize the example CSVs remotely, download the results, stop the stack',
  positionals: [],
  flags: {
    'output-dir': { type: 'string', valueHint: 'dir', description: 'Where outputs go (default demo-output)' },
    'pip-index-url': { type: 'string', valueHint: 'url', description: 'Package index for environment builds (default: RGRID_PIP_INDEX_URL)' },
  },
};

export default command(spec, async (args) => {
  const pipIndexUrl = str(args, 'pip-index-url') ?? process.env.RGRID_PIP_INDEX_URL;
  return runDemo({ ...(str(args, 'output-dir') ? { outputDir: str(args, 'output-dir')! } : {}), ...(pipIndexUrl ? { pipIndexUrl } : {}) });
});
