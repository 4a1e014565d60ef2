// The cache flags are called no-cache and no-cache-inputs. citty reads `--no-x` as "x = false";
// RGrid's parser (node:util parseArgs) must keep the real names. This checks both the values and
// what `rgrid run --help` shows.
import { renderUsage } from 'citty';
import { describe, expect, it } from 'vitest';
import { parseCommandArgs } from './_args.js';
import { runSpecFromArgs } from './_run-request.js';
import run, { spec as runSpec } from './run.js';
import { spec as cacheSpec } from './cache.js';

describe('run request flags', () => {
  it('reads --no-cache, --no-cache-inputs and --reuse-results under their own names', () => {
    const p = parseCommandArgs(runSpec, ['--no-cache', 'x.py', 'data.csv', '--no-cache-inputs', '--reuse-results', '--requirements', 'reqs/ml.txt']);
    expect(p.flags).toMatchObject({ 'no-cache': true, 'no-cache-inputs': true, 'reuse-results': true, requirements: 'reqs/ml.txt' });
    expect(p.flags.cache).toBeUndefined();
    const spec = runSpecFromArgs(p, '/tmp');
    expect(spec).toMatchObject({ script: 'x.py', args: ['data.csv'], requirementsFile: 'reqs/ml.txt', cache: { noCache: true, forceUpload: true, reuseResults: true } });
  });

  it('defaults every cache flag to off', () => {
    const spec = runSpecFromArgs(parseCommandArgs(runSpec, ['x.py']), '/tmp');
    expect(spec.cache).toEqual({ noCache: false, forceUpload: false, reuseResults: false });
    expect(spec.requirementsFile).toBeUndefined();
  });

  it('refuses a value on them and a --cache that does not exist', () => {
    expect(() => parseCommandArgs(runSpec, ['x.py', '--no-cache=yes'])).toThrow(/--no-cache takes no value/);
    expect(() => parseCommandArgs(runSpec, ['x.py', '--cache'])).toThrow(/Unknown option --cache/);
  });

  it('cache explain takes the same flags after its action', () => {
    const p = parseCommandArgs(cacheSpec, ['explain', 'x.py', 'in.csv', '--no-cache', '--', '--raw']);
    expect(p.positionals).toEqual(['explain', 'x.py', 'in.csv', '--raw']);
    expect(p.flags['no-cache']).toBe(true);
  });

  it('lists them in --help under their real names', async () => {
    const text = await renderUsage(run);
    expect(text).toContain('--no-cache ');
    expect(text).toContain('--no-cache-inputs');
    expect(text).toContain('--reuse-results');
    expect(text).toContain('--requirements');
    expect(text).not.toMatch(/--no-no-cache|--cache\b/);
  });
});
