import { mkdir, mkdtemp, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CliError } from '../errors.js';
import { prepareRun, type RunSpec } from './prepare.js';

let cwd: string;
const spec = (over: Partial<RunSpec>): RunSpec => ({ script: 'job.py', args: [], verbatimFrom: over.args?.length ?? 0, env: {}, metadata: {}, limits: {}, cwd, ...over });

async function usage(over: Partial<RunSpec>): Promise<CliError> {
  const err = await prepareRun(spec(over)).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(CliError);
  expect((err as CliError).exitCode).toBe(2);
  return err as CliError;
}

beforeAll(async () => {
  cwd = await realpath(await mkdtemp(join(tmpdir(), 'rgrid-prepare-')));
  await writeFile(join(cwd, 'job.py'), 'print(1)\n');
  await writeFile(join(cwd, 'requirements.txt'), '# pinned\nnumpy==1.26.4\npandas>=2\n\nsix\n');
  await mkdir(join(cwd, 'reqs'));
  await writeFile(join(cwd, 'reqs', 'bad.txt'), 'numpy==1.26.4\n--index-url https://evil.example/simple\ngit+https://github.com/x/y.git\n');
  await writeFile(join(cwd, 'reqs', 'ml.txt'), 'scikit-learn==1.5.0\n');
  await writeFile(join(cwd, 'big.csv'), 'a,b\n'.repeat(1000));
  await writeFile(join(cwd, 'pic.png'), Buffer.alloc(5000, 7));
  await writeFile(join(cwd, 'app.js'), 'console.log(1)\n');
});
afterAll(() => rm(cwd, { recursive: true, force: true }));

describe('prepareRun: requirements', () => {
  it('finds requirements.txt next to the script and counts its dependencies', async () => {
    const p = await prepareRun(spec({}));
    expect(p.requirements).toEqual({ path: join(cwd, 'requirements.txt'), display: 'requirements.txt', count: 3 });
    expect(p.body.requirements).toContain('numpy==1.26.4');
  });

  it('uses --requirements FILE instead', async () => {
    const p = await prepareRun(spec({ requirementsFile: 'reqs/ml.txt' }));
    expect(p.requirements).toMatchObject({ display: 'reqs/ml.txt', count: 1 });
    expect(p.body.requirements).toBe('scikit-learn==1.5.0\n');
  });

  it('refuses lines that change where code comes from, quoting each with its reason', async () => {
    const err = await usage({ requirementsFile: 'reqs/bad.txt' });
    expect(err.message).toBe(
      'reqs/bad.txt has 2 lines that cannot be used:\n' +
        '  line 2: "--index-url https://evil.example/simple"\n    option --index-url is not allowed: package sources and includes are set by the runner operator\n' +
        '  line 3: "git+https://github.com/x/y.git"\n    URLs and VCS references are not allowed: name a package and version instead',
    );
    expect(err.hint).toMatch(/Nothing was sent/);
  });

  it('a missing --requirements file, or one for node, is a usage error', async () => {
    expect((await usage({ requirementsFile: 'nope.txt' })).message).toBe('Requirements file not found: nope.txt');
    expect((await usage({ script: 'app.js', requirementsFile: 'reqs/ml.txt' })).message).toMatch(/--requirements is for Python runtimes/);
  });
});

describe('prepareRun: encodings and cache choices', () => {
  it('declares gzip on text inputs only, never on the script\'s own content', async () => {
    // same.txt holds the script's own bytes (over 1 KB, so a .txt would otherwise be compressed).
    await writeFile(join(cwd, 'long.py'), '# padding\n'.repeat(200));
    await writeFile(join(cwd, 'same.txt'), '# padding\n'.repeat(200));
    const p = await prepareRun(spec({ script: 'long.py', args: ['big.csv', 'pic.png', 'same.txt'], cache: { reuseResults: true, forceUpload: true, noCache: true } }));
    expect(p.body.inputs!.map((i) => [i.path, i.encoding])).toEqual([
      ['big.csv', 'gzip'],
      ['pic.png', undefined],
      ['same.txt', undefined],
    ]);
    expect([...p.blobs.values()].map((b) => [b.label, b.encoding])).toEqual([
      ['long.py', 'identity'],
      ['big.csv', 'gzip'],
      ['pic.png', 'identity'],
    ]);
    expect(p.body).toMatchObject({ reuseResults: true, forceUpload: true, noCache: true });
  });

  it('leaves the cache flags out of the request unless given', async () => {
    const p = await prepareRun(spec({ cache: { reuseResults: false } }));
    expect(Object.keys(p.body)).not.toContain('reuseResults');
    expect(Object.keys(p.body)).not.toContain('noCache');
  });
});
