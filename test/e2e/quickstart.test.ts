// The README's quick start, literally: its first command, as written, in a fresh copy of the
// repository (tracked and new files, no node_modules, no .rgrid), with a temp HOME.
import { spawn, execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../../cli/paths.js';
import { cleanEnv } from '../harness/cli.js';
import { requireRunnerPrerequisites } from '../harness/stack.js';

/** The commands of the first code block under "## Quick start". */
export function quickStartCommands(readme: string): string[] {
  const section = readme.split(/^## /m).find((s) => s.startsWith('Quick start'));
  if (!section) throw new Error('README.md has no "## Quick start" section');
  const block = /```(?:sh|bash|shell)?\n([\s\S]*?)```/.exec(section)?.[1];
  if (!block) throw new Error('the quick start has no code block');
  return block
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
}

/** pids of processes whose command line contains `needle` (our own leftovers, if any). */
function processesMentioning(needle: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(needle)) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

let clone: string;
let home: string;

beforeAll(async () => {
  await requireRunnerPrerequisites();
  const root = await mkdtemp(join(tmpdir(), 'rgrid-quickstart-'));
  clone = join(root, 'rgrid');
  home = join(root, 'home');
  await mkdir(home);
  // What a fresh clone holds: tracked files plus new ones not ignored (so this works before commit).
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: PACKAGE_ROOT, encoding: 'utf8' })
    .split('\0')
    .filter(Boolean);
  for (const f of files) {
    await mkdir(join(clone, dirname(f)), { recursive: true });
    await cp(join(PACKAGE_ROOT, f), join(clone, f)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err; // deleted in the working tree but not yet in git
    });
  }
});

afterAll(async () => {
  if (clone) await rm(dirname(clone), { recursive: true, force: true });
});

describe('README quick start', () => {
  it('has exactly two commands: the demo, then the test suite', () => {
    const commands = quickStartCommands(readFileSync(join(PACKAGE_ROOT, 'README.md'), 'utf8'));
    expect(commands).toEqual(['npm run demo', 'npm test']);
    const pkg = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8'));
    expect(pkg.scripts.demo ?? '(no demo script)', 'package.json needs the "demo" script').toMatch(/npm ci\b.*&& node bin\/rgrid\.mjs demo$/);
    // The second command is this very suite: running it from inside itself would recurse.
    expect(pkg.scripts.test).toMatch(/vitest run/);
  });

  it('`npm run demo` on a fresh clone installs, runs the example remotely, downloads its outputs and leaves nothing running', async () => {
    const [first] = quickStartCommands(readFileSync(join(clone, 'README.md'), 'utf8'));
    const result = await new Promise<{ code: number | null; out: string }>((resolve) => {
      let out = '';
      const child = spawn('bash', ['-c', first!], {
        cwd: clone,
        // prefer-offline: the dependencies come from the npm cache when it has them.
        env: cleanEnv({ HOME: home, npm_config_prefer_offline: 'true', npm_config_audit: 'false', npm_config_fund: 'false', npm_config_cache: join(process.env.HOME ?? home, '.npm') }),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout.on('data', (d: Buffer) => (out += d));
      child.stderr.on('data', (d: Buffer) => (out += d));
      child.on('close', (code) => resolve({ code, out }));
    });
    expect(result.code, result.out).toBe(0);
    expect(result.out).toMatch(/\$ rgrid run examples\/csv-summary\/summarize\.py examples\/csv-summary\/data\/sales\.csv/);
    expect(result.out).toMatch(/sales\.csv\s+200\s+order_id=/); // the script's own stdout, streamed back
    expect(result.out).toMatch(/Demo finished/);
    // Only lines meant for the user: the control plane's structured log goes to its log file.
    expect(result.out).not.toMatch(/"event":/);

    const outDir = join(clone, 'demo-output');
    expect((await readdir(outDir)).sort()).toEqual(['stats', 'summary.md']);
    expect((await readdir(join(outDir, 'stats'))).sort()).toEqual(['sales.json', 'sensors.json', 'weather.json']);
    expect(await readFile(join(outDir, 'summary.md'), 'utf8')).toMatch(/## weather\.csv \(120 rows\)/);
    const sales = JSON.parse(await readFile(join(outDir, 'stats', 'sales.json'), 'utf8'));
    expect(sales).toMatchObject({ file: 'sales.csv', rows: 200, columns: { units: { type: 'number', min: 1, max: 20 } } });

    // The stack was stopped: no runner or workerd of this clone is left.
    expect(processesMentioning(clone)).toEqual([]);
    expect(processesMentioning('rgrid-demo-')).toEqual([]);
  }, 240_000);
});
