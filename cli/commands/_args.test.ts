import { describe, expect, it } from 'vitest';
import { CliError } from '../errors.js';
import { parseCommandArgs, type CommandSpec } from './_args.js';

const spec: CommandSpec = {
  name: 'run',
  description: 'test',
  positionals: [
    { name: 'SCRIPT', description: 's', required: true },
    { name: 'ARGS', description: 'a', variadic: true },
  ],
  flags: {
    timeout: { type: 'string', description: 't' },
    env: { type: 'string', multiple: true, description: 'e' },
    json: { type: 'boolean', description: 'j' },
  },
};

function usage(args: string[]): CliError {
  try {
    parseCommandArgs(spec, args);
  } catch (err) {
    expect(err).toBeInstanceOf(CliError);
    expect((err as CliError).exitCode).toBe(2);
    return err as CliError;
  }
  throw new Error('expected a usage error');
}

describe('parseCommandArgs', () => {
  it('accepts flags anywhere and collects repeatable ones', () => {
    const p = parseCommandArgs(spec, ['x.py', '--env', 'A=1', 'data.csv', '--json', '--env=B=2', '--timeout', '5m']);
    expect(p.positionals).toEqual(['x.py', 'data.csv']);
    expect(p.flags).toMatchObject({ env: ['A=1', 'B=2'], json: true, timeout: '5m' });
    expect(p.verbatimFrom).toBe(2);
  });

  it('passes everything after -- through and says where it starts', () => {
    const p = parseCommandArgs(spec, ['x.py', 'in.csv', '--', '--format', 'html', 'out.csv']);
    expect(p.positionals).toEqual(['x.py', 'in.csv', '--format', 'html', 'out.csv']);
    expect(p.verbatimFrom).toBe(2);
  });

  it('refuses unknown flags, and tells how to pass them to the script', () => {
    const err = usage(['x.py', '--fromat', 'html']);
    expect(err.message).toBe('Unknown option --fromat for `rgrid run`');
    expect(err.hint).toMatch(/put it after --/);
  });

  it('refuses a flag without its value, a value on a boolean, and repeated single flags', () => {
    expect(usage(['x.py', '--timeout']).message).toMatch(/--timeout needs a value/);
    expect(usage(['x.py', '--json=yes']).message).toMatch(/--json takes no value/);
    expect(usage(['x.py', '--timeout', '1', '--timeout', '2']).message).toMatch(/given 2 times/);
  });

  it('requires the required positionals', () => {
    expect(usage([]).message).toBe('Missing SCRIPT');
  });
});
