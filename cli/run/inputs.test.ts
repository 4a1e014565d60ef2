import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CliError } from '../errors.js';
import { detectInputs, looksLikePath } from './inputs.js';

let cwd: string;

beforeAll(async () => {
  cwd = await realpath(await mkdtemp(join(tmpdir(), 'rgrid-inputs-')));
  await mkdir(join(cwd, 'data'));
  await mkdir(join(cwd, 'other'));
  await writeFile(join(cwd, 'data', 'a.csv'), 'x\n1\n');
  await writeFile(join(cwd, 'other', 'a.csv'), 'x\n2\n');
  await writeFile(join(cwd, 'notes.txt'), 'hello');
  await writeFile(join(cwd, 'script.py'), 'print(1)');
  await symlink(join(cwd, 'data', 'a.csv'), join(cwd, 'latest.csv'));
  await symlink(join(cwd, 'gone.csv'), join(cwd, 'dangling.csv'));
});

afterAll(async () => {
  await rm(cwd, { recursive: true, force: true });
});

async function expectUsage(p: Promise<unknown>, message: RegExp) {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CliError);
  expect((err as CliError).exitCode).toBe(2);
  expect((err as CliError).message).toMatch(message);
}

describe('detectInputs', () => {
  it('finds relative and absolute files and places them under their base names', async () => {
    const inputs = await detectInputs(['data/a.csv', '--flag-like', join(cwd, 'notes.txt'), 'fast', '42'], { cwd });
    expect(inputs).toEqual([
      { arg: 0, given: 'data/a.csv', localPath: join(cwd, 'data', 'a.csv'), remotePath: 'a.csv' },
      { arg: 2, given: join(cwd, 'notes.txt'), localPath: join(cwd, 'notes.txt'), remotePath: 'notes.txt' },
    ]);
  });

  it('follows symlinks to their target but keeps the name the user gave', async () => {
    const [input] = await detectInputs(['latest.csv'], { cwd });
    expect(input).toMatchObject({ remotePath: 'latest.csv', localPath: join(cwd, 'data', 'a.csv') });
  });

  it('disambiguates equal base names, and avoids the script name', async () => {
    const inputs = await detectInputs(['data/a.csv', 'other/a.csv', 'data/a.csv', 'script.py'], { cwd, reserved: ['script.py'] });
    expect(inputs.map((i) => i.remotePath)).toEqual(['a.csv', 'a (1).csv', 'a (2).csv', 'script (1).py']);
    expect(inputs[1]!.localPath).toBe(join(cwd, 'other', 'a.csv'));
  });

  it('refuses a missing path-like argument before anything is sent', async () => {
    await expectUsage(detectInputs(['data/missing.csv'], { cwd }), /^File not found: data\/missing\.csv$/);
    await expectUsage(detectInputs(['missing.csv'], { cwd }), /^File not found: missing\.csv$/);
    await expectUsage(detectInputs(['./results'], { cwd }), /File not found/);
  });

  it('names the target of a dangling symlink', async () => {
    await expectUsage(detectInputs(['dangling.csv'], { cwd }), /File not found: dangling\.csv \(a symlink to .*gone\.csv, which does not exist\)/);
  });

  it('passes words, numbers, URLs and key=value settings through', async () => {
    expect(await detectInputs(['fast', '1.5', 'v2.0', '-3', 'https://example.com/x.csv', 'mode=a.csv', 'hello world.txt'], { cwd })).toEqual([]);
  });

  it('leaves arguments after -- alone', async () => {
    const inputs = await detectInputs(['data/a.csv', 'out.csv', 'notes.txt'], { cwd, verbatimFrom: 1 });
    expect(inputs.map((i) => i.arg)).toEqual([0]);
  });

  it('refuses directories given as paths', async () => {
    await expectUsage(detectInputs(['data/'], { cwd }), /is a directory/);
  });
});

describe('looksLikePath', () => {
  it.each([
    ['data.csv', true],
    ['dir/file', true],
    ['./x', true],
    ['archive.tar.gz', true],
    ['fast', false],
    ['3.14', false],
    ['1e-5', false],
    ['v1.2', false],
    ['s3://bucket/key', false],
    ['k=v.csv', false],
  ])('%s → %s', (arg, expected) => {
    expect(looksLikePath(arg)).toBe(expected);
  });
});
