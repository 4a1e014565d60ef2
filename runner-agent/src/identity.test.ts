import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadIdentity, storeIdentity } from './identity.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rgrid-identity-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const identity = { apiUrl: 'http://127.0.0.1:8787', runnerId: 'rnr_abcdefghijklmnopqrstuvwx', runnerToken: 'rgrid_rt_secret', pool: 'default' };

describe('runner.json', () => {
  it('loads a file written before protocol v2 (with lease timing) and ignores the timing', async () => {
    const path = join(dir, 'old.json');
    await writeFile(path, JSON.stringify({ ...identity, leaseSeconds: 60, heartbeatSeconds: 15 }));
    expect(await loadIdentity(path, identity.apiUrl)).toEqual(identity);
  });

  it('stores no timing, readable by the owner only', async () => {
    const path = join(dir, 'new.json');
    await storeIdentity(path, { ...identity, leaseSeconds: 60 } as typeof identity);
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual(identity);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  it('has no identity for another control plane, a missing file or a broken one', async () => {
    const path = join(dir, 'other.json');
    await storeIdentity(path, identity);
    expect(await loadIdentity(path, 'http://127.0.0.1:9999')).toBeUndefined();
    expect(await loadIdentity(join(dir, 'missing.json'), identity.apiUrl)).toBeUndefined();
    await writeFile(join(dir, 'broken.json'), '{"apiUrl": ');
    expect(await loadIdentity(join(dir, 'broken.json'), identity.apiUrl)).toBeUndefined();
    await writeFile(join(dir, 'partial.json'), JSON.stringify({ apiUrl: identity.apiUrl, runnerId: identity.runnerId }));
    expect(await loadIdentity(join(dir, 'partial.json'), identity.apiUrl)).toBeUndefined();
  });
});
