/**
 * What commands share: the command wrapper (citty definition + strict parsing), and the API
 * client built from the layered config.
 */
import { defineCommand, type CommandDef } from 'citty';
import { isId } from '../../shared/ids.js';
import { RGridClient } from '../api/client.js';
import { resolveConfig, type CliConfig } from '../config.js';
import { CLI_EXIT, CliError, usageError } from '../errors.js';
import { parseCommandArgs, str, toCittyArgs, type CommandSpec, type Parsed } from './_args.js';
import { VERSION } from '../version.js';

/** A command's handler returns its exit code (undefined = 0). */
export type Handler = (args: Parsed) => Promise<number | void>;

/** A citty command definition that also carries its spec (main.ts prints the examples). */
export type RGridCommand = CommandDef & { spec: CommandSpec };

export function command(spec: CommandSpec, handler: Handler): RGridCommand {
  const def = defineCommand({
    meta: { name: spec.name, description: spec.description },
    args: toCittyArgs(spec),
    run: ({ rawArgs }) => handler(parseCommandArgs(spec, rawArgs)),
  }) as CommandDef;
  return Object.assign(def, { spec });
}

export interface ApiContext {
  client: RGridClient;
  config: CliConfig;
}

/** The client for a command, from flags > env > config file > defaults. */
export async function apiContext(args: Parsed, opts: { requireKey?: boolean; signal?: AbortSignal } = {}): Promise<ApiContext> {
  const config = await resolveConfig({ apiUrl: str(args, 'api-url'), apiKey: str(args, 'api-key') });
  if (opts.requireKey !== false && !config.apiKey) {
    throw new CliError('No API key configured', {
      hint: 'Start a local stack with `rgrid dev` (it configures the CLI), or run `rgrid login --api-url URL --api-key KEY`, or set RGRID_API_KEY.',
      exitCode: CLI_EXIT.auth,
    });
  }
  const client = new RGridClient({ baseUrl: config.apiUrl, token: config.apiKey, userAgent: `rgrid-cli/${VERSION}` }, { signal: opts.signal });
  return { client, config };
}

/** Validates an execution id argument before any request (a typo is a usage error, not a 404). */
export function executionIdArg(raw: string | undefined): string {
  if (!raw || !isId('execution', raw)) {
    throw usageError(`"${raw ?? ''}" is not an execution id`, 'Execution ids look like exec_ followed by 24 letters and digits; `rgrid list` shows yours.');
  }
  return raw;
}

/** Prints JSON on stdout (for --json). */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}
