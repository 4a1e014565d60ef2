import { mkdtemp, readFile, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_API_URL, configDir, loadConfig, readConfigFile, resolveConfig, writeConfigFile } from './config.js';
import { CliError } from './errors.js';

const KEY_FILE = 'rgrid_sk_fromfile';
const KEY_ENV = 'rgrid_sk_fromenv';
const KEY_FLAG = 'rgrid_sk_fromflag';

describe('loadConfig layering: defaults < file < env < flags', () => {
  const home = '/home/someone';

  it('uses the defaults when nothing is set', () => {
    const c = loadConfig({ env: {}, home });
    expect(c).toEqual({ apiUrl: DEFAULT_API_URL, apiKey: undefined, configDir: '/home/someone/.config/rgrid' });
  });

  it('the file overrides the defaults', () => {
    const c = loadConfig({ env: {}, home, file: { apiUrl: 'https://file.example/', apiKey: KEY_FILE } });
    expect(c.apiUrl).toBe('https://file.example');
    expect(c.apiKey).toBe(KEY_FILE);
  });

  it('env overrides the file, field by field', () => {
    const c = loadConfig({ env: { RGRID_API_KEY: KEY_ENV }, home, file: { apiUrl: 'https://file.example', apiKey: KEY_FILE } });
    expect(c.apiUrl).toBe('https://file.example');
    expect(c.apiKey).toBe(KEY_ENV);
    const d = loadConfig({ env: { RGRID_API_URL: 'http://env.example:1' }, home, file: { apiUrl: 'https://file.example', apiKey: KEY_FILE } });
    expect(d.apiUrl).toBe('http://env.example:1');
    expect(d.apiKey).toBe(KEY_FILE);
  });

  it('flags override env and file', () => {
    const c = loadConfig({
      env: { RGRID_API_URL: 'http://env.example', RGRID_API_KEY: KEY_ENV },
      home,
      file: { apiUrl: 'https://file.example', apiKey: KEY_FILE },
      flags: { apiUrl: 'http://flag.example:9', apiKey: KEY_FLAG },
    });
    expect(c.apiUrl).toBe('http://flag.example:9');
    expect(c.apiKey).toBe(KEY_FLAG);
  });

  it('treats empty env values as unset', () => {
    const c = loadConfig({ env: { RGRID_API_URL: '', RGRID_API_KEY: '  ' }, home, file: { apiKey: KEY_FILE } });
    expect(c.apiUrl).toBe(DEFAULT_API_URL);
    expect(c.apiKey).toBe(KEY_FILE);
  });

  it('names the source of an invalid value', () => {
    expect(() => loadConfig({ env: { RGRID_API_URL: 'not a url' }, home })).toThrow(/RGRID_API_URL/);
    expect(() => loadConfig({ env: {}, home, flags: { apiKey: 'sk_wrong' } })).toThrow(/--api-key: must be a user API key/);
    expect(() => loadConfig({ env: {}, home, file: { apiUrl: 'ftp://x' } })).toThrow(/config file .*apiUrl/);
    try {
      loadConfig({ env: { RGRID_API_KEY: 'nope' }, home });
    } catch (err) {
      expect(err).toBeInstanceOf(CliError);
      expect((err as CliError).exitCode).toBe(2);
    }
  });

  it('keeps unknown keys of the file out of the config', () => {
    const c = loadConfig({ env: {}, home, file: { apiKey: KEY_FILE, future: { x: 1 } } });
    expect(Object.keys(c).sort()).toEqual(['apiKey', 'apiUrl', 'configDir']);
  });
});

describe('configDir', () => {
  it('RGRID_CONFIG_DIR > XDG_CONFIG_HOME/rgrid > ~/.config/rgrid', () => {
    expect(configDir({}, '/h')).toBe('/h/.config/rgrid');
    expect(configDir({ XDG_CONFIG_HOME: '/xdg' }, '/h')).toBe('/xdg/rgrid');
    expect(configDir({ XDG_CONFIG_HOME: '/xdg', RGRID_CONFIG_DIR: '/explicit' }, '/h')).toBe('/explicit');
  });
});

describe('config file', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'rgrid-config-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is written with mode 0600 in a 0700 directory, merging with what is there', async () => {
    const cfgDir = join(dir, 'nested', 'rgrid');
    await mkdir(join(dir, 'nested'));
    const path = await writeConfigFile(cfgDir, { apiUrl: 'http://127.0.0.1:8787', apiKey: KEY_FILE });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(cfgDir)).mode & 0o777).toBe(0o700);
    await writeFile(path, JSON.stringify({ apiUrl: 'http://127.0.0.1:8787', apiKey: KEY_FILE, extra: 'kept' }), { mode: 0o644 });
    await writeConfigFile(cfgDir, { apiKey: KEY_ENV });
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual({ apiUrl: 'http://127.0.0.1:8787', apiKey: KEY_ENV, extra: 'kept' });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  it('reads as undefined when missing and refuses broken JSON', async () => {
    expect(await readConfigFile(dir)).toBeUndefined();
    await writeFile(join(dir, 'config.json'), '{not json');
    await expect(readConfigFile(dir)).rejects.toThrow(/not valid JSON/);
  });

  it('resolveConfig reads RGRID_CONFIG_DIR, the file and flags together', async () => {
    await writeConfigFile(dir, { apiUrl: 'http://file.example', apiKey: KEY_FILE });
    const c = await resolveConfig({ apiKey: KEY_FLAG }, { RGRID_CONFIG_DIR: dir });
    expect(c).toEqual({ apiUrl: 'http://file.example', apiKey: KEY_FLAG, configDir: dir });
  });
});
