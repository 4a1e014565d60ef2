/**
 * `rgrid` entry: finds the command, loads only that command's module (startup stays fast), runs
 * it, and turns every failure into one error format and a meaningful exit code.
 *
 * Dispatch is done here rather than by citty's runMain so that `--help` after `--` reaches the
 * user's script, global flags may come before or after the command name, and errors are ours.
 */
import { defineCommand, renderUsage, type CommandDef } from 'citty';
import { CLI_EXIT, printError, toCliError, usageError } from './errors.js';
import { detectTerminal, setVerbose } from './ui.js';
import type { RGridCommand } from './commands/_shared.js';
import { stripVTControlCharacters } from 'node:util';
import { VERSION } from './version.js';

type Loader = () => Promise<CommandDef>;

const load = (p: Promise<{ default: CommandDef }>) => p.then((m) => m.default);

/** One file per command in ./commands, loaded lazily. */
export const COMMANDS: Record<string, Loader> = {
  run: () => load(import('./commands/run.js')),
  status: () => load(import('./commands/status.js')),
  logs: () => load(import('./commands/logs.js')),
  list: () => load(import('./commands/list.js')),
  download: () => load(import('./commands/download.js')),
  upload: () => load(import('./commands/upload.js')),
  cancel: () => load(import('./commands/cancel.js')),
  cache: () => load(import('./commands/cache.js')),
  retry: () => load(import('./commands/retry.js')),
  webhook: () => load(import('./commands/webhook.js')),
  login: () => load(import('./commands/login.js')),
  dev: () => load(import('./commands/dev.js')),
  fleet: () => load(import('./commands/fleet.js')),
  demo: () => load(import('./commands/demo.js')),
};

/** Not listed in the top-level help (`npm run demo` is how people meet it). */
const HIDDEN = new Set(['demo']);

const mainCommand: CommandDef = defineCommand({
  meta: { name: 'rgrid', version: VERSION, description: 'Run a script on remote machines as if it ran here' },
  args: {
    verbose: { type: 'boolean', description: 'Show debug output and stack traces' },
    version: { type: 'boolean', description: 'Print the version' },
  },
  subCommands: Object.fromEntries(Object.entries(COMMANDS).filter(([name]) => !HIDDEN.has(name))),
}) as CommandDef;

/** Flags that take a value and may appear before the command name. */
const VALUE_FLAGS = new Set(['--api-url', '--api-key']);

export function splitArgv(argv: string[]): { name: string | undefined; rest: string[]; help: boolean; verbose: boolean; version: boolean } {
  const end = argv.indexOf('--');
  const head = end < 0 ? argv : argv.slice(0, end);
  let index = -1;
  for (let i = 0; i < head.length; i++) {
    const a = head[i]!;
    if (VALUE_FLAGS.has(a)) {
      i++;
      continue;
    }
    if (!a.startsWith('-')) {
      index = i;
      break;
    }
  }
  const name = index < 0 ? undefined : argv[index];
  const rest = index < 0 ? argv : [...argv.slice(0, index), ...argv.slice(index + 1)];
  return {
    name,
    rest,
    help: head.includes('--help') || head.includes('-h'),
    verbose: head.includes('--verbose'),
    version: head.includes('--version'),
  };
}

/** citty colors its usage text unconditionally; strip that for pipes and NO_COLOR. */
function plainUnlessTty(text: string): string {
  const trimmed = text.replace(/[ \t]+$/gm, '');
  return detectTerminal(process.env, process.stdout).color ? trimmed : stripVTControlCharacters(trimmed);
}

function suggest(name: string): string {
  const names = Object.keys(COMMANDS).filter((n) => !HIDDEN.has(n));
  const close = names.find((n) => n.startsWith(name.slice(0, 2)) || name.startsWith(n));
  return close ? `Did you mean \`rgrid ${close}\`? ` : '';
}

/** Runs the CLI and resolves to the process exit code. Never throws. */
export async function main(argv: string[]): Promise<number> {
  const { name, rest, help, verbose, version } = splitArgv(argv);
  setVerbose(verbose);
  // `rgrid logs ID | head`: a closed pipe ends the command quietly, as it would for cat.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  try {
    if (!name) {
      if (version) {
        process.stdout.write(VERSION + '\n');
        return 0;
      }
      process.stdout.write(plainUnlessTty(await renderUsage(mainCommand)) + '\n');
      return help || argv.length === 0 ? 0 : CLI_EXIT.usage;
    }
    const loader = COMMANDS[name];
    if (!loader) throw usageError(`Unknown command "${name}"`, `${suggest(name)}\`rgrid --help\` lists the commands.`);
    const cmd = await loader();
    if (help) {
      const examples = (cmd as Partial<RGridCommand>).spec?.examples;
      const text = (await renderUsage(cmd, mainCommand)) + (examples?.length ? `\n\nEXAMPLES\n\n${examples.map((e) => `  ${e}`).join('\n')}\n` : '');
      process.stdout.write(plainUnlessTty(text) + '\n');
      return 0;
    }
    // Called directly, not through citty's runCommand: our handlers parse strictly themselves
    // (citty's parser accepts unknown flags silently).
    const result: unknown = await cmd.run?.({ rawArgs: rest, args: { _: rest } as never, cmd });
    return typeof result === 'number' ? result : 0;
  } catch (err) {
    const e = toCliError(err);
    printError(e, verbose);
    return e.exitCode;
  }
}
