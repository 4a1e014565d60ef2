/**
 * docs/benchmarks.md is shared: this bench suite owns the header and the sections "Batch
 * throughput", "Dispatch" and "Submission"; "Caching" and "Files" belong to their own benches.
 * Every write re-reads the file and replaces exactly one `## ` section (or the header, everything
 * before the first `## `), so concurrent authors' sections are never touched.
 */
import { existsSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { shouldWriteDocs } from './env.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const DOC = join(ROOT, 'docs', 'benchmarks.md');

/** Section order of a new file; existing files keep their order (a missing section is appended). */
export const SECTIONS = ['Batch throughput', 'Caching', 'Files', 'Dispatch', 'Submission'] as const;

const PLACEHOLDER = (title: string) => `## ${title}\n\n_Not measured yet._\n`;

interface Parsed {
  header: string;
  sections: { title: string; text: string }[];
}

export function parseDoc(text: string): Parsed {
  const lines = text.split('\n');
  const out: Parsed = { header: '', sections: [] };
  let current: { title: string; lines: string[] } | undefined;
  const header: string[] = [];
  let fence = false;
  for (const line of lines) {
    if (/^(```|~~~)/.test(line)) fence = !fence;
    const m = !fence && /^## (.+?)\s*$/.exec(line);
    if (m) {
      if (current) out.sections.push({ title: current.title, text: current.lines.join('\n') });
      current = { title: m[1]!, lines: [line] };
    } else if (current) current.lines.push(line);
    else header.push(line);
  }
  if (current) out.sections.push({ title: current.title, text: current.lines.join('\n') });
  out.header = header.join('\n');
  return out;
}

function render(p: Parsed): string {
  const parts = [p.header.trimEnd(), ...p.sections.map((s) => s.text.trimEnd())];
  return parts.filter((x) => x.length).join('\n\n') + '\n';
}

/** The section's body must start with its `## Title` line. */
export function replaceSection(text: string, title: string, body: string): string {
  const p = parseDoc(text);
  const i = p.sections.findIndex((s) => s.title === title);
  if (i >= 0) p.sections[i] = { title, text: body };
  else p.sections.push({ title, text: body });
  return render(p);
}

export function replaceHeader(text: string, header: string): string {
  const p = parseDoc(text);
  p.header = header;
  return render(p);
}

function skeleton(): string {
  return ['# Benchmarks', '', ...SECTIONS.map((s) => PLACEHOLDER(s))].join('\n');
}

async function update(fn: (text: string) => string): Promise<void> {
  // Read as late as possible and replace atomically: another author may be writing their section.
  const text = existsSync(DOC) ? await readFile(DOC, 'utf8') : skeleton();
  const next = fn(text);
  const tmp = `${DOC}.${process.pid}.tmp`;
  await writeFile(tmp, next);
  await rename(tmp, DOC);
}

export async function writeSection(title: (typeof SECTIONS)[number], body: string): Promise<void> {
  if (!body.startsWith(`## ${title}\n`)) throw new Error(`section body must start with "## ${title}"`);
  await update((text) => replaceSection(text, title, body));
}

export async function writeHeader(header: string): Promise<void> {
  await update((text) => replaceHeader(text, header));
}

/**
 * The end of every bench: the raw results as JSON in the temp directory, and the section of
 * docs/benchmarks.md, written only at full size (or with BENCH_WRITE_DOCS=1).
 */
export async function publish(opts: { bench: string; section: (typeof SECTIONS)[number]; md: string; raw: unknown; full: boolean; log: (line: string) => void }): Promise<void> {
  const rawFile = join(tmpdir(), `rgrid-bench-${opts.bench}-${Date.now()}.json`);
  await writeFile(rawFile, JSON.stringify(opts.raw, null, 2));
  opts.log(`raw results: ${rawFile}`);
  if (shouldWriteDocs(opts.full)) {
    await writeSection(opts.section, opts.md);
    opts.log(`docs/benchmarks.md: section "${opts.section}" updated`);
  } else opts.log('quick check: docs/benchmarks.md left alone (BENCH_WRITE_DOCS=1 to write anyway)');
}

/** Runs a bench's main, printing its tables; exit code 1 on an error. */
export function runBench(main: () => Promise<string | undefined>): void {
  main().then(
    (output) => {
      if (output) process.stdout.write('\n' + output + '\n');
      process.exit(0);
    },
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
