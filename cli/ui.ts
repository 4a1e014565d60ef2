/**
 * Terminal output. Everything the CLI says about itself goes to stderr, so that stdout carries
 * only the script's own output (or --json). Colors follow NO_COLOR / FORCE_COLOR and are off when
 * stderr is not a terminal; anything that redraws a line (progress bars) is TTY-only.
 */
import { createConsola, type ConsolaInstance, type LogObject } from 'consola';
import { formatWithOptions } from 'node:util';

export interface Terminal {
  /** stderr is an interactive terminal: progress bars and in-place redraws are allowed. */
  tty: boolean;
  color: boolean;
}

export function detectTerminal(env: NodeJS.ProcessEnv = process.env, stream: NodeJS.WriteStream = process.stderr): Terminal {
  const tty = Boolean(stream.isTTY) && env.TERM !== 'dumb';
  let color = tty;
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') color = false;
  else if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '0') color = true;
  return { tty, color };
}

export const terminal: Terminal = detectTerminal();

function palette(enabled: boolean) {
  const sgr = (open: number, close: number) => (s: string) => (enabled ? `\u001b[${open}m${s}\u001b[${close}m` : s);
  return { red: sgr(31, 39), green: sgr(32, 39), yellow: sgr(33, 39), cyan: sgr(36, 39), dim: sgr(2, 22), bold: sgr(1, 22) };
}

/** Styles for what goes to stderr (messages, errors). */
export const { red, green, yellow, cyan, dim, bold } = palette(terminal.color);

/** Styles for what goes to stdout (tables, status): plain when stdout is piped. */
export const out = palette(detectTerminal(process.env, process.stdout).color);

/** Writes one line (or more) to stderr as is. */
export function note(text: string): void {
  process.stderr.write(text.endsWith('\n') ? text : text + '\n');
}

/**
 * consola with one plain reporter: no timestamps or badges, just a leading mark for success and
 * warnings, so the same lines read well in a terminal and in a CI log.
 */
function reporter(logObj: LogObject): void {
  const text = formatWithOptions({ colors: false }, ...(logObj.args as unknown[]));
  switch (logObj.type) {
    case 'success':
      note(`${green('✓')} ${text}`);
      break;
    case 'warn':
      note(`${yellow('Warning:')} ${text}`);
      break;
    case 'error':
    case 'fatal':
      note(`${red('Error:')} ${text}`);
      break;
    case 'debug':
    case 'trace':
    case 'verbose':
      note(dim(text));
      break;
    default:
      note(text);
  }
}

export const log: ConsolaInstance = createConsola({ reporters: [{ log: reporter }], level: 3 });

export function setVerbose(verbose: boolean): void {
  log.level = verbose ? 5 : 3;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return ms < 10_000 ? `${(ms / 1000).toFixed(1)}s` : `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 ? `${m}m ${s % 60}s` : `${m}m`;
  return m % 60 ? `${Math.floor(m / 60)}h ${m % 60}m` : `${Math.floor(m / 60)}h`;
}
