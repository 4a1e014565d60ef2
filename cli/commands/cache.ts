/**
 * `rgrid cache explain SCRIPT [ARGS...]`: what `rgrid run` with the same arguments would reuse
 * (keys, and per part hit or miss with the reason), without creating or running anything.
 * `rgrid cache stats`: hit rates per kind for the account.
 */
import type { CacheReport, CacheStatsResponse } from '../../shared/api/cache.js';
import { usageError } from '../errors.js';
import { ago } from '../run/cache-report.js';
import { prepareRun } from '../run/prepare.js';
import { formatBytes, out } from '../ui.js';
import { API_FLAGS, JSON_FLAG, bool, type CommandSpec, type Parsed } from './_args.js';
import { RUN_REQUEST_FLAGS, runSpecFromArgs } from './_run-request.js';
import { apiContext, command, printJson } from './_shared.js';

const ACTIONS = ['explain', 'stats'] as const;

export const spec: CommandSpec = {
  name: 'cache',
  description: 'What a run would reuse and why (explain), and cache hit rates (stats)',
  positionals: [
    { name: 'ACTION', description: `One of: ${ACTIONS.join(', ')}`, required: true },
    { name: 'SCRIPT', description: 'explain: the script, then its arguments, exactly as for `rgrid run`', variadic: true },
  ],
  flags: {
    ...RUN_REQUEST_FLAGS,
    ...JSON_FLAG,
    ...API_FLAGS,
  },
  examples: ['rgrid cache explain analyze.py data.csv', 'rgrid cache explain train.py --requirements ml.txt data/train.csv', 'rgrid cache stats'],
};

const mark = (hit: boolean) => (hit ? out.green('hit ') : out.yellow('miss'));

/** The explanation as text lines (also used by tests). */
export function formatExplain(r: CacheReport, scriptName: string, now = Date.now()): string[] {
  const lines: string[] = [];
  const part = (name: string, status: string, key?: string) => `${out.bold(name.padEnd(12))} ${status}${key ? `  key ${key}` : ''}`;
  lines.push(part('script', mark(r.script.hit), r.script.key));
  lines.push(`  ${scriptName}, ${r.env.runtime}${r.script.hit ? ': stored, not uploaded again' : `: ${r.script.reason ?? 'not seen before'}`}`);

  lines.push(part('environment', mark(r.env.hit), r.env.key));
  const what = r.env.packages ? `${r.env.runtime} with ${r.env.packages} ${r.env.packages === 1 ? 'package' : 'packages'}` : `${r.env.runtime}, no requirements`;
  lines.push(`  ${what}${r.env.hit ? `: built ${r.env.builtAt ? ago(r.env.builtAt, now) : 'before'}, reused` : `: would be built: ${r.env.reason ?? 'not built before'}`}`);

  const { hit, total, bytesHit, bytesTotal } = r.inputs;
  const inputsStatus = total === 0 ? out.dim('none') : hit === total ? mark(true) : hit === 0 ? mark(false) : out.yellow(`${hit}/${total}`);
  lines.push(part('inputs', inputsStatus));
  if (total > 0) {
    const missing = total - hit;
    lines.push(`  ${hit} of ${total} ${total === 1 ? 'file' : 'files'} stored (${formatBytes(bytesHit)} of ${formatBytes(bytesTotal)})${missing ? `; ${missing} (${formatBytes(bytesTotal - bytesHit)}) would be uploaded` : ''}`);
  }

  lines.push(part('result', mark(r.result.reusedFrom !== null), r.result.key));
  lines.push(
    r.result.reusedFrom
      ? `  identical to ${r.result.reusedFrom}, which succeeded: with --reuse-results its outputs are reused and nothing runs`
      : '  no earlier identical run succeeded with its outputs still stored: it would run',
  );
  lines.push(out.dim('Nothing was created or run.'));
  return lines;
}

/** Hit rates as a table (also used by tests). */
export function formatStats(s: CacheStatsResponse): string[] {
  const rows: [string, { hits: number; misses: number; hitRate: number | null }][] = [
    ['script', s.script],
    ['environment', s.env],
    ['inputs', s.input],
    ['result', s.result],
  ];
  const header = `${'KIND'.padEnd(12)} ${'HITS'.padStart(6)} ${'MISSES'.padStart(6)} ${'HIT RATE'.padStart(8)}`;
  return [
    out.dim(header),
    ...rows.map(([kind, r]) => `${kind.padEnd(12)} ${String(r.hits).padStart(6)} ${String(r.misses).padStart(6)} ${(r.hitRate === null ? '-' : `${Math.round(r.hitRate * 100)}%`).padStart(8)}`),
  ];
}

async function explain(args: Parsed): Promise<number> {
  const cwd = process.cwd();
  // The same request `rgrid run` would send: positionals after the action are SCRIPT [ARGS...].
  const runArgs: Parsed = { ...args, positionals: args.positionals.slice(1), verbatimFrom: Math.max(0, args.verbatimFrom - 1) };
  if (!runArgs.positionals.length) throw usageError('Missing SCRIPT', 'Usage: rgrid cache explain [OPTIONS] SCRIPT [ARGS...]');
  const prepared = await prepareRun(runSpecFromArgs(runArgs, cwd));
  const { client } = await apiContext(args);
  const { cache } = await client.cacheExplain(prepared.body);
  if (bool(args, 'json')) printJson({ cache });
  else process.stdout.write(formatExplain(cache, prepared.body.script.name).join('\n') + '\n');
  return 0;
}

export default command(spec, async (args) => {
  const action = args.positionals[0];
  switch (action) {
    case 'explain':
      return explain(args);
    case 'stats': {
      if (args.positionals.length > 1) throw usageError(`Unexpected argument "${args.positionals[1]}"`, 'Usage: rgrid cache stats [--json]');
      const { client } = await apiContext(args);
      const stats = await client.cacheStats();
      if (bool(args, 'json')) printJson(stats);
      else process.stdout.write(formatStats(stats).join('\n') + '\n');
      return 0;
    }
    default:
      throw usageError(`Unknown action "${action}" for \`rgrid cache\``, `Use one of: ${ACTIONS.join(', ')}. E.g. rgrid cache explain analyze.py data.csv`);
  }
});
