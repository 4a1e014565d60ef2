// The local stack without runners (no Docker needed): Miniflare + S3 store + bootstrap, restarts
// on the same data dir, the lock, and the files it writes for the CLI and for runners.
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Http } from '../api/http.js';
import * as account from '../api/account.js';
import { startStack, type Stack } from './stack.js';

let dir: string;
let stack: Stack | undefined;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rgrid-stack-'));
});

afterAll(async () => {
  await stack?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('startStack({ runners: 0 })', () => {
  it('boots, bootstraps an account and writes the CLI config and registration token (0600)', async () => {
    const messages: string[] = [];
    stack = await startStack({ dataDir: join(dir, 'data'), port: 0, runners: 0, cliConfigDir: join(dir, 'cfg'), onMessage: (m) => messages.push(m) });
    expect(stack.apiUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(stack.s3.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const who = await account.whoami(new Http({ baseUrl: stack.apiUrl, token: stack.apiKey }));
    expect(who.account.name).toBe('local');

    const cfg = JSON.parse(await readFile(join(dir, 'cfg', 'config.json'), 'utf8'));
    expect(cfg).toEqual({ apiUrl: stack.apiUrl, apiKey: stack.apiKey });
    expect((await stat(join(dir, 'cfg', 'config.json'))).mode & 0o777).toBe(0o600);
    expect((await readFile(join(stack.dataDir, 'registration-token'), 'utf8')).trim()).toBe(stack.registrationToken);
    expect((await stat(join(stack.dataDir, 'registration-token'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(stack.dataDir, 'state.json'))).mode & 0o777).toBe(0o600);
  });

  it('refuses a second stack on the same data dir while the first runs', async () => {
    await expect(startStack({ dataDir: join(dir, 'data'), port: 0, runners: 0 })).rejects.toThrow(/Another local stack \(pid \d+\) is using/);
  });

  it('restarts on the same data dir with the same key and state, applying no migration twice', async () => {
    const first = stack!;
    await first.stop();
    // 0000_init.sql creates its tables without IF NOT EXISTS: applying it twice would throw here.
    stack = await startStack({ dataDir: join(dir, 'data'), port: 0, runners: 0 });
    expect(stack.apiKey).toBe(first.apiKey);
    expect(stack.registrationToken).toBe(first.registrationToken);
    const who = await account.whoami(new Http({ baseUrl: stack.apiUrl, token: stack.apiKey }));
    expect(who.account.id).toBe(first.accountId);
  });

  it('says which port is taken', async () => {
    const port = Number(new URL(stack!.apiUrl).port);
    await expect(startStack({ dataDir: join(dir, 'other'), port, runners: 0 })).rejects.toThrow(`Port ${port} on 127.0.0.1 is already in use`);
  });
});
