/**
 * `--batch GLOB`: the files a pattern matches, sorted. Node 20 has no fs.glob, and a pattern is
 * small enough to match here: `*` and `?` within one path segment, `[abc]`/`[!abc]` classes,
 * `{a,b}` alternatives, and `**` for any number of directories. As in a shell, `*` and `?` do
 * not match a leading dot (hidden files need an explicit `.`), `**` does not descend into hidden
 * directories or through symlinked directories (no cycles), and only files are returned.
 *
 * Matches keep the form of the pattern (`data/*.csv` gives `data/a.csv`; an absolute pattern
 * gives absolute paths): that string is the item's input name, which names its output folder.
 */
import { readdir, stat } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';

const MAGIC = /[*?[{]/;

export function hasMagic(pattern: string): boolean {
  return MAGIC.test(pattern);
}

/** `{a,b}` alternatives of a segment, expanded (nested braces allowed). */
export function expandBraces(segment: string): string[] {
  let depth = 0;
  let start = -1;
  for (let i = 0; i < segment.length; i++) {
    const ch = segment[i];
    if (ch === '\\') {
      i++;
      continue;
    }
    if (ch === '{') {
      if (depth === 0) start = i;
      depth++;
    } else if (ch === '}' && depth > 0) {
      depth--;
      if (depth === 0) {
        const inner = segment.slice(start + 1, i);
        const parts: string[] = [];
        let d = 0;
        let from = 0;
        for (let j = 0; j < inner.length; j++) {
          if (inner[j] === '\\') j++;
          else if (inner[j] === '{') d++;
          else if (inner[j] === '}') d--;
          else if (inner[j] === ',' && d === 0) {
            parts.push(inner.slice(from, j));
            from = j + 1;
          }
        }
        parts.push(inner.slice(from));
        // "{a}" without a comma is literal in a shell; keep it so.
        if (parts.length < 2) continue;
        const head = segment.slice(0, start);
        const tails = expandBraces(segment.slice(i + 1));
        return parts.flatMap((p) => expandBraces(head + p).flatMap((h) => tails.map((t) => h + t)));
      }
    }
  }
  return [segment];
}

/** One path segment (no `/`, braces already expanded) as a RegExp. */
export function segmentRegExp(segment: string): RegExp {
  let re = '';
  for (let i = 0; i < segment.length; i++) {
    const ch = segment[i]!;
    if (ch === '\\' && i + 1 < segment.length) re += escape(segment[++i]!);
    else if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else if (ch === '[') {
      const end = segment.indexOf(']', i + 2);
      if (end < 0) {
        re += '\\[';
        continue;
      }
      let body = segment.slice(i + 1, end);
      const negate = body.startsWith('!') || body.startsWith('^');
      if (negate) body = body.slice(1);
      re += `[${negate ? '^' : ''}${body.replace(/\\/g, '\\\\').replace(/\^/g, '\\^')}]`;
      i = end;
    } else re += escape(ch);
  }
  return new RegExp(`^${re}$`);
}

function escape(ch: string): string {
  return /[\\^$.*+?()[\]{}|/]/.test(ch) ? `\\${ch}` : ch;
}

function segmentMatcher(segment: string): (name: string) => boolean {
  const alternatives = expandBraces(segment);
  const res = alternatives.map(segmentRegExp);
  const dotOk = alternatives.every((a) => a.startsWith('.'));
  return (name) => (dotOk || !name.startsWith('.')) && res.some((r) => r.test(name));
}

async function entries(dir: string): Promise<{ name: string; dir: boolean; link: boolean }[]> {
  try {
    const list = await readdir(dir, { withFileTypes: true });
    return list.map((e) => ({ name: e.name, dir: e.isDirectory(), link: e.isSymbolicLink() }));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EACCES') return [];
    throw err;
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Files matching one pattern, relative to `cwd` unless the pattern is absolute. `shown` is the
 * path as the result prints it; `real` is where it is on disk.
 */
async function walk(cwd: string, shown: string, segments: string[], out: Set<string>): Promise<void> {
  const real = (p: string) => (isAbsolute(p) ? p : join(cwd, p));
  const child = (name: string) => (shown === '' ? name : shown.endsWith('/') ? shown + name : `${shown}/${name}`);
  if (segments.length === 0) {
    if (shown !== '' && (await isFile(real(shown)))) out.add(shown);
    return;
  }
  const [seg, ...rest] = segments as [string, ...string[]];
  if (seg === '**') {
    // Zero directories, then one more level and "**" again.
    await walk(cwd, shown, rest, out);
    for (const e of await entries(real(shown || '.'))) {
      if (e.dir && !e.link && !e.name.startsWith('.')) await walk(cwd, child(e.name), segments, out);
    }
    return;
  }
  if (!hasMagic(seg)) {
    const next = child(seg.replace(/\\(.)/g, '$1'));
    if (rest.length === 0 || (await isDir(real(next)))) await walk(cwd, next, rest, out);
    return;
  }
  const match = segmentMatcher(seg);
  for (const e of await entries(real(shown || '.'))) {
    if (!match(e.name)) continue;
    // Symlinked files count; a symlinked directory may be named explicitly but is not walked by **.
    if (rest.length === 0 || e.dir || (e.link && (await isDir(real(child(e.name)))))) await walk(cwd, child(e.name), rest, out);
  }
}

/** Files one pattern matches, sorted by path. */
export async function matchGlob(pattern: string, cwd: string): Promise<string[]> {
  let p = pattern.replace(/\/{2,}/g, '/');
  while (p.startsWith('./')) p = p.slice(2);
  const absolute = p.startsWith('/');
  const segments = p.split('/').filter((s) => s !== '' && s !== '.');
  const out = new Set<string>();
  await walk(cwd, absolute ? '/' : '', segments, out);
  return [...out].sort(comparePaths);
}

/** Sorted by path, code point order (the same on every machine, whatever its locale). */
export function comparePaths(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Every file the patterns match, each once, sorted; `unmatched` lists patterns that matched nothing. */
export async function expandGlobs(patterns: string[], cwd: string): Promise<{ files: string[]; unmatched: string[] }> {
  const all = new Set<string>();
  const unmatched: string[] = [];
  for (const pattern of patterns) {
    const files = await matchGlob(pattern, cwd);
    if (!files.length) unmatched.push(pattern);
    for (const f of files) all.add(f);
  }
  return { files: [...all].sort(comparePaths), unmatched };
}
