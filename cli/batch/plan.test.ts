import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareRun } from '../run/prepare.js';
import { checkPlaceholder, inputNameFor, itemArgs, planBatch } from './plan.js';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rgrid-plan-'));
  await mkdir(join(dir, 'data', 'old'), { recursive: true });
  await writeFile(join(dir, 'job.py'), 'print(1)\n');
  await writeFile(join(dir, 'config.json'), '{}');
  await writeFile(join(dir, 'data', 'a.csv'), 'same');
  await writeFile(join(dir, 'data', 'b.csv'), 'same'); // same content: one blob
  await writeFile(join(dir, 'data', 'old', 'config.json'), 'clashes with the shared input');
  await writeFile(join(dir, 'data', 'big.csv'), 'x,y\n'.repeat(1000));
});

afterAll(() => rm(dir, { recursive: true, force: true }));

const prepare = (args: string[]) => prepareRun({ script: 'job.py', args, verbatimFrom: args.length, env: { K: 'v' }, metadata: { project: 'x' }, limits: { timeoutSeconds: 60 }, cwd: dir });

describe('batch items', () => {
  it('appends the file, or puts it where {} is', () => {
    expect(itemArgs(['--fast'], 'data/a.csv')).toEqual({ args: ['--fast', 'data/a.csv'], arg: 1 });
    expect(itemArgs(['--in', '{}', '--fast'], 'data/a.csv')).toEqual({ args: ['--in', 'data/a.csv', '--fast'], arg: 1 });
  });

  it('refuses {} twice or inside another argument', () => {
    expect(() => checkPlaceholder(['{}', '{}'])).toThrow(/appears 2 times/);
    expect(() => checkPlaceholder(['--in={}'])).toThrow(/argument of its own/);
    expect(() => checkPlaceholder(['{}', '--x'])).not.toThrow();
  });

  it('shares the template and the inputs named in ARGS; each item gets its file', async () => {
    const prepared = await prepare(['config.json', '--in', '{}']);
    const plan = await planBatch(prepared, ['data/a.csv', 'data/b.csv', 'data/old/config.json'], dir, { parallel: 3, failFast: true, name: 'job.py data/*' });
    expect(plan.request).toMatchObject({ name: 'job.py data/*', parallel: 3, failFast: true, metadata: { project: 'x' }, template: { runtime: 'python3.11', env: { K: 'v' }, limits: { timeoutSeconds: 60 }, script: { name: 'job.py' } } });
    expect(plan.items.map((i) => [i.inputName, i.args, i.inputs!.map((x) => `${x.path}@${x.arg}`)])).toEqual([
      ['data/a.csv', ['config.json', '--in', 'data/a.csv'], ['config.json@0', 'a.csv@2']],
      ['data/b.csv', ['config.json', '--in', 'data/b.csv'], ['config.json@0', 'b.csv@2']],
      // Its name is taken in /work by the shared input: it becomes "config (1).json" there.
      ['data/old/config.json', ['config.json', '--in', 'data/old/config.json'], ['config.json@0', 'config (1).json@2']],
    ]);
    // Script, shared input, a/b (one blob) and the other config: four blobs.
    expect(plan.blobs.size).toBe(4);
  });

  it('text inputs of 1 KB or more are declared gzip-compressed, as for `rgrid run`', async () => {
    const plan = await planBatch(await prepare([]), ['data/a.csv', 'data/big.csv'], dir, { failFast: false });
    expect(plan.items.map((i) => i.inputs![0]!.encoding)).toEqual([undefined, 'gzip']);
    expect(plan.blobs.get(plan.items[1]!.inputs![0]!.sha256)!.encoding).toBe('gzip');
  });

  it('names one file once, however many patterns matched it', async () => {
    const prepared = await prepare([]);
    const plan = await planBatch(prepared, ['data/a.csv', join(dir, 'data', 'a.csv')], dir, { failFast: false });
    expect(plan.items.map((i) => i.inputName)).toEqual(['data/a.csv']);
    expect(plan.request.parallel).toBeUndefined();
  });

  it('absolute and ../ patterns give relative input names, distinct when they would clash', async () => {
    const prepared = await prepare([]);
    const sub = join(dir, 'data', 'old');
    const plan = await planBatch(prepared, [join(dir, 'data', 'a.csv'), '../b.csv', '../../data/b.csv'], sub, { failFast: false });
    const names = plan.items.map((i) => i.inputName);
    expect(names[0]).toBe(join(dir, 'data', 'a.csv').slice(1));
    // ../b.csv and ../../data/b.csv are the same file seen twice: one item.
    expect(names.slice(1)).toEqual(['b.csv']);
    expect(inputNameFor('../x/y.csv', new Set(['x/y.csv']))).toBe('x/y (1).csv');
    expect(inputNameFor('/abs/p.csv', new Set())).toBe('abs/p.csv');
  });
});
