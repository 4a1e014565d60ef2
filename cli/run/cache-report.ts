/**
 * What `rgrid run` says about the cache after create, from the response's `cache` report: what
 * was reused ("✓ Using cached environment (python3.11, 3 packages, built 2h ago)") and, when the
 * environment must be built, why ("Building environment: requirements changed since last build
 * (+pandas==2.2.2)"). Pure: returns lines; execute.ts prints them on stderr.
 */
import type { CacheReport } from '../../shared/api/cache.js';
import { formatBytes } from '../ui.js';

export interface CacheFlags {
  /** --no-cache: the environment is rebuilt whatever the report says. */
  noCache?: boolean;
  /** --no-cache-inputs: every input is uploaded again. */
  forceUpload?: boolean;
}

export interface ReportLine {
  /** A hit (printed with ✓) or a note. */
  kind: 'hit' | 'note';
  text: string;
}

/** "2h ago", "3 days ago": coarse on purpose, it says how old an environment is. */
export function ago(iso: string, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return s < 5 ? 'just now' : `${s}s ago`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m}m ago`;
  const h = Math.round(m / 60);
  if (h < 48) return `${h}h ago`;
  return `${Math.round(h / 24)} days ago`;
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

export function cacheReportLines(r: CacheReport, flags: CacheFlags = {}, now = Date.now()): ReportLine[] {
  const lines: ReportLine[] = [];
  // An environment exists only with requirements: without them the base image runs the script.
  if (r.env.packages > 0) {
    const what = `${r.env.runtime}, ${plural(r.env.packages, 'package')}`;
    if (flags.noCache) lines.push({ kind: 'note', text: `Building environment: --no-cache given (${what}, rebuilt from scratch)` });
    else if (r.env.hit) lines.push({ kind: 'hit', text: `Using cached environment (${what}${r.env.builtAt ? `, built ${ago(r.env.builtAt, now)}` : ''})` });
    else lines.push({ kind: 'note', text: `Building environment: ${r.env.reason ?? 'not built before'}` });
  }
  if (r.script.hit) lines.push({ kind: 'hit', text: 'Using cached script' });
  const { hit, total, bytesHit } = r.inputs;
  if (total > 0) {
    if (flags.forceUpload) lines.push({ kind: 'note', text: `Uploading ${total === 1 ? 'the input' : `all ${total} inputs`} again (--no-cache-inputs)` });
    else if (hit === total) lines.push({ kind: 'hit', text: `Using cached inputs (${plural(total, 'file')}, ${formatBytes(bytesHit)})` });
    else if (hit > 0) lines.push({ kind: 'hit', text: `Using cached inputs (${hit} of ${plural(total, 'file')}, ${formatBytes(bytesHit)})` });
  }
  return lines;
}
