/**
 * What the CLI says about artifact retention: outputs are deleted `ARTIFACT_RETENTION_DAYS` (30
 * by default) after they were recorded. A download of outputs that go within 3 days warns
 * ("Expires in 2 days"), and an output already gone gets one clear line ("expired on <date>")
 * while the others are still downloaded.
 */
import type { Artifact } from '../../shared/api/executions.js';

/** Warn about artifacts that expire sooner than this. */
export const EXPIRY_WARNING_MS = 3 * 86400_000;

const DAY = 86400_000;
const HOUR = 3600_000;

/** "Expires in 2 days" when `expiresAt` is within the warning window, else undefined. */
export function expiresIn(expiresAt: string, now = Date.now()): string | undefined {
  const left = Date.parse(expiresAt) - now;
  if (!(left < EXPIRY_WARNING_MS)) return undefined;
  if (left <= 0) return 'Expires now';
  if (left >= DAY) {
    const days = Math.max(1, Math.round(left / DAY));
    return `Expires in ${days} ${days === 1 ? 'day' : 'days'}`;
  }
  if (left >= HOUR) {
    const hours = Math.round(left / HOUR);
    return `Expires in ${hours} ${hours === 1 ? 'hour' : 'hours'}`;
  }
  return 'Expires in less than an hour';
}

function names(paths: string[]): string {
  return paths.length <= 3 ? paths.join(', ') : `${paths.slice(0, 3).join(', ')} and ${paths.length - 3} more`;
}

/** One warning per distinct "Expires in …", naming the artifacts (grouped: 500 outputs, 1 line). */
export function expiryWarnings(artifacts: Artifact[], now = Date.now()): string[] {
  const groups = new Map<string, { paths: string[]; date: string }>();
  for (const a of artifacts) {
    const text = expiresIn(a.expiresAt, now);
    if (!text) continue;
    const g = groups.get(text) ?? groups.set(text, { paths: [], date: a.expiresAt.slice(0, 10) }).get(text)!;
    g.paths.push(a.path);
  }
  return [...groups].map(([text, g]) => `${names(g.paths)}: ${text} (${g.date}); the stored ${g.paths.length === 1 ? 'copy is' : 'copies are'} deleted then.`);
}

/** The line for an output whose bytes are gone. */
export function expiredLine(path: string, expiresAt: string): string {
  return `${path} expired on ${expiresAt.slice(0, 10)} and was not downloaded`;
}
