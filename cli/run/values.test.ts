import { describe, expect, it } from 'vitest';
import { parseCpus, parseDuration, parseMemory, parsePairs, resolveRuntime } from './values.js';

describe('run flag values', () => {
  it('parses durations', () => {
    expect(parseDuration('90')).toBe(90);
    expect(parseDuration('90s')).toBe(90);
    expect(parseDuration('5m')).toBe(300);
    expect(parseDuration('1h30m')).toBe(5400);
    expect(parseDuration('1.5s')).toBe(2);
    for (const bad of ['abc', '', '5x', '-1', '0', '25h', 'm5']) expect(() => parseDuration(bad), bad).toThrow(/Invalid --timeout/);
  });

  it('parses memory sizes in MB', () => {
    expect(parseMemory('512')).toBe(512);
    expect(parseMemory('512m')).toBe(512);
    expect(parseMemory('2g')).toBe(2048);
    expect(parseMemory('1.5GiB')).toBe(1536);
    for (const bad of ['lots', '8', '10x', '1000g']) expect(() => parseMemory(bad), bad).toThrow(/Invalid --memory/);
  });

  it('parses cpus', () => {
    expect(parseCpus('0.5')).toBe(0.5);
    for (const bad of ['0', 'two', '65', '-1']) expect(() => parseCpus(bad), bad).toThrow(/Invalid --cpus/);
  });

  it('parses K=V pairs; a bare --env K copies the local value', () => {
    expect(parsePairs(['A=1', 'B=x=y', 'C='], 'env')).toEqual({ A: '1', B: 'x=y', C: '' });
    expect(parsePairs(['HOME'], 'env', { HOME: '/h' })).toEqual({ HOME: '/h' });
    expect(() => parsePairs(['UNSET_VAR_X'], 'env', {})).toThrow(/not set in your environment/);
    expect(() => parsePairs(['=1'], 'env')).toThrow(/Invalid --env/);
    expect(() => parsePairs(['project'], 'metadata')).toThrow(/expected NAME=value/);
  });

  it('picks the runtime from --runtime or the extension', () => {
    expect(resolveRuntime(undefined, 'a.py')).toBe('python3.11');
    expect(resolveRuntime(undefined, 'a.mjs')).toBe('node20');
    expect(resolveRuntime('python3.12', 'a.py')).toBe('python3.12');
    expect(() => resolveRuntime('ruby', 'a.rb')).toThrow(/Unknown runtime/);
  });
});
