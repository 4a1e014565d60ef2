import { describe, expect, it } from 'vitest';
import { normalizeRequirements, parseRequirements } from './requirements.js';
import { envKey, scriptKey, sha256Hex } from './hashing.js';

describe('requirements.txt validation', () => {
  it('accepts specifiers, extras, markers and comments', () => {
    const r = parseRequirements('# data tools\nnumpy==1.26.4\npandas >= 2.0, <3  # pinned major\nrequests[socks,security]~=2.31\nfoo; python_version < "3.12"\n\n');
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.requirements.map((x) => x.name)).toEqual(['numpy', 'pandas', 'requests', 'foo']);
  });

  it.each([
    ['--index-url http://example.com/simple', /option --index-url/],
    ['--extra-index-url=http://example.com', /option --extra-index-url/],
    ['-f ./wheels', /option -f/],
    ['--find-links /tmp', /option --find-links/],
    ['-e git+https://github.com/x/y.git', /option -e/],
    ['--trusted-host example.com', /option --trusted-host/],
    ['-r other.txt', /option -r/],
    ['https://example.com/pkg.tar.gz', /URLs/],
    ['pkg @ https://example.com/pkg.whl', /URLs/],
    ['git+https://github.com/x/y.git', /URLs/],
    ['./local/pkg', /local paths/],
    ['/abs/pkg.whl', /local paths/],
    ['numpy===', /not a valid requirement/],
    ['numpy==1.0 \\', /continuations/],
  ])('refuses %s', (line, reason) => {
    const r = parseRequirements(`numpy==1.26.4\n${line}\n`);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.problems).toHaveLength(1);
      expect(r.problems[0]!.line).toBe(2);
      expect(r.problems[0]!.text).toBe(line);
      expect(r.problems[0]!.reason).toMatch(reason);
    }
  });
});

describe('normalization and cache keys', () => {
  it('ignores order, comments, blank lines, whitespace and name spelling', () => {
    const a = normalizeRequirements('numpy==1.26.4\nPandas>=2.0\n');
    const b = normalizeRequirements('# comment\n\n  pandas >= 2.0  \nNumPy == 1.26.4\n');
    const c = normalizeRequirements('Scikit_Learn==1.4\n');
    expect(a).toBe(b);
    expect(c).toBe('scikit-learn==1.4');
  });

  it('env key changes with runtime, base image and requirement versions, and only then', async () => {
    const base = await envKey('python3.11', 'python:3.11-slim', 'numpy==1.26.4\npandas==2.2.2');
    expect(await envKey('python3.11', 'python:3.11-slim', 'pandas==2.2.2\nnumpy==1.26.4\n')).toBe(base);
    expect(await envKey('python3.12', 'python:3.11-slim', 'numpy==1.26.4\npandas==2.2.2')).not.toBe(base);
    expect(await envKey('python3.11', 'python:3.11-slim@sha256:1', 'numpy==1.26.4\npandas==2.2.2')).not.toBe(base);
    expect(await envKey('python3.11', 'python:3.11-slim', 'numpy==1.26.3\npandas==2.2.2')).not.toBe(base);
    expect(await envKey('python3.11', 'python:3.11-slim', 'numpy==1.26.4')).not.toBe(base);
  });

  it('script key depends on runtime and bytes', async () => {
    const h1 = await sha256Hex('print(1)');
    const h2 = await sha256Hex('print(2)');
    expect(await scriptKey('python3.11', h1)).toBe(await scriptKey('python3.11', h1));
    expect(await scriptKey('python3.11', h1)).not.toBe(await scriptKey('python3.11', h2));
    expect(await scriptKey('python3.11', h1)).not.toBe(await scriptKey('python3.12', h1));
  });

  it('sha256Hex matches a known vector', async () => {
    expect(await sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });
});
