/**
 * The cloud-init user-data: valid for Debian's cloud-init (`cloud-init schema`), parsed by PyYAML
 * into files a server would write, a runner config the runner itself accepts, a systemd unit with
 * restart, and an install script sh accepts. Also `rgrid fleet user-data` and the status view.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadRunnerConfig } from '../../runner-agent/src/config.js';
import { managedSelector, serverName } from '../../shared/fleet/labels.js';
import { INSTALL_SCRIPT_PATH, PLACEHOLDER_TOKEN, RUNNER_ENV_PATH, RUNNER_UNIT_PATH, parseEnvFile, renderUserData, type UserDataOptions } from '../../shared/fleet/user-data.js';
import type { FleetPoolStatus } from '../../shared/fleet/api.js';
import { cloudInitSchema, parseYaml } from './fake-cloud.js';
import { ensureCloudInit } from './stack.js';

const run = promisify(execFile);
let dir: string;

beforeAll(async () => {
  await ensureCloudInit();
  dir = await mkdtemp(join(tmpdir(), 'rgrid-user-data-'));
}, 300_000);
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const opts: UserDataOptions = {
  apiUrl: 'https://rgrid.example.com',
  registrationToken: 'rgrid_reg_abcdefghijklmnopqrstuvwxyz234567abcdefghijklmn',
  pool: 'gpu-large',
  slots: 8,
  serverId: 'srv_abcdefghijklmnopqrstuvwx',
  name: 'rgrid-gpu-large-abcdefghijklmnopqrstuvwx',
  runnerPackage: 'rgrid@0.1.0',
  runnerEnv: { RGRID_RUNNER_PIP_INDEX_URL: 'https://pypi.example.com/simple/', RGRID_RUNNER_EXTRA_INDEX_URLS: 'https://a.example/simple/ https://b.example/simple/' },
  prePullImages: ['python:3.11-slim', 'python:3.12-slim', 'node:20-slim'],
};

async function files(userData: string): Promise<Record<string, { content: string; permissions: string; owner: string }>> {
  const doc = await parseYaml(userData, dir);
  return Object.fromEntries((doc.write_files as { path: string; content: string; permissions: string; owner: string }[]).map((f) => [f.path, f]));
}

describe('cloud-init user-data', () => {
  it.each([
    ['a fleet server', opts],
    ['a manual install with the placeholder token and no images', { ...opts, registrationToken: PLACEHOLDER_TOKEN, serverId: undefined, name: undefined, runnerEnv: {}, prePullImages: [] }],
    ['a tarball install', { ...opts, runnerPackage: 'https://downloads.example.com/rgrid-0.1.0.tgz' }],
  ])('passes cloud-init schema: %s', async (_name, o) => {
    const userData = renderUserData(o);
    const res = await cloudInitSchema(userData, dir);
    expect(res.ok, res.output).toBe(true);
    expect(res.output).toContain('Valid cloud-config');
    const doc = await parseYaml(userData, dir);
    expect(doc.packages).toContain('docker.io');
    expect(doc.runcmd).toEqual([[INSTALL_SCRIPT_PATH]]);
    // The install script is valid sh, installs the pinned runner and starts the unit last.
    const script = (await files(userData))[INSTALL_SCRIPT_PATH]!;
    const path = join(dir, 'install.sh');
    await writeFile(path, script.content);
    await run('sh', ['-n', path]);
    expect(script.permissions).toBe('0755');
    expect(script.content).toContain(`npm install --global --no-audit --no-fund '${o.runnerPackage}'`);
    expect(script.content.trim().split('\n').slice(-2)[0]).toBe('systemctl enable --now rgrid-runner.service');
    for (const image of o.prePullImages ?? []) expect(script.content).toContain(`docker pull '${image}'`);
  });

  it('writes a runner config the runner accepts, readable only by root', async () => {
    const f = await files(renderUserData(opts));
    const envFile = f[RUNNER_ENV_PATH]!;
    expect([envFile.permissions, envFile.owner]).toEqual(['0600', 'root:root']);
    const env = parseEnvFile(envFile.content);
    const parsed = loadRunnerConfig({ flags: {}, env });
    expect(parsed.success, JSON.stringify(parsed.error?.issues)).toBe(true);
    expect(parsed.data).toMatchObject({
      apiUrl: opts.apiUrl,
      registrationToken: opts.registrationToken,
      pool: 'gpu-large',
      slots: 8,
      name: opts.name,
      workDir: '/var/lib/rgrid-runner',
      pullImages: true,
      pipIndexUrl: 'https://pypi.example.com/simple/',
      extraIndexUrls: ['https://a.example/simple/', 'https://b.example/simple/'],
      labels: { 'rgrid.server': opts.serverId },
    });
  });

  it('runs the runner under systemd, restarted unless it drained', async () => {
    const unit = (await files(renderUserData(opts)))[RUNNER_UNIT_PATH]!.content;
    expect(unit).toMatch(/^Restart=always$/m);
    expect(unit).toMatch(/^RestartPreventExitStatus=0$/m);
    expect(unit).toMatch(/^EnvironmentFile=\/etc\/rgrid-runner.env$/m);
    expect(unit).toMatch(/^ExecStart=\/usr\/local\/bin\/rgrid-runner$/m);
    expect(unit).toMatch(/^Requires=docker.service$/m);
  });

  it('refuses values that would break the env file or the script', () => {
    expect(() => renderUserData({ ...opts, runnerEnv: { RGRID_RUNNER_NAME_X: 'a"b' } })).toThrow(/no quotes/);
    expect(() => renderUserData({ ...opts, registrationToken: 'x\ny' })).toThrow(/control characters/);
    expect(() => renderUserData({ ...opts, nodeVersion: '20; rm -rf /' })).toThrow(/Node.js version/);
    expect(() => renderUserData({ ...opts, slots: 0 })).toThrow(/slots/);
  });

  it('names servers and selects them by label the way Hetzner accepts', () => {
    const name = serverName('a-very-long-pool-name-that-goes-on-and-on-and-on', 'srv_abcdefghijklmnopqrstuvwx');
    expect(name.length).toBeLessThanOrEqual(63);
    expect(name).toMatch(/^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/);
    expect(name.endsWith('-abcdefghijklmnopqrstuvwx')).toBe(true);
    expect(managedSelector('default')).toBe('rgrid-managed=true,rgrid-pool=default');
  });
});

describe('rgrid fleet', () => {
  async function cli(argv: string[], env: Record<string, string> = {}): Promise<string> {
    const saved = { ...process.env };
    Object.assign(process.env, { RGRID_CONFIG_DIR: join(dir, 'cli-config'), NO_COLOR: '1', ...env });
    const write = process.stdout.write.bind(process.stdout);
    let out = '';
    process.stdout.write = ((chunk: string | Uint8Array) => {
      out += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
      return true;
    }) as typeof process.stdout.write;
    try {
      const cmd = (await import('../../cli/commands/fleet.js')).default;
      await cmd.run!({ rawArgs: argv, args: { _: argv } as never, cmd });
    } finally {
      process.stdout.write = write;
      process.env = saved;
    }
    return out;
  }

  it('user-data prints valid user-data with a placeholder token', async () => {
    const out = await cli(['user-data', '--pool', 'default', '--api-url', 'https://rgrid.example.com', '--slots', '4', '--image', 'python:3.12-slim']);
    expect(out.startsWith('#cloud-config\n')).toBe(true);
    const res = await cloudInitSchema(out, dir);
    expect(res.ok, res.output).toBe(true);
    const env = parseEnvFile((await files(out))[RUNNER_ENV_PATH]!.content);
    expect(env).toMatchObject({ RGRID_RUNNER_REGISTRATION_TOKEN: PLACEHOLDER_TOKEN, RGRID_RUNNER_POOL: 'default', RGRID_RUNNER_SLOTS: '4', RGRID_RUNNER_API_URL: 'https://rgrid.example.com' });
    expect(out).toContain("docker pull 'python:3.12-slim'");
  });

  it('user-data needs a pool; status needs the admin secret', async () => {
    await expect(cli(['user-data'])).rejects.toThrow(/Missing --pool/);
    await expect(cli(['status'], { RGRID_ADMIN_SECRET: '' })).rejects.toThrow(/No admin secret/);
    await expect(cli(['scale'])).rejects.toThrow(/Unknown fleet action/);
  });

  it('status shows servers, runners, slots, queue depth and decisions', async () => {
    const { formatPool } = await import('../../cli/commands/fleet.js');
    const now = Date.parse('2026-06-01T12:00:00Z');
    const at = (s: number) => new Date(now - s * 1000).toISOString();
    const p: FleetPoolStatus = {
      pool: 'default',
      config: null,
      queue: { ready: 7, leased: 4 },
      slots: { total: 4, busy: 4, free: 0 },
      servers: [{ id: 'srv_a', name: 'rgrid-default-a', providerId: '42', status: 'active', createdAt: at(600), runnerId: 'rnr_a', idleSince: null, drainRequestedAt: null }],
      runners: [{ id: 'rnr_a', name: 'rgrid-default-a', serverId: 'srv_a', slots: 4, activeJobs: 4, draining: false, drainRequested: false, lastSeenAt: at(3) }],
      decisions: [{ id: 1, pool: 'default', at: at(500), action: 'create', serverId: 'srv_a', providerId: '42', reason: '7 job(s) waiting', outcome: 'ok', error: null }],
    };
    const text = formatPool(p, now);
    expect(text).toContain('queue    7 waiting, 4 running');
    expect(text).toContain('slots    4 total, 4 busy, 0 free');
    expect(text).toMatch(/rgrid-default-a\s+active\s+42\s+rnr_a\s+10m ago/);
    expect(text).toMatch(/rnr_a\s+rgrid-default-a\s+srv_a\s+4\/4\s+serving/);
    expect(text).toMatch(/create\s+ok\s+7 job\(s\) waiting/);
  });
});
