/**
 * Bench settings from the environment. Every bench runs at full size by default and accepts
 * smaller sizes for a quick check (e.g. `BENCH_ITEMS=100`); a run at other than the full sizes
 * says so in its report and does not overwrite docs/benchmarks.md unless BENCH_WRITE_DOCS=1.
 */

export function intEnv(name: string, fallback: number, min = 1): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer >= ${min} (got ${JSON.stringify(raw)})`);
  return n;
}

export function strEnv(name: string, fallback: string): string {
  const raw = process.env[name];
  return raw === undefined || raw === '' ? fallback : raw;
}

/**
 * Whether this run may write its section of docs/benchmarks.md: BENCH_WRITE_DOCS=1 always,
 * =0 never; unset, only full-size runs do (a quick check must not replace the published numbers).
 */
export function shouldWriteDocs(fullSize: boolean): boolean {
  const v = process.env.BENCH_WRITE_DOCS;
  if (v === '1' || v === 'true') return true;
  if (v === '0' || v === 'false') return false;
  return fullSize;
}

/** The pip index the runners build environments from (never needed by these benches' jobs). */
export const PIP_INDEX_URL = strEnv('RGRID_PIP_INDEX_URL', 'http://127.0.0.1:3141/simple/');

export const BASE_IMAGE = 'python:3.11-slim';
