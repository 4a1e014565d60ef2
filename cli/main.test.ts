import { describe, expect, it } from 'vitest';
import { splitArgv } from './main.js';

describe('splitArgv', () => {
  it('finds the command after global flags and keeps those flags for it', () => {
    expect(splitArgv(['--api-url', 'http://x', '--verbose', 'status', 'exec_1'])).toMatchObject({
      name: 'status',
      rest: ['--api-url', 'http://x', '--verbose', 'exec_1'],
      verbose: true,
      help: false,
    });
  });

  it('does not treat --help after -- as ours', () => {
    expect(splitArgv(['run', 'x.py', '--', '--help'])).toMatchObject({ name: 'run', help: false });
    expect(splitArgv(['run', '-h'])).toMatchObject({ name: 'run', help: true });
  });

  it('has no command for bare flags', () => {
    expect(splitArgv(['--version'])).toMatchObject({ name: undefined, version: true });
  });
});
