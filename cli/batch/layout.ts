/**
 * Where each input's outputs go: `<base>/<folder>/`, the folder named after the input. The name
 * depends only on the batch's input names (not on this machine, the order items finish, or what
 * is already on disk), so `rgrid run --batch`, `rgrid retry --batch` and `rgrid download batch_…`
 * put the same input's outputs in the same folder. The rule (docs/batches.md, "Output layout"):
 *
 *   1. the input's file name without its extension: `data/jan.csv` → `jan`;
 *   2. inputs that would share a folder (compared ignoring case, for case-insensitive disks) get
 *      the nearest parent folders that tell them apart, in parentheses: `data/2024/jan.csv` →
 *      `jan (2024)`, `data/2025/jan.csv` → `jan (2025)`; `x/2024/jan.csv` and `y/2024/jan.csv` →
 *      `jan (x-2024)`, `jan (y-2024)`. An input with no parent folder keeps the plain name;
 *   3. names still shared after that (same folder, other extension: `a.csv`, `a.json`) get the
 *      next free counter in input order: `a`, `a (1)`.
 */
import { splitExtension, variant } from '../transfer/naming.js';
import { comparePaths } from './glob.js';

const key = (s: string) => s.toLowerCase();

/** Written next to the folders (cli/batch/summary.ts); no input's folder may take its name. */
export const FAILURES_FILE = 'batch_failures.txt';

function parts(inputName: string): { stem: string; dirs: string[] } {
  const segs = inputName.split(/[\\/]+/).filter((s) => s !== '' && s !== '.');
  const file = segs.pop() ?? inputName;
  let stem = splitExtension(file)[0];
  // A name the file system would not take as a folder of its own.
  if (stem === '' || stem === '.' || stem === '..') stem = file.replace(/^\.+/, '_') || '_';
  return { stem, dirs: segs.filter((s) => s !== '..') };
}

/** Folder name (relative to the output base) of every input; input names must be distinct. */
export function folderNames(inputNames: readonly string[]): Map<string, string> {
  const names = [...new Set(inputNames)].sort(comparePaths);
  const info = new Map(names.map((n) => [n, parts(n)]));
  const groups = new Map<string, string[]>();
  for (const n of names) {
    const k = key(info.get(n)!.stem);
    (groups.get(k) ?? groups.set(k, []).get(k)!).push(n);
  }
  const proposed = new Map<string, string>();
  for (const members of groups.values()) {
    if (members.length === 1) {
      proposed.set(members[0]!, info.get(members[0]!)!.stem);
      continue;
    }
    // The fewest trailing parent folders that make the group's labels distinct.
    const deepest = Math.max(...members.map((m) => info.get(m)!.dirs.length));
    let depth = 1;
    const label = (m: string, d: number) => info.get(m)!.dirs.slice(-d).join('-');
    for (; depth < deepest; depth++) {
      const labels = members.map((m) => key(label(m, depth)));
      if (new Set(labels).size === labels.length) break;
    }
    for (const m of members) {
      const { stem, dirs } = info.get(m)!;
      proposed.set(m, dirs.length ? `${stem} (${label(m, depth)})` : stem);
    }
  }
  const taken = new Set<string>([key(FAILURES_FILE)]);
  const out = new Map<string, string>();
  for (const n of names) {
    const want = proposed.get(n)!;
    let i = 0;
    while (taken.has(key(variant(want, i)))) i++;
    const name = i === 0 ? want : `${want} (${i})`;
    taken.add(key(name));
    out.set(n, name);
  }
  return out;
}
