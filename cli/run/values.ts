/**
 * Flag values of `rgrid run`, parsed and range-checked here (against the shared Limits schema)
 * so a bad value is a usage error before anything is hashed or sent.
 */
import { Limits } from '../../shared/api/executions.js';
import { LIMITS, RUNTIME_NAMES, type RuntimeName } from '../../shared/limits.js';
import { usageError } from '../errors.js';

const KEY = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

/**
 * `K=V` pairs (repeatable flag) → object. The value may contain `=`. For --env, a bare `K` takes
 * the value of K from the local environment, as `docker run -e K` does.
 */
export function parsePairs(items: string[], flag: string, localEnv?: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf('=');
    const key = eq < 0 ? item : item.slice(0, eq);
    let value: string | undefined = eq < 0 ? undefined : item.slice(eq + 1);
    if (!KEY.test(key)) {
      throw usageError(`Invalid --${flag} "${item}": the name must start with a letter or _ and contain only letters, digits, _ . -`, `Write --${flag} NAME=value.`);
    }
    if (value === undefined) {
      if (!localEnv) throw usageError(`Invalid --${flag} "${item}": expected NAME=value`, `Write --${flag} ${key}=value.`);
      value = localEnv[key];
      if (value === undefined) throw usageError(`--${flag} ${key}: ${key} is not set in your environment`, `Set it, or write --${flag} ${key}=value.`);
    }
    out[key] = value;
  }
  return out;
}

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/i;

/** "90" (seconds), "90s", "5m", "2h", "1h30m" → whole seconds. */
export function parseDuration(raw: string, flag = 'timeout'): number {
  const text = raw.trim().toLowerCase();
  let total = 0;
  const parts = text.match(/\d+(?:\.\d+)?(?:ms|s|m|h)?/g);
  if (!parts || parts.join('') !== text) throw badDuration(raw, flag);
  for (const part of parts) {
    const m = DURATION.exec(part)!;
    const n = Number(m[1]);
    const unit = m[2] ?? 's';
    total += unit === 'h' ? n * 3600 : unit === 'm' ? n * 60 : unit === 'ms' ? n / 1000 : n;
  }
  const seconds = Math.ceil(total);
  return checkRange(Limits.shape.timeoutSeconds, seconds, flag, raw, `between 1s and ${LIMITS.maxTimeoutSeconds / 3600}h`);
}

function badDuration(raw: string, flag: string) {
  return usageError(`Invalid --${flag} "${raw}": expected seconds or a duration like 90s, 5m, 2h`, `For example --${flag} 10m.`);
}

/** "512" (MB), "512m", "512MB", "2g", "2GiB", "1.5G" → MB. */
export function parseMemory(raw: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(k|kb|kib|m|mb|mib|g|gb|gib)?$/i.exec(raw.trim());
  if (!m) throw usageError(`Invalid --memory "${raw}": expected a size like 512m or 2g`, 'Plain numbers are megabytes.');
  const n = Number(m[1]);
  const unit = (m[2] ?? 'm').toLowerCase()[0];
  const mb = Math.round(unit === 'g' ? n * 1024 : unit === 'k' ? n / 1024 : n);
  return checkRange(Limits.shape.memoryMb, mb, 'memory', raw, `between 16m and ${LIMITS.maxMemoryMb / 1024}g`);
}

export function parseCpus(raw: string): number {
  if (!/^\d+(\.\d+)?$/.test(raw.trim())) throw usageError(`Invalid --cpus "${raw}": expected a number like 1 or 0.5`);
  return checkRange(Limits.shape.cpus, Number(raw), 'cpus', raw, `between 0.1 and ${LIMITS.maxCpus}`);
}

function checkRange(schema: { safeParse(v: unknown): { success: boolean } }, value: number, flag: string, raw: string, range: string): number {
  if (!schema.safeParse(value).success) throw usageError(`Invalid --${flag} "${raw}": must be ${range}`);
  return value;
}

/** --runtime, or a guess from the script's extension. */
export function resolveRuntime(flag: string | undefined, scriptName: string): RuntimeName {
  if (flag !== undefined) {
    if (!(RUNTIME_NAMES as readonly string[]).includes(flag)) {
      throw usageError(`Unknown runtime "${flag}"`, `Use one of: ${RUNTIME_NAMES.join(', ')}.`);
    }
    return flag as RuntimeName;
  }
  if (/\.(m|c)?js$/i.test(scriptName)) return 'node20';
  return 'python3.11';
}

export function parsePositiveInt(raw: string, flag: string, max: number): number {
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > max) throw usageError(`Invalid --${flag} "${raw}": expected a whole number from 1 to ${max}`);
  return Number(raw);
}
