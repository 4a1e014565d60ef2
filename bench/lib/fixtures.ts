/** The bench workload: small CSV files and a trivial Python script that summarizes one. */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Reads one CSV (header + 20 rows, ~0.5 KB), writes `<stem>.summary.json` (~150 bytes) into the
 * current directory and prints one line. Standard library only: the job needs no environment
 * build, so the numbers measure scheduling, transfer and container costs.
 */
export const SCRIPT_NAME = 'summarize.py';
export const SCRIPT = `import csv, json, os, sys

path = sys.argv[1]
with open(path, newline="") as f:
    rows = list(csv.DictReader(f))
values = [float(r["value"]) for r in rows]
summary = {
    "input": os.path.basename(path),
    "rows": len(rows),
    "sum": round(sum(values), 3),
    "mean": round(sum(values) / len(values), 3) if values else None,
    "max": max(values) if values else None,
}
out = os.path.splitext(os.path.basename(path))[0] + ".summary.json"
with open(out, "w") as f:
    json.dump(summary, f)
print(f"{summary['input']}: {summary['rows']} rows, sum {summary['sum']}")
`;

/** Deterministic pseudo-random numbers (mulberry32), so every run uses the same files. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function csvContent(index: number, salt = ''): string {
  const r = rng(index * 7919 + 17);
  const lines = ['id,name,value,weight'];
  for (let i = 0; i < 20; i++) lines.push(`${i + 1},item-${index}-${i}${salt},${(r() * 1000).toFixed(3)},${(r() * 10).toFixed(2)}`);
  return lines.join('\n') + '\n';
}

export const itemName = (i: number) => `item-${String(i).padStart(5, '0')}.csv`;

/** Writes `count` CSV files into `dir` (created) and returns their names, sorted. */
export async function writeCsvFiles(dir: string, count: number, salt = ''): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const names = Array.from({ length: count }, (_, i) => itemName(i + 1));
  for (let i = 0; i < names.length; i++) await writeFile(join(dir, names[i]!), csvContent(i + 1, salt));
  return names;
}

export async function writeScript(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, SCRIPT_NAME);
  await writeFile(path, SCRIPT);
  return path;
}
