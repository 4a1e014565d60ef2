/**
 * Strict argument parsing for every command. citty describes the commands (usage text); the
 * values are parsed here with node:util's parseArgs in strict mode, because a CLI that runs code
 * remotely must not guess: an unknown flag, a flag without its value, or a repeated single flag
 * is a usage error (exit 2) before anything is sent. Everything after `--` is passed through as
 * is (for `run`: to the script, without file detection).
 */
import { parseArgs } from 'node:util';
import type { ArgsDef } from 'citty';
import { usageError } from '../errors.js';

export interface FlagDef {
  type: 'string' | 'boolean';
  description: string;
  alias?: string;
  /** May be given several times; parsed as a list. */
  multiple?: boolean;
  valueHint?: string;
  default?: string;
}

export interface PositionalDef {
  name: string;
  description: string;
  required?: boolean;
  /** Takes every remaining positional argument. */
  variadic?: boolean;
}

export interface CommandSpec {
  name: string;
  description: string;
  flags: Record<string, FlagDef>;
  positionals: PositionalDef[];
  /** Extra lines for --help (examples). */
  examples?: string[];
}

export interface Parsed {
  flags: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
  /** Index into positionals of the first one that came after `--` (positionals.length if none). */
  verbatimFrom: number;
}

/** Flags every command accepts. */
export const GLOBAL_FLAGS: Record<string, FlagDef> = {
  verbose: { type: 'boolean', description: 'Show debug output and stack traces' },
  help: { type: 'boolean', alias: 'h', description: 'Show this help' },
};

/** Flags of every command that talks to the control plane. */
export const API_FLAGS: Record<string, FlagDef> = {
  'api-url': { type: 'string', valueHint: 'url', description: 'Control plane URL (overrides RGRID_API_URL and the config file)' },
  'api-key': { type: 'string', valueHint: 'key', description: 'API key (overrides RGRID_API_KEY and the config file)' },
};

export const JSON_FLAG: Record<string, FlagDef> = {
  json: { type: 'boolean', description: 'Print the result as JSON on stdout' },
};

export function parseCommandArgs(spec: CommandSpec, rawArgs: string[]): Parsed {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const [name, def] of Object.entries({ ...spec.flags, ...GLOBAL_FLAGS })) {
    options[name] = { type: def.type, ...(def.alias ? { short: def.alias } : {}), ...(def.multiple ? { multiple: true } : {}) };
  }
  let result;
  try {
    result = parseArgs({ args: rawArgs, options, allowPositionals: true, strict: true, tokens: true });
  } catch (err) {
    throw translate(spec, err as NodeJS.ErrnoException);
  }
  const terminator = result.tokens.findIndex((t) => t.kind === 'option-terminator');
  const verbatimFrom = terminator < 0 ? result.positionals.length : result.tokens.slice(0, terminator).filter((t) => t.kind === 'positional').length;
  // parseArgs keeps the last of repeated single-value flags; a repeated --timeout is a mistake.
  for (const [name, def] of Object.entries(spec.flags)) {
    if (def.multiple || def.type !== 'string') continue;
    const uses = result.tokens.filter((t) => t.kind === 'option' && t.name === name).length;
    if (uses > 1) throw usageError(`--${name} was given ${uses} times`, `Give it once; see \`rgrid ${spec.name} --help\`.`);
  }
  const flags: Parsed['flags'] = { ...(result.values as Parsed['flags']) };
  for (const [name, def] of Object.entries(spec.flags)) if (flags[name] === undefined && def.default !== undefined) flags[name] = def.default;
  const positionals = result.positionals;
  const required = spec.positionals.filter((p) => p.required);
  if (!flags.help && positionals.length < required.length) {
    const missing = required[positionals.length]!;
    throw usageError(`Missing ${missing.name}`, `Usage: ${usageLine(spec)}`);
  }
  const variadic = spec.positionals.some((p) => p.variadic);
  if (!variadic && positionals.length > spec.positionals.length) {
    throw usageError(`Unexpected argument "${positionals[spec.positionals.length]}"`, `Usage: ${usageLine(spec)}`);
  }
  return { flags, positionals, verbatimFrom };
}

function translate(spec: CommandSpec, err: NodeJS.ErrnoException): Error {
  const flag = /'(-{1,2}[^' ]+)/.exec(err.message)?.[1] ?? '';
  switch (err.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION': {
      const passThrough = spec.name === 'run' ? ` To pass ${flag} to your script, put it after --: rgrid run SCRIPT [ARGS...] -- ${flag}` : '';
      return usageError(`Unknown option ${flag} for \`rgrid ${spec.name}\``, `\`rgrid ${spec.name} --help\` lists the options.${passThrough}`);
    }
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE': {
      const def = spec.flags[flag.replace(/^-+/, '')];
      if (def?.type === 'boolean') return usageError(`${flag} takes no value`, `Write ${flag} alone.`);
      return usageError(`${flag} needs a value`, `Write ${flag} ${def?.valueHint ? def.valueHint.toUpperCase() : 'VALUE'} (a value starting with "-" needs ${flag}=VALUE).`);
    }
    default:
      return usageError(err.message, `\`rgrid ${spec.name} --help\` shows the usage.`);
  }
}

export function usageLine(spec: CommandSpec): string {
  const pos = spec.positionals.map((p) => (p.required ? p.name : `[${p.name}]`) + (p.variadic ? '...' : ''));
  return ['rgrid', spec.name, '[OPTIONS]', ...pos].join(' ');
}

/** The same spec as citty args, for citty's usage renderer. */
export function toCittyArgs(spec: CommandSpec): ArgsDef {
  const args: ArgsDef = {};
  for (const p of spec.positionals) {
    args[p.name.toLowerCase()] = { type: 'positional', description: p.description, required: Boolean(p.required) };
  }
  for (const [name, def] of Object.entries({ ...spec.flags, ...GLOBAL_FLAGS })) {
    args[name] = {
      type: def.type,
      description: def.description + (def.multiple ? ' (repeatable)' : ''),
      ...(def.alias ? { alias: def.alias } : {}),
      ...(def.valueHint ? { valueHint: def.valueHint } : {}),
      ...(def.default !== undefined ? { default: def.default } : {}),
    } as ArgsDef[string];
  }
  return args;
}

export function str(p: Parsed, name: string): string | undefined {
  const v = p.flags[name];
  return typeof v === 'string' ? v : undefined;
}

export function list(p: Parsed, name: string): string[] {
  const v = p.flags[name];
  return Array.isArray(v) ? v : typeof v === 'string' ? [v] : [];
}

export function bool(p: Parsed, name: string): boolean {
  return p.flags[name] === true;
}
