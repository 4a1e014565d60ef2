/**
 * The CLI's one config schema (STYLE.md #7). Layers, lowest first:
 *   defaults < config file < environment (RGRID_API_URL, RGRID_API_KEY) < flags (--api-url, --api-key)
 * The file is `config.json` in RGRID_CONFIG_DIR, else $XDG_CONFIG_HOME/rgrid, else ~/.config/rgrid;
 * it holds a secret, so it is written with mode 0600 (directory 0700).
 * loadConfig is pure (a source in, a config out); reading and writing the file are separate.
 */
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { SECRET_PREFIXES } from '../shared/ids.js';
import { CLI_EXIT, CliError } from './errors.js';

export const DEFAULT_API_URL = 'http://127.0.0.1:8787';
export const CONFIG_FILE = 'config.json';

const ApiUrl = z
  .string()
  .url('must be a URL like http://127.0.0.1:8787')
  .refine((u) => URL.canParse(u) && /^https?:$/.test(new URL(u).protocol), 'must be an http:// or https:// URL')
  .transform((u) => u.replace(/\/+$/, ''));

const ApiKey = z.string().startsWith(SECRET_PREFIXES.apiKey, `must be a user API key starting with ${SECRET_PREFIXES.apiKey}`);

export const CliConfig = z.object({
  /** Base URL of the control plane. Default: the local stack `rgrid dev` starts. */
  apiUrl: ApiUrl,
  /** User API key; absent until `rgrid login` or `rgrid dev` stores one. */
  apiKey: ApiKey.optional(),
  /** Directory of config.json (so `login` knows where to write). */
  configDir: z.string().min(1),
});
export type CliConfig = z.infer<typeof CliConfig>;

/** What the config file may contain. Unknown keys are kept on rewrite but otherwise ignored. */
export const ConfigFile = z.looseObject({
  apiUrl: ApiUrl.optional(),
  apiKey: ApiKey.optional(),
});
export type ConfigFile = z.infer<typeof ConfigFile>;

export interface ConfigSource {
  env: Record<string, string | undefined>;
  /** Parsed config.json, or undefined when there is none. */
  file?: unknown;
  flags?: { apiUrl?: string | undefined; apiKey?: string | undefined };
  /** Home directory (for ~/.config); defaults to os.homedir(). */
  home?: string;
}

const nonEmpty = (v: string | undefined) => (v === undefined || v.trim() === '' ? undefined : v.trim());

export function configDir(env: Record<string, string | undefined>, home: string = homedir()): string {
  const explicit = nonEmpty(env.RGRID_CONFIG_DIR);
  if (explicit) return explicit;
  const xdg = nonEmpty(env.XDG_CONFIG_HOME);
  return join(xdg ?? join(home, '.config'), 'rgrid');
}

function layer<S extends z.ZodType>(schema: S, value: string | undefined, where: string): z.output<S> | undefined {
  if (value === undefined) return undefined;
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  throw new CliError(`Invalid ${where}: ${parsed.error.issues[0]?.message ?? 'invalid value'}`, {
    hint: where.includes('config') ? 'Fix the file, or run `rgrid login` to rewrite it.' : 'Fix the value and try again.',
    exitCode: CLI_EXIT.usage,
  });
}

/** Merges the layers; each value is validated where it came from, so errors name their source. */
export function loadConfig(source: ConfigSource): CliConfig {
  const dir = configDir(source.env, source.home);
  let file: ConfigFile = {};
  if (source.file !== undefined) {
    const parsed = ConfigFile.safeParse(source.file);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new CliError(`Invalid config file ${join(dir, CONFIG_FILE)}: ${issue?.path.join('.') || 'file'}: ${issue?.message}`, {
        hint: 'Fix or delete the file, then run `rgrid login --api-url URL --api-key KEY`.',
        exitCode: CLI_EXIT.usage,
      });
    }
    file = parsed.data;
  }
  const apiUrl =
    layer(ApiUrl, nonEmpty(source.flags?.apiUrl), '--api-url') ??
    layer(ApiUrl, nonEmpty(source.env.RGRID_API_URL), 'RGRID_API_URL') ??
    file.apiUrl ??
    DEFAULT_API_URL;
  const apiKey =
    layer(ApiKey, nonEmpty(source.flags?.apiKey), '--api-key') ??
    layer(ApiKey, nonEmpty(source.env.RGRID_API_KEY), 'RGRID_API_KEY') ??
    file.apiKey;
  return CliConfig.parse({ apiUrl, apiKey, configDir: dir });
}

/** config.json's parsed content, or undefined when the file does not exist. */
export async function readConfigFile(dir: string): Promise<unknown> {
  const path = join(dir, CONFIG_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CliError(`Cannot read config file ${path}: ${(err as Error).message}`, { hint: 'Check its permissions.' });
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new CliError(`Config file ${path} is not valid JSON`, { hint: 'Fix or delete it, then run `rgrid login`.', exitCode: CLI_EXIT.usage });
  }
}

/**
 * Merges `values` into config.json (other keys kept), written to a temp file with mode 0600 and
 * renamed into place, so a crash never leaves a half-written or world-readable key behind.
 */
export async function writeConfigFile(dir: string, values: ConfigFile): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, CONFIG_FILE);
  let current: Record<string, unknown> = {};
  try {
    const existing = await readConfigFile(dir);
    if (existing && typeof existing === 'object' && !Array.isArray(existing)) current = existing as Record<string, unknown>;
  } catch {
    // An unreadable or broken file is replaced.
  }
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify({ ...current, ...values }, null, 2) + '\n', { mode: 0o600 });
  await chmod(tmp, 0o600); // the umask may have narrowed it further, never widened; be exact
  await rename(tmp, path);
  return path;
}

/** Reads env, file and flags for a command. */
export async function resolveConfig(flags: ConfigSource['flags'] = {}, env: Record<string, string | undefined> = process.env): Promise<CliConfig> {
  const dir = configDir(env);
  return loadConfig({ env, flags, file: await readConfigFile(dir) });
}
